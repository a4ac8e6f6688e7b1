"""Graders with a hard time bound, from any thread: :func:`bounded_call`.

Symbolic grading (sympy through math-verify, reasoning-gym's scorers) can run for minutes on a
short answer such as ``9^{9^{9^{9}}}`` or ``(10^{10})!``, inside C code that holds the GIL: a
``SIGALRM`` works only on the main thread and cannot interrupt C code anyway, and
``asyncio.wait_for`` never fires while the GIL is held, so one sampled answer froze a whole
rollout. Here a grader runs in a small pool of persistent worker processes (``python -m
agentgym.grading``); the caller waits on a pipe (the GIL is released), and a worker that is not
done within ``timeout`` seconds is killed and replaced. The answer then scores 0 for the agent
and the caller says why (:class:`Graded.error`); a worker that cannot be started at all is an
:class:`~agentgym.errors.InfraError`, never a score.

A worker imports what a grader needs once (``warm``: e.g. math-verify, or a reasoning-gym
dataset), under a separate start-up bound that does not count against the answer. Each worker
caps its own address space (``AGENTGYM_GRADER_MEMORY_MB``, default 2048), so an answer that
would need gigabytes fails fast instead of swapping the host. The pool holds at most
``AGENTGYM_GRADER_WORKERS`` workers (default 4); callers beyond that wait for a free one, and
that wait does not count against their answer either.

Only this package sends requests: a request names a function as ``"module:function"`` with
JSON arguments, and the reply is its JSON result.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.errors import InfraError

__all__ = ["GRADE_TIMEOUT", "Graded", "bounded_call", "shutdown"]

GRADE_TIMEOUT = 5.0
"""Default seconds one answer may take to grade."""
START_TIMEOUT = 120.0
"""Seconds a worker may take to start and import a grader's modules (not the answer's time)."""


@dataclass(frozen=True)
class Graded:
    """What a bounded grader returned (``value``), or why it has no value (``error``): the grader
    raised, or it was ``stopped`` (it ran out of time, or its worker died, e.g. out of memory).
    ``seconds`` is the time the answer took."""

    value: Any = None
    error: str | None = None
    stopped: bool = False
    seconds: float = 0.0


def _readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has data within ``timeout`` s. poll, not select: select refuses an fd ≥ 1024,
    and a trainer with many sandboxes and sockets open has such fds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class _Worker:
    """One grading process and the warm-ups it has done."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentgym.grading"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=None, env=env, close_fds=True,
            )
        except OSError as e:
            raise InfraError(f"could not start a grading worker: {e}") from e
        self.warmed: set[str] = set()
        self._buffer = b""

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request and wait for its reply; None when ``timeout`` passed or the worker died."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not _readable(fd, left):
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the worker died
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class _Pool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[_Worker] = []
        self.busy = 0
        self.cond = threading.Condition()

    def acquire(self) -> _Worker:
        with self.cond:
            while not self.idle and self.busy >= self.size:
                self.cond.wait()
            self.busy += 1
            if self.idle:
                return self.idle.pop()
        try:
            return _Worker()
        except BaseException:
            self.release(None)
            raise

    def release(self, worker: _Worker | None) -> None:
        with self.cond:
            self.busy -= 1
            if worker is not None:
                self.idle.append(worker)
            self.cond.notify()

    def shutdown(self) -> None:
        with self.cond:
            workers, self.idle = self.idle, []
        for worker in workers:
            worker.kill()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _Pool(max(1, int(os.environ.get("AGENTGYM_GRADER_WORKERS", "4"))))
            atexit.register(shutdown)
        return _pool


def shutdown() -> None:
    """End every idle grading worker (busy ones end when their grade does); the next grade starts new ones."""
    if _pool is not None:
        _pool.shutdown()


def bounded_call(
    fn: str, args: Sequence[Any], *, timeout: float = GRADE_TIMEOUT,
    warm: tuple[str, Sequence[Any]] | None = None,
) -> Graded:
    """Run ``fn(*args)`` (``fn`` is ``"module:function"``, args and result JSON) in a grading
    worker and wait at most ``timeout`` seconds for it; ``warm`` (``("module:function", args)``)
    runs first, once per worker, under the start-up bound. Safe from any thread; never holds the
    GIL while waiting. A worker that cannot start or warm up raises :class:`InfraError`."""
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    pool = _get_pool()
    worker = pool.acquire()
    keep: _Worker | None = None
    try:
        if warm is not None:
            key = json.dumps(warm)
            if key not in worker.warmed:
                reply = worker.request({"fn": warm[0], "args": list(warm[1])}, START_TIMEOUT)
                if reply is None or "error" in reply:
                    why = "it did not answer in time or died" if reply is None else reply["error"]
                    raise InfraError(f"grading worker could not prepare {warm[0]}: {why}")
                worker.warmed.add(key)
        start = time.monotonic()
        reply = worker.request({"fn": fn, "args": list(args)}, timeout)
        seconds = time.monotonic() - start
        if reply is None:
            dead = worker.proc.poll() is not None
            why = (f"the grader's process died (exit {worker.proc.returncode}; e.g. out of memory)" if dead
                   else f"grading took longer than {timeout:g} s and was stopped")
            return Graded(error=why, stopped=True, seconds=seconds)
        keep = worker
        if "error" in reply:
            return Graded(error=reply["error"], seconds=seconds)
        return Graded(value=reply["value"], seconds=seconds)
    finally:
        if keep is None:
            worker.kill()
        pool.release(keep)


# -- the worker side -----------------------------------------------------------------------------
def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve() -> None:
    import resource

    limit = int(os.environ.get("AGENTGYM_GRADER_MEMORY_MB", "2048")) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever a grader prints goes to stderr, never into the replies
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            reply = {"value": _resolve(request["fn"])(*request["args"])}
        except BaseException as e:  # noqa: BLE001 — the grader's failure is the reply
            reply = {"error": f"{type(e).__name__}: {e}"[:500]}
        out.write(json.dumps(reply, default=str).encode() + b"\n")


if __name__ == "__main__":
    _serve()
