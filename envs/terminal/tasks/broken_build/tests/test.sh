#!/bin/bash
# Builds from a clean tree and runs the zipapp.
check() {
  cd /app || return 1
  rm -rf /app/dist
  timeout 20 bash /app/build.sh || { echo "build.sh failed"; return 1; }
  [ -f /app/dist/calc.pyz ] || { echo "no dist/calc.pyz"; return 1; }
  for args in "2 3:5" "40 2:42" "-7 7:0"; do
    out=$(cd /tmp && timeout 10 python3 -I /app/dist/calc.pyz ${args%%:*}) || { echo "calc.pyz ${args%%:*} failed"; return 1; }
    [ "$out" = "${args##*:}" ] || { echo "calc.pyz ${args%%:*} printed '$out'"; return 1; }
  done
  echo "build ok"
}
check
status=$?
kill -KILL -1 2>/dev/null
mkdir -p /logs/verifier
if [ "$status" -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
