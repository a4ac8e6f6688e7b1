"""The Sandbox protocol, its result and spec types, and the backend-independent half of a sandbox.

A sandbox runs untrusted code. Everything a caller can do has a sync and an async twin:
``run_python`` / ``arun_python``, ``run_shell`` / ``arun_shell``, ``write_file`` / ``awrite_file``,
``read_file`` / ``aread_file``, ``reset_session`` / ``areset_session``, ``close`` / ``aclose``.

Failures of the *user's code* (exception, non-zero exit, signal, per-call timeout) come back as
an :class:`ExecResult`; failures of the *machinery* raise :class:`~.errors.SandboxError`.
"""

from __future__ import annotations

import base64
import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from .channel import Channel
from .errors import SandboxError, SandboxUnavailable
from .images import image_tag

__all__ = ["DEFAULT_IMAGE", "AsyncSandbox", "BaseSandbox", "ExecResult", "Sandbox", "SandboxSpec"]

DEFAULT_IMAGE = image_tag("python")
GRACE_S = 15.0  # how long past the call's timeout the executor may take to kill and report
MAX_TIMEOUT_S = 86_400.0  # a call's timeout: more than 0, at most a day


def checked_timeout(value: object) -> float:
    """A call's timeout in seconds, or ValueError: a finite number in (0, MAX_TIMEOUT_S]. One
    check for both backends (unchecked, 0 ran and timed out at once, a negative one failed in
    the executor and a huge one overflowed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"timeout must be a number of seconds, not {value!r}")
    if not 0 < value <= MAX_TIMEOUT_S:  # NaN fails too
        raise ValueError(f"timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox is: image and limits. Hashable, so it keys the warm pool.

    ``memory_mb`` is RAM and RAM+swap alike (no swap) for the code's processes; files in the
    tmpfs dirs (``tmp_mb``, ``workdir_mb``) have their own budget (Docker's memory cgroup is
    sized for both, plus a reserve for the executor). ``timeout`` is the default per-call
    wall-clock limit. ``network=False`` means no network interface but loopback; turning it on
    is an explicit opt-in. ``runtime`` is ``"runc"``, ``"runsc"`` (gVisor, required) or
    ``"auto"`` (gVisor when the engine has it). ``preload`` lists modules the warm interpreter
    imports once so calls get them for free. ``ttl`` (seconds) is when the reaper may remove
    the container whatever its owner is doing. ``mounts`` (Docker only) lists more writable
    directories (absolute paths; a terminal task's working directory, ``/tests``, ``/logs``), each a
    tmpfs of ``workdir_mb`` owned by the code's user like the work dir but executable (a task's
    scripts run from there); the root stays read-only.
    """

    image: str = DEFAULT_IMAGE
    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 128
    tmp_mb: int = 64
    workdir_mb: int = 256
    max_output: int = 1 << 20
    timeout: float = 10.0
    network: bool = False
    runtime: str = "runc"
    preload: tuple[str, ...] = ()
    ttl: float = 7200.0
    env: tuple[tuple[str, str], ...] = field(default=())
    mounts: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> SandboxSpec:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one call. ``exit_code`` < 0 means killed by that signal (subprocess's
    convention); a timed-out call has ``timed_out=True``. Each stream keeps at most
    ``SandboxSpec.max_output`` bytes; the ``*_truncated`` flags say whether more was dropped.
    ``duration`` is the wall time of the code inside the sandbox, in seconds. ``error`` is set
    (and ``exit_code`` is 126) when the call could not start at all because the sandbox's
    limits left no room (e.g. a session's threads hold every process slot) or a shell command is
    longer than the kernel lets one argument be: the user's doing, so a result the agent can
    read, not an exception."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool
    duration: float
    error: str = ""

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    """Sync face of a sandbox."""

    workdir: str

    def run_python(self, code: str, *, timeout: float | None = None, session: bool = False) -> ExecResult: ...
    def run_shell(self, command: str, *, timeout: float | None = None) -> ExecResult: ...
    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...
    def read_file(self, path: str) -> bytes: ...
    def reset_session(self) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class AsyncSandbox(Protocol):
    """Async face of a sandbox (same semantics as :class:`Sandbox`)."""

    workdir: str

    async def arun_python(self, code: str, *, timeout: float | None = None,
                          session: bool = False) -> ExecResult: ...
    async def arun_shell(self, command: str, *, timeout: float | None = None) -> ExecResult: ...
    async def awrite_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...
    async def aread_file(self, path: str) -> bytes: ...
    async def areset_session(self) -> None: ...
    async def aclose(self) -> None: ...


class BaseSandbox:
    """Both protocols over an executor :class:`Channel`; backends only start and stop it.

    One call at a time per sandbox (a rollout owns its sandbox); concurrent callers queue.
    Relative paths are relative to :attr:`workdir`. Every process a call starts is killed when
    the call ends; only the variables of the ``session=True`` interpreter persist.
    """

    backend: ClassVar[str]
    workdir: str
    grace: float = GRACE_S  # seconds past a call's timeout before the executor counts as stuck

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._channel: Channel | None = None
        self.closed = False
        self.info: dict[str, Any] = {}

    # -- backend hooks ------------------------------------------------------------------------
    def _teardown(self) -> None:
        raise NotImplementedError

    # -- message plumbing shared by the twins -------------------------------------------------
    def _live_channel(self) -> Channel:
        if self.closed or self._channel is None:
            raise SandboxUnavailable(f"{type(self).__name__} is closed")
        return self._channel

    def _run_message(self, kind: str, code: str, timeout: float | None, session: bool) -> tuple[dict, float]:
        limit = checked_timeout(self.spec.timeout if timeout is None else timeout)
        return {"op": "run", "kind": kind, "code": code, "timeout": limit, "session": session}, limit + self.grace

    @staticmethod
    def _checked(message: dict, response: dict) -> dict:
        """The response, or its failure raised: OSError for a file operation (a missing file is
        the caller's business), SandboxError for anything else (the machinery failed)."""
        if "error" in response and "stdout" not in response:  # a run's result has "error" too
            if response.get("errno") and message["op"] in ("read", "write"):
                raise OSError(response["errno"], response["error"])
            raise SandboxError(f"executor error: {response['error']}")
        return response

    @staticmethod
    def _result(response: dict) -> ExecResult:
        return ExecResult(**{f.name: response[f.name] for f in dataclasses.fields(ExecResult)})

    @staticmethod
    def _write_message(path: str, data: bytes | str, mode: int) -> dict:
        raw = data.encode() if isinstance(data, str) else data
        return {"op": "write", "path": path, "data": base64.b64encode(raw).decode(), "mode": mode}

    def _file_wait(self) -> float:
        return self.spec.timeout + self.grace

    # -- sync ---------------------------------------------------------------------------------
    def _call(self, message: dict, wait: float) -> dict:
        return self._checked(message, self._live_channel().request(message, wait))

    def run_python(self, code: str, *, timeout: float | None = None, session: bool = False) -> ExecResult:
        """Run Python in a fresh forked process (or, with ``session=True``, in the persistent
        interpreter whose variables survive between calls)."""
        return self._result(self._call(*self._run_message("python", code, timeout, session)))

    def run_shell(self, command: str, *, timeout: float | None = None) -> ExecResult:
        """Run ``/bin/sh -c command`` in a fresh process."""
        return self._result(self._call(*self._run_message("shell", command, timeout, False)))

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file (parents created); str data is UTF-8 encoded."""
        self._call(self._write_message(path, data, mode), self._file_wait())

    def read_file(self, path: str) -> bytes:
        """Read a file (at most 64 MiB); a missing file raises FileNotFoundError."""
        return base64.b64decode(self._call({"op": "read", "path": path}, self._file_wait())["data"])

    def reset_session(self) -> None:
        """Forget the persistent session's variables (the next session call starts afresh)."""
        self._call({"op": "reset_session"}, self._file_wait())

    def ping(self, timeout: float = 5.0) -> dict:
        """Health check: the executor answers, with its pid and the count of stray processes."""
        return self._call({"op": "ping"}, timeout)

    def close(self) -> None:
        """Destroy the sandbox. Idempotent; never raises for an already-dead sandbox."""
        if not self.closed:
            self.closed = True
            self._teardown()

    def __enter__(self) -> BaseSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async --------------------------------------------------------------------------------
    async def _acall(self, message: dict, wait: float) -> dict:
        return self._checked(message, await self._live_channel().arequest(message, wait))

    async def arun_python(self, code: str, *, timeout: float | None = None, session: bool = False) -> ExecResult:
        return self._result(await self._acall(*self._run_message("python", code, timeout, session)))

    async def arun_shell(self, command: str, *, timeout: float | None = None) -> ExecResult:
        return self._result(await self._acall(*self._run_message("shell", command, timeout, False)))

    async def awrite_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        await self._acall(self._write_message(path, data, mode), self._file_wait())

    async def aread_file(self, path: str) -> bytes:
        return base64.b64decode((await self._acall({"op": "read", "path": path}, self._file_wait()))["data"])

    async def areset_session(self) -> None:
        await self._acall({"op": "reset_session"}, self._file_wait())

    async def aping(self, timeout: float = 5.0) -> dict:
        return await self._acall({"op": "ping"}, timeout)

    async def aclose(self) -> None:
        """Async twin of :meth:`close` (the teardown runs in a thread: it talks to the engine)."""
        import asyncio

        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> BaseSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
