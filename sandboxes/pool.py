"""A warm pool of sandboxes keyed by spec (image + limits).

Reset between users: **a fresh sandbox per user**. ``release`` destroys the sandbox (in a
background thread) and the refill starts a new one; nothing one user did (files, processes,
IPC objects, a tampered interpreter) can reach the next. The pool hides the start-up cost
instead of skipping it: idle sandboxes are started ahead of demand (``warm`` per spec), at a
capped rate (``refill_per_s``), never more than ``max_size`` alive in total. Every sandbox
handed out has just answered a ping; idle ones are pinged every ``health_interval`` seconds
and retired before their TTL. ``acquire_many(G)`` hands out G sandboxes at once or none, so
groups of rollouts never deadlock holding half a group each.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

from .base import BaseSandbox, SandboxSpec
from .errors import SandboxError, SandboxUnavailable
from .factory import BACKEND_ENV, make_sandbox, select_backend

__all__ = ["SandboxPool", "close_shared_pools", "shared_pool"]

log = logging.getLogger("agentgym.sandboxes")
RETRY_AFTER_FAILURE_S = 1.0
SHARED_MAX_ENV = "AGENTGYM_SANDBOX_POOL_MAX"
SHARED_MAX_DEFAULT = 64
SHARED_PARALLEL_STARTS = 6  # a rollout's first wave wants many at once; more only queue in the engine


class _Steps:
    """Iterates an acquire plan's ``(step, arg)`` requests; the driver puts its answer in
    ``reply`` before the next one; ``result`` is the plan's return value. Closing on an error
    (a cancelled await, Ctrl-C) makes the plan give back whatever it had taken."""

    def __init__(self, plan: Generator[tuple[str, Any], Any, list[BaseSandbox]]) -> None:
        self.plan, self.reply = plan, None
        self.result: list[BaseSandbox] = []

    def __iter__(self) -> _Steps:
        return self

    def __next__(self) -> tuple[str, Any]:
        try:
            return self.plan.send(self.reply)
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.plan.close()


class SandboxPool:
    """Warm, bounded, self-healing pool; see the module docstring for the semantics."""

    def __init__(self, spec: SandboxSpec | None = None, *, backend: str | None = None,
                 factory: Callable[[SandboxSpec], BaseSandbox] | None = None, warm: int = 2,
                 max_size: int = 32, refill_per_s: float = 10.0, parallel_starts: int = 2,
                 health_interval: float = 30.0, name: str = "default",
                 labels: dict[str, str] | None = None) -> None:
        self.spec = spec or SandboxSpec()
        self.name = name
        self.max_size = max_size
        self.refill_interval = 1.0 / refill_per_s
        self.health_interval = health_interval
        if factory is None:
            chosen, reason = select_backend(self.spec, backend)
            log.info("sandbox pool %s: backend %s (%s)", name, chosen, reason)
            self.backend = chosen

            def factory(spec: SandboxSpec) -> BaseSandbox:
                return make_sandbox(spec, backend=chosen, pool=name, labels=labels)
        else:
            self.backend = "custom"
        self._factory = factory
        self._cond = threading.Condition()
        self._idle: dict[SandboxSpec, deque[tuple[BaseSandbox, float, float]]] = {}  # (sandbox, born, checked)
        self._targets: dict[SandboxSpec, int] = {self.spec: warm}
        self._waiting: dict[SandboxSpec, int] = {}
        self._starting: dict[SandboxSpec, int] = {}
        self._errors: dict[SandboxSpec, tuple[SandboxError, float]] = {}  # last failure, retry time
        self._leased: dict[int, BaseSandbox] = {}
        self._doomed: deque[BaseSandbox] = deque()
        self._dying = 0
        self._next_start = 0.0
        self._last_health = time.monotonic()
        self._generation = 0  # bumped by every _wake, so a waiter never misses one
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.closed = False
        self.created = 0
        if self.backend == "docker":
            threading.Thread(target=self._reap_leftovers, daemon=True).start()
        self._threads = [threading.Thread(target=self._starter, name=f"pool-{name}-start{i}", daemon=True)
                         for i in range(parallel_starts)]
        self._threads += [threading.Thread(target=self._destroyer, name=f"pool-{name}-destroy{i}", daemon=True)
                          for i in range(parallel_starts)]  # as many as start: churn is symmetric
        for thread in self._threads:
            thread.start()

    # -- bookkeeping (call with the lock held) -------------------------------------------------
    def _live(self) -> int:
        idle = sum(len(q) for q in self._idle.values())
        return idle + len(self._leased) + sum(self._starting.values()) + self._dying + len(self._doomed)

    def _wake(self) -> None:
        self._generation += 1
        self._cond.notify_all()
        for loop, future in self._async_waiters:
            loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))
        self._async_waiters.clear()

    def _shortfall(self, spec: SandboxSpec) -> int:
        have = len(self._idle.get(spec, ())) + self._starting.get(spec, 0)
        return self._targets.get(spec, 0) + self._waiting.get(spec, 0) - have

    def _discard(self, sandbox: BaseSandbox) -> None:
        self._doomed.append(sandbox)
        self._wake()

    def _take(self, spec: SandboxSpec, count: int) -> list[BaseSandbox] | None:
        if self.closed:
            raise SandboxUnavailable(f"pool {self.name} is closed")
        idle = self._idle.get(spec)
        if idle is not None and len(idle) >= count:
            taken = [idle.popleft()[0] for _ in range(count)]
            for sandbox in taken:
                self._leased[id(sandbox)] = sandbox
            return taken
        if spec in self._errors and not self._starting.get(spec):
            raise self._errors[spec][0]
        return None

    def _next_spec(self) -> SandboxSpec | None:
        """A spec that needs another sandbox now and has room for it (evicting idle ones of
        specs nobody waits for when the pool is full)."""
        now = time.monotonic()
        for spec in dict.fromkeys([*self._targets, *self._waiting]):
            if self._shortfall(spec) <= 0 or (spec in self._errors and self._errors[spec][1] > now):
                continue
            if self._live() < self.max_size:
                return spec
            if not self._doomed and not self._dying:
                for other, idle in self._idle.items():
                    if other != spec and idle and not self._waiting.get(other):
                        self._discard(idle.popleft()[0])
                        break
            return None
        return None

    # -- background threads --------------------------------------------------------------------
    def _starter(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self.closed:
                        return
                    spec = self._next_spec()
                    wait = self._next_start - time.monotonic()
                    if spec is not None and wait <= 0:
                        break
                    if spec is None and time.monotonic() - self._last_health >= self.health_interval:
                        self._health_check_locked()
                    self._cond.wait(timeout=wait if spec is not None else 1.0)
                self._starting[spec] = self._starting.get(spec, 0) + 1
                self._next_start = time.monotonic() + self.refill_interval
            sandbox, error = None, None
            try:
                sandbox = self._factory(spec)
            except SandboxError as exc:
                error = exc
            except Exception as exc:
                error = SandboxUnavailable(f"sandbox start failed: {exc!r}")
            with self._cond:
                self._starting[spec] -= 1
                if sandbox is not None:
                    self.created += 1
                    self._errors.pop(spec, None)
                    if self.closed:
                        self._discard(sandbox)
                    else:
                        now = time.monotonic()
                        self._idle.setdefault(spec, deque()).append((sandbox, now, now))
                else:
                    self._errors[spec] = (error, time.monotonic() + RETRY_AFTER_FAILURE_S)
                    log.warning("sandbox pool %s: start failed: %s", self.name, error)
                self._wake()

    def _health_check_locked(self) -> None:
        """Retire idle sandboxes that stopped answering or near their TTL (lock held; pings are fast)."""
        now = self._last_health = time.monotonic()
        for spec, idle in self._idle.items():
            for _ in range(len(idle)):
                sandbox, born, checked = idle.popleft()
                if now - checked < self.health_interval:
                    idle.append((sandbox, born, checked))
                    continue
                try:
                    healthy = now - born < 0.9 * spec.ttl and sandbox.ping(timeout=2.0).get("strays") == 0
                except SandboxError:
                    healthy = False
                if healthy:
                    idle.append((sandbox, born, now))
                else:
                    self._discard(sandbox)

    def _destroyer(self) -> None:
        while True:
            with self._cond:
                while not self._doomed and not (self.closed and not any(self._starting.values())):
                    self._cond.wait()
                if not self._doomed:
                    return
                sandbox = self._doomed.popleft()
                self._dying += 1
            try:
                sandbox.close()
            except Exception as exc:  # the reaper removes whatever this could not
                log.warning("sandbox pool %s: close failed: %s", self.name, exc)
            with self._cond:
                self._dying -= 1
                self._wake()

    def _reap_leftovers(self) -> None:
        from .reaper import prune

        try:
            for box, reason in prune():
                log.info("reaped sandbox container %s (%s)", box.name, reason)
        except Exception as exc:
            log.warning("reaping leftover sandbox containers failed: %s", exc)

    # -- public API ----------------------------------------------------------------------------
    def warm_up(self, spec: SandboxSpec, count: int) -> None:
        """Keep ``count`` idle sandboxes of ``spec`` ready from now on."""
        self._set_target(spec, lambda _: count)

    def demand(self, spec: SandboxSpec, delta: int) -> None:
        """Keep ``delta`` more (or fewer) idle sandboxes of ``spec`` ready: one per user that will
        want a fresh one again soon. The code envs count their live envs here, so the pool is
        sized by the rollout's concurrency without being told it."""
        self._set_target(spec, lambda target: target + delta)

    def _set_target(self, spec: SandboxSpec, change: Callable[[int], int]) -> None:
        with self._cond:
            target = self._targets[spec] = max(change(self._targets.get(spec, 0)), 0)
            idle = self._idle.get(spec)
            while idle and len(idle) > target + self._waiting.get(spec, 0):
                self._discard(idle.pop()[0])  # the newest goes: the oldest are the next to retire
            self._wake()

    def _acquire_plan(self, count: int, spec: SandboxSpec | None,
                      timeout: float) -> Generator[tuple[str, Any], Any, list[BaseSandbox]]:
        """The one acquire logic, for both twins: it yields ``("wait", (generation, seconds))``
        when nothing is free and ``("ping", sandboxes)`` for the health check, and the sync or
        async driver does the waiting and pinging its own way. Sandboxes that fail the ping are
        released (destroyed and replaced); on any error, everything taken so far goes back."""
        spec = spec or self.spec
        if count > self.max_size:
            raise ValueError(f"asked for {count} sandboxes from a pool of at most {self.max_size}")
        deadline = time.monotonic() + timeout
        got: list[BaseSandbox] = []
        taken: list[BaseSandbox] = []
        try:
            while len(got) < count:
                need = count - len(got)
                with self._cond:
                    self._waiting[spec] = self._waiting.get(spec, 0) + need
                    self._wake()
                try:
                    while True:
                        with self._cond:
                            taken = self._take(spec, need) or []
                            generation = self._generation
                        if taken:
                            break
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise SandboxUnavailable(f"no {need} sandboxes free within {timeout:.0f} s "
                                                     f"(pool {self.name}, max_size {self.max_size})")
                        yield "wait", (generation, left)
                finally:
                    with self._cond:
                        self._waiting[spec] -= need
                healthy = yield "ping", taken
                for sandbox, ok in zip(taken, healthy, strict=True):
                    if ok:
                        got.append(sandbox)
                    else:
                        self.release(sandbox)
                taken = []
            return got
        except BaseException:
            for sandbox in got + taken:
                self.release(sandbox)
            raise

    @staticmethod
    def _healthy(sandbox: BaseSandbox) -> bool:
        try:
            sandbox.ping(timeout=2.0)
            return True
        except SandboxError:
            return False

    @staticmethod
    async def _ahealthy(sandbox: BaseSandbox) -> bool:
        try:
            await sandbox.aping(timeout=2.0)
            return True
        except SandboxError:
            return False

    def acquire_many(self, count: int, spec: SandboxSpec | None = None, *, timeout: float = 120.0) -> list[BaseSandbox]:
        """Take ``count`` healthy sandboxes at once (all or none), waiting up to ``timeout`` s."""
        with _Steps(self._acquire_plan(count, spec, timeout)) as steps:
            for step, arg in steps:
                if step == "wait":
                    generation, left = arg
                    with self._cond:
                        if self._generation == generation:
                            self._cond.wait(min(left, 1.0))
                    steps.reply = None
                else:
                    steps.reply = [self._healthy(sandbox) for sandbox in arg]
        return steps.result

    def acquire(self, spec: SandboxSpec | None = None, *, timeout: float = 120.0) -> BaseSandbox:
        """Take one healthy sandbox of ``spec`` (default: the pool's spec)."""
        return self.acquire_many(1, spec, timeout=timeout)[0]

    def release(self, sandbox: BaseSandbox) -> None:
        """Give a sandbox back; it is destroyed (fresh sandbox per user) and replaced."""
        with self._cond:
            self._leased.pop(id(sandbox), None)
            if not self.closed:
                self._discard(sandbox)
                return
        sandbox.close()

    async def aacquire_many(self, count: int, spec: SandboxSpec | None = None, *,
                            timeout: float = 120.0) -> list[BaseSandbox]:
        """Async twin of :meth:`acquire_many`; waits on the event loop, not in a thread."""
        loop = asyncio.get_running_loop()
        with _Steps(self._acquire_plan(count, spec, timeout)) as steps:
            for step, arg in steps:
                if step == "wait":
                    generation, left = arg
                    with self._cond:
                        future = None
                        if self._generation == generation:
                            future = loop.create_future()
                            self._async_waiters.append((loop, future))
                    if future is not None:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(future, min(left, 1.0))
                    steps.reply = None
                else:
                    steps.reply = [await self._ahealthy(sandbox) for sandbox in arg]
        return steps.result

    async def aacquire(self, spec: SandboxSpec | None = None, *, timeout: float = 120.0) -> BaseSandbox:
        return (await self.aacquire_many(1, spec, timeout=timeout))[0]

    async def arelease(self, sandbox: BaseSandbox) -> None:
        self.release(sandbox)  # only queues the sandbox for the destroyer thread: never blocks

    @contextlib.contextmanager
    def sandbox(self, spec: SandboxSpec | None = None) -> Iterator[BaseSandbox]:
        """``with pool.sandbox() as sb:`` acquire, then release whatever happens."""
        sandbox = self.acquire(spec)
        try:
            yield sandbox
        finally:
            self.release(sandbox)

    @contextlib.asynccontextmanager
    async def asandbox(self, spec: SandboxSpec | None = None) -> AsyncIterator[BaseSandbox]:
        sandbox = await self.aacquire(spec)
        try:
            yield sandbox
        finally:
            await self.arelease(sandbox)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"idle": sum(len(q) for q in self._idle.values()), "leased": len(self._leased),
                    "starting": sum(self._starting.values()), "dying": self._dying + len(self._doomed),
                    "live": self._live(), "created": self.created}

    def close(self, timeout: float = 60.0) -> None:
        """Destroy every sandbox, idle and leased, and stop the threads. Idempotent."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            for idle in self._idle.values():
                while idle:
                    self._doomed.append(idle.popleft()[0])
            self._doomed.extend(self._leased.values())
            self._leased.clear()
            self._wake()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: dict[tuple[str, str, tuple[tuple[str, str], ...]], SandboxPool] = {}
_shared_lock = threading.Lock()


def shared_pool(*, backend: str | None = None, name: str = "shared",
                labels: dict[str, str] | None = None) -> SandboxPool:
    """The process-wide pool for ``(backend, name, labels)``, made on first use and closed at
    interpreter exit. It keeps nothing warm until users declare :meth:`SandboxPool.demand`;
    at most ``AGENTGYM_SANDBOX_POOL_MAX`` (default 64) sandboxes live at once."""
    key = ((backend or os.environ.get(BACKEND_ENV) or "auto").lower(), name, tuple(sorted((labels or {}).items())))
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None or pool.closed:
            max_size = int(os.environ.get(SHARED_MAX_ENV) or SHARED_MAX_DEFAULT)
            pool = _shared[key] = SandboxPool(backend=backend, warm=0, max_size=max_size, refill_per_s=20.0,
                                              parallel_starts=SHARED_PARALLEL_STARTS, name=name, labels=labels)
    return pool


def close_shared_pools() -> None:
    """Close every shared pool (their sandboxes are destroyed); the next use makes new ones."""
    with _shared_lock:
        pools = list(_shared.values())
        _shared.clear()
    for pool in pools:
        pool.close()


atexit.register(close_shared_pools)
