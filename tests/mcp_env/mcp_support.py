"""Helpers of the MCP tests: where the shop server, its tasks and verifier are, and how to start
the server over streamable HTTP on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SHOP = [sys.executable, str(HERE / "shop_server.py")]
TASKS = str(HERE / "shop_tasks.jsonl")
VERIFIER = f"{HERE / 'shop_verifier.py'}:reward"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def start_http_shop() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([*SHOP, "--http", str(port)])
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}/mcp"
