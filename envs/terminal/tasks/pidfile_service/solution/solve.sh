#!/bin/bash
cat > /app/svc.sh <<'SH'
#!/bin/bash
pidfile=/app/worker.pid
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
alive() { [ -s "$pidfile" ] && running "$(cat "$pidfile")"; }
case "$1" in
  start)
    alive && exit 0
    nohup python3 /app/worker.py "$2" >/dev/null 2>&1 &
    echo $! > "$pidfile" ;;
  status)
    if alive; then echo running; else echo stopped; exit 3; fi ;;
  stop)
    if alive; then
      pid=$(cat "$pidfile"); kill "$pid"
      while running "$pid"; do sleep 0.05; done
    fi
    rm -f "$pidfile" ;;
  *) echo "usage: $0 start LOG|status|stop" >&2; exit 2 ;;
esac
SH
chmod +x /app/svc.sh
