#!/bin/bash
# Two faults: cli.py has a syntax error, and build.sh names a module (calc.main) that does not exist.
cd /app
sed -i 's/print(add(a, b)$/print(add(a, b))/' calc/cli.py
sed -i 's/calc.main:run/calc.cli:run/' build.sh
