#!/bin/bash
# The visible suite plus hidden cases; the task's test file must be unchanged.
check() {
  cd /app || return 1
  python3 -I /tests/check_slugify.py
}
check
status=$?
kill -KILL -1 2>/dev/null
mkdir -p /logs/verifier
if [ "$status" -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
