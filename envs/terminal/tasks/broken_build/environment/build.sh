#!/bin/bash
# Byte-compiles the package (a syntax error fails the build), then packs it as a zipapp.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m compileall -q calc
rm -rf build && mkdir -p build dist
cp -r calc build/
python3 -m zipapp build -o dist/calc.pyz -m "calc.main:run" -p "/usr/bin/env python3"
