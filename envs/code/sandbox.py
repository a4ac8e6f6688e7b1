"""One sandbox per episode for a code env, drawn at the episode's first code execution.

The sandbox comes from the process-wide warm pool for its spec (``agentgym.sandboxes.shared_pool``)
and goes back at the next reset or on close: the pool destroys it and starts a fresh one in the
background, so no episode sees another's files, processes or session, and no episode waits for
a container to start once the pool is warm. Each env counts as one unit of
demand from its first reset, so the pool keeps about one idle sandbox per env in flight (sized
by the rollout's concurrency without being told it) and starts the first ones while the policy
thinks about its first turn. ``AGENTGYM_SANDBOX_POOL=0`` (or ``pooled=False``) makes each
episode's sandbox directly instead (``make_sandbox``: the start is on the episode's critical path).

The sandbox itself is drawn lazily, because many episodes never run code (junk actions, void
turns): a reset only warms the pool, and closing the env withdraws that. A sandbox whose machinery failed is dropped at once, so the next execution gets a fresh one.
Everything is given back when the env is garbage-collected or the interpreter exits, so an env
that was never ``close()``d still leaves no container behind.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass

from agentgym.sandboxes import BaseSandbox, ExecResult, SandboxError, SandboxSpec, make_sandbox
from agentgym.sandboxes.pool import SandboxPool, shared_pool

__all__ = ["POOL_ENV", "LazySandbox"]

log = logging.getLogger("agentgym.envs.code")
POOL_ENV = "AGENTGYM_SANDBOX_POOL"


@dataclass
class _Held:
    """What a LazySandbox holds, apart from it, so that its finalizer can give it back."""

    spec: SandboxSpec
    box: BaseSandbox | None = None
    pool: SandboxPool | None = None  # set once this env counts as demand on the pool

    def drop(self) -> None:
        """Give the sandbox back (the pool destroys and replaces it) or close it."""
        box, self.box = self.box, None
        if box is None:
            return
        try:
            if self.pool is not None:
                self.pool.release(box)
            else:
                box.close()
        except Exception as exc:  # noqa: BLE001 — giving back a broken sandbox must not raise
            log.warning("closing sandbox failed: %s", exc)

    def close(self) -> None:
        self.drop()
        if self.pool is not None:
            self.pool.demand(self.spec, -1)
            self.pool = None


class LazySandbox:
    """Holds at most one sandbox; :meth:`get` draws it on demand (``backend`` as in
    ``make_sandbox``: Docker when an engine and the image are there, else LocalSandbox)."""

    def __init__(self, owner: object, spec: SandboxSpec, *, backend: str | None = None,
                 pool: str = "code", labels: dict[str, str] | None = None, pooled: bool | None = None) -> None:
        self.spec, self.backend, self.pool, self.labels = spec, backend, pool, labels
        self.pooled = os.environ.get(POOL_ENV, "1") != "0" if pooled is None else pooled
        self._held = _Held(spec)
        weakref.finalize(owner, self._held.close)

    @property
    def current(self) -> BaseSandbox | None:
        """The live sandbox, or None when none has been drawn (or the last one was dropped)."""
        return self._held.box

    def get(self) -> BaseSandbox:
        """The sandbox, drawn now if needed; raises :class:`SandboxError` (an ``InfraError``)."""
        held = self._held
        if held.box is None:
            if self.pooled:
                held.box = self._demand().acquire(self.spec)
            else:
                held.box = make_sandbox(self.spec, backend=self.backend, pool=self.pool, labels=self.labels)
        return held.box

    def _demand(self) -> SandboxPool:
        """The pool, with this env counted as one unit of its demand from now on."""
        held = self._held
        if held.pool is None:
            held.pool = shared_pool(backend=self.backend, name=self.pool, labels=self.labels)
            held.pool.demand(self.spec, 1)
        return held.pool

    def run_python(self, code: str, *, timeout: float | None = None, session: bool = False) -> ExecResult:
        """``get().run_python(...)``; on a machinery failure the sandbox is dropped, then the error
        propagates (typed infra, never the agent's fault)."""
        box = self.get()
        try:
            return box.run_python(code, timeout=timeout, session=session)
        except SandboxError:
            self._held.drop()
            raise

    def recycle(self) -> None:
        """A new episode starts: give the last one's sandbox back, so the next execution draws a
        fresh one (nothing one episode did can reach the next). With the pool, the episode counts
        as demand from here, so its sandbox starts warming while the policy thinks."""
        self._held.drop()
        if self.pooled:
            try:
                self._demand()
            except SandboxError as exc:  # no backend: the first execution raises it, typed
                log.debug("sandbox pool unavailable at reset: %s", exc)

    def close(self) -> None:
        """Give the sandbox back and stop counting as demand (idempotent; a later :meth:`get`
        draws again)."""
        self._held.close()
