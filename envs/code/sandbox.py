"""One sandbox per env, created at its first code execution and closed with the env.

Lazy because most env instances never run code (registry-wide checks, junk actions, void
turns), and a container costs ~0.2 s to start. A sandbox whose machinery failed is dropped at
once, so the next execution starts a fresh one instead of reusing a dead container. The
sandbox is also closed when its env is garbage-collected or the interpreter exits, so an env
that was never ``close()``d still leaves no container behind.
"""

from __future__ import annotations

import logging
import weakref

from agentgym.sandboxes import BaseSandbox, ExecResult, SandboxError, SandboxSpec, make_sandbox

__all__ = ["LazySandbox"]

log = logging.getLogger("agentgym.envs.code")
CLEAN_WORKDIR = "find . -mindepth 1 -delete"


class LazySandbox:
    """Holds at most one sandbox; :meth:`get` makes it on demand (``make_sandbox``'s backend
    auto-selection: Docker when an engine and the image are there, else LocalSandbox)."""

    def __init__(self, owner: object, spec: SandboxSpec, *, backend: str | None = None,
                 pool: str = "code", labels: dict[str, str] | None = None) -> None:
        self.spec, self.backend, self.pool, self.labels = spec, backend, pool, labels
        self._box: list[BaseSandbox] = []  # a list, so the finalizer sees the current sandbox
        self.used = False  # whether code ran since the last recycle()
        weakref.finalize(owner, _close_all, self._box)

    @property
    def current(self) -> BaseSandbox | None:
        """The live sandbox, or None when none has been made (or the last one was dropped)."""
        return self._box[0] if self._box else None

    def get(self) -> BaseSandbox:
        """The sandbox, made now if needed; raises :class:`SandboxError` (an ``InfraError``)."""
        if not self._box:
            self._box.append(make_sandbox(self.spec, backend=self.backend, pool=self.pool, labels=self.labels))
        return self._box[0]

    def run_python(self, code: str, *, timeout: float | None = None, session: bool = False) -> ExecResult:
        """``get().run_python(...)``; on a machinery failure the sandbox is dropped, then the error
        propagates (typed infra, never the agent's fault)."""
        box = self.get()
        self.used = True
        try:
            return box.run_python(code, timeout=timeout, session=session)
        except SandboxError:
            self.close()
            raise

    def recycle(self) -> None:
        """Make a used sandbox fit for a new episode: forget the session's variables and empty
        the work dir (so one episode cannot leave files or state to the next). A sandbox that
        fails at this is dropped instead."""
        box = self.current
        if box is None or not self.used:
            return
        self.used = False
        try:
            box.reset_session()
            if not box.run_shell(CLEAN_WORKDIR, timeout=10).ok:
                raise SandboxError("could not empty the work dir")
        except (SandboxError, OSError) as exc:
            log.warning("dropping a sandbox that could not be recycled: %s", exc)
            self.close()

    def close(self) -> None:
        """Close and forget the sandbox (idempotent; a later :meth:`get` makes a new one)."""
        _close_all(self._box)


def _close_all(boxes: list[BaseSandbox]) -> None:
    while boxes:
        box = boxes.pop()
        try:
            box.close()
        except Exception as exc:  # noqa: BLE001 — closing a broken sandbox must not raise
            log.warning("closing sandbox failed: %s", exc)
