"""Host end of the executor's wire: one request and one response at a time over raw fds.

The same non-blocking fds serve a sync caller (``poll``) and an async caller (the event loop's
reader/writer callbacks), so both twins share the parsing and neither needs a thread. For Docker,
the fd is the hijacked ``attach`` socket whose output is multiplexed (8-byte headers per chunk:
stream type, size); for LocalSandbox it is a pair of pipes.
"""

from __future__ import annotations

import asyncio
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import SandboxCrashed, SandboxError, SandboxTimeout
from .executor import FrameDecoder, encode_frame

_DOCKER_HEADER = struct.Struct(">BxxxI")
_STDERR_TAIL = 8192


class _DockerDemux:
    """Split Docker's multiplexed attach stream into stdout and stderr bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        self._buf += data
        out, err = bytearray(), bytearray()
        while len(self._buf) >= _DOCKER_HEADER.size:
            stream, size = _DOCKER_HEADER.unpack_from(self._buf)
            end = _DOCKER_HEADER.size + size
            if len(self._buf) < end:
                break
            (err if stream == 2 else out).extend(self._buf[_DOCKER_HEADER.size:end])
            del self._buf[:end]
        return bytes(out), bytes(err)


class Channel:
    """Request/response over non-blocking fds, with sync and async twins.

    ``diagnose`` is called when the other end vanishes and returns a sentence for the error
    (for Docker: the container's state, OOM flag and exit code).
    """

    def __init__(self, read_fd: int, write_fd: int, *, docker_stream: bool, owner: Any = None,
                 diagnose: Callable[[], str] | None = None) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self._owner = owner  # keeps the socket / process that owns the fds alive
        self._diagnose = diagnose or (lambda: "")
        self._demux = _DockerDemux() if docker_stream else None
        self._decoder = FrameDecoder()
        self._lock = threading.Lock()
        self._pending = memoryview(b"")
        self._responses: list[dict] = []
        self._expect = 0
        self._next_id = 0
        self.broken: str | None = None
        self.stderr_tail = bytearray()
        for fd in {read_fd, write_fd}:
            os.set_blocking(fd, False)

    # -- shared by both twins ----------------------------------------------------------------
    def _start(self, message: dict) -> None:
        if self.broken:
            raise SandboxCrashed(f"sandbox is unusable: {self.broken}")
        self._next_id += 1
        self._expect = self._next_id
        self._pending = memoryview(encode_frame({**message, "id": self._expect}))
        self._responses.clear()

    def _fail(self, exc_type: type[SandboxError], why: str) -> SandboxError:
        detail = self._diagnose() if exc_type is SandboxCrashed else ""
        tail = self.stderr_tail.decode("utf-8", "replace").strip()
        self.broken = "; ".join(part for part in (why, detail, tail and f"executor stderr: {tail[-500:]}") if part)
        return exc_type(self.broken)

    def _on_writable(self) -> None:
        try:
            written = os.write(self.write_fd, self._pending)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._fail(SandboxCrashed, f"writing to the executor failed: {exc}") from exc
        self._pending = self._pending[written:]

    def _on_readable(self) -> dict | None:
        try:
            data = os.read(self.read_fd, 1 << 18)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise self._fail(SandboxCrashed, f"reading from the executor failed: {exc}") from exc
        if not data:
            raise self._fail(SandboxCrashed, "the executor's stream closed")
        if self._demux is not None:
            data, err = self._demux.feed(data)
            if err:
                self.stderr_tail = (self.stderr_tail + err)[-_STDERR_TAIL:]
        for response in self._decoder.feed(data):
            if response.get("id") == self._expect:
                return response
        return None  # partial frame, or a stale answer to a call whose caller gave up

    # -- sync ----------------------------------------------------------------------------------
    def request(self, message: dict, timeout: float) -> dict:
        """Send one message and wait for its answer; SandboxTimeout after ``timeout`` seconds."""
        with self._lock:
            self._start(message)
            deadline = time.monotonic() + timeout
            while True:
                masks = {self.read_fd: select.POLLIN}
                if self._pending:
                    masks[self.write_fd] = masks.get(self.write_fd, 0) | select.POLLOUT
                poller = select.poll()
                for fd, mask in masks.items():
                    poller.register(fd, mask)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(SandboxTimeout, f"no answer from the executor within {timeout:.1f} s")
                for fd, event in poller.poll(left * 1000):
                    if event & select.POLLOUT and fd == self.write_fd and self._pending:
                        self._on_writable()
                    if fd == self.read_fd and event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        response = self._on_readable()
                        if response is not None:
                            return response

    # -- async ---------------------------------------------------------------------------------
    async def arequest(self, message: dict, timeout: float) -> dict:
        """Async twin of :meth:`request`: the event loop watches the fds; no thread involved."""
        while not self._lock.acquire(blocking=False):
            await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict] = loop.create_future()

        def settle(step: Callable[[], dict | None]) -> None:
            if done.done():
                return
            try:
                response = step()
            except SandboxError as exc:
                done.set_exception(exc)
                return
            if response is not None:
                done.set_result(response)
            elif not self._pending:
                loop.remove_writer(self.write_fd)

        try:
            self._start(message)
            loop.add_reader(self.read_fd, settle, self._on_readable)
            loop.add_writer(self.write_fd, settle, lambda: self._on_writable())
            try:
                return await asyncio.wait_for(done, timeout)
            except asyncio.TimeoutError:
                raise self._fail(SandboxTimeout, f"no answer from the executor within {timeout:.1f} s") from None
        finally:
            loop.remove_reader(self.read_fd)
            loop.remove_writer(self.write_fd)
            self._lock.release()
