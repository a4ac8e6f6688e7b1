"""Helpers of the OpenEnv tests: real servers on loopback, in this process (openenv-core's app
under uvicorn in a thread) or as `agentgym serve-openenv` / an OpenEnv-native server in a child
process, and openenv-core's own client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TESTS = HERE.parent
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


@contextmanager
def serving(make_env: Callable[[], Any], *, name: str = "test", max_sessions: int = 16,
            first_seed: int = 0) -> Iterator[str]:
    """``build_app`` served by uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    from agentgym.openenv_server import build_app

    app = build_app(make_env, name=name, first_seed=first_seed, max_sessions=max_sessions)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class Child:
    """A server process; its URL is what it prints first on stderr (``{"<key>": URL}``), or
    ``http://127.0.0.1:PORT`` once ``port`` accepts connections. Its later stderr is kept."""

    def __init__(self, argv: list[str], *, key: str = "", port: int = 0):
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
        if key:
            first = self.process.stderr.readline()
            if not first.startswith("{"):
                self.stop()
                raise RuntimeError(f"server did not start: {first}{self.process.stderr.read()}")
            self.url: str = json.loads(first)[key]
        else:
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not _listening(port):
                assert self.process.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def serve_cli(*args: str) -> Child:
    """``agentgym ARGS --port 0`` (ARGS: global options, then ``serve-openenv ENV_ID ...``) in a child process."""
    return Child([sys.executable, "-m", "agentgym.cli", *args, "--port", "0"], key="openenv_url")


def guess_server() -> Child:
    """The OpenEnv-native guess server (guess_server.py) in a child process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Child([sys.executable, str(HERE / "guess_server.py"), str(port)], port=port)


def client(url: str) -> Any:
    """openenv-core's own generic client (its sync wrapper), not yet connected."""
    from openenv.core import GenericEnvClient

    return GenericEnvClient(base_url=url, message_timeout_s=30).sync()
