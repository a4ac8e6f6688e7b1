#!/bin/bash
# Drives /app/svc.sh through start, a second start, status and stop.
# Alive: the process exists and is not a zombie (orphans are reaped only when the sandbox call ends).
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
check() {
  cd /app || return 1
  # find -perm, not [ -x ]: this engine's seccomp profile refuses faccessat2, so test -x is always false
  [ -n "$(find /app/svc.sh -maxdepth 0 -type f -perm -u+x 2>/dev/null)" ] || { echo "svc.sh missing or not executable"; return 1; }
  log=$(mktemp)
  timeout 10 /app/svc.sh start "$log" || { echo "start failed"; return 1; }
  [ -s /app/worker.pid ] || { echo "no pid file"; return 1; }
  pid=$(cat /app/worker.pid)
  alive "$pid" || { echo "recorded pid $pid is not alive"; return 1; }
  # the recorded pid may still be the shell that is about to exec the worker: up to 5 s for the exec
  for _ in $(seq 50); do grep -q worker.py "/proc/$pid/cmdline" 2>/dev/null && break; sleep 0.1; done
  grep -q worker.py "/proc/$pid/cmdline" || { echo "pid $pid is not the worker"; return 1; }
  timeout 10 /app/svc.sh start "$log" || { echo "second start failed"; return 1; }
  [ "$(cat /app/worker.pid)" = "$pid" ] || { echo "second start replaced the worker"; return 1; }
  workers=$(grep -l '[w]orker\.py' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
  [ "$workers" = 1 ] || { echo "$workers workers run"; return 1; }
  # up to 5 s for the first line: a python worker can take seconds to start on a loaded machine
  for _ in $(seq 50); do [ -s "$log" ] && break; sleep 0.1; done
  [ -s "$log" ] || { echo "the worker does not write its log"; return 1; }
  [ "$(timeout 10 /app/svc.sh status)" = running ] || { echo "status is not running"; return 1; }
  timeout 10 /app/svc.sh stop || { echo "stop failed"; return 1; }
  alive "$pid" && { echo "worker $pid still alive after stop"; return 1; }
  [ ! -e /app/worker.pid ] || { echo "pid file left after stop"; return 1; }
  out=$(timeout 10 /app/svc.sh status); code=$?
  [ "$out" = stopped ] && [ "$code" = 3 ] || { echo "status after stop: '$out' exit $code"; return 1; }
  echo "service ok"
}
check
status=$?
kill -KILL -1 2>/dev/null
mkdir -p /logs/verifier
if [ "$status" -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
