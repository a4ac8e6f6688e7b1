"""Rollouts on Ray: the rollout engine runs inside Ray actors, trajectories stream to the driver.

Each :class:`RolloutWorker` actor holds its own envs (and, through them, its own sandbox pools)
and runs :func:`agentgym.rollout.rollout` on its share of the work items; the env travels as its
spec's JSON and the policy as a name plus keyword arguments (:func:`agentgym.policies.make_policy`),
so nothing but plain data crosses process or host boundaries. Every finished trajectory is
yielded at once (a Ray streaming generator) and the driver appends it to the run's single
:class:`~agentgym.store.TrajectoryStore`, so ``kill -9`` of the driver loses only episodes in
flight and ``--resume`` runs exactly the missing ones, as without Ray. Each trajectory records
the worker that ran it in ``info["rollout_worker"]`` (``host:pid``). Actors are spread over the
cluster's nodes (Ray's ``SPREAD`` strategy), and each one's sandboxes live on the Docker engine
its process sees (``DOCKER_HOST`` as exported where that node's ``ray start`` ran); see
docs/SCALING.md.

The trainer cannot ship its policy: it is the model being trained, updated in this process
between rollouts. So for it the split is the other way round (:class:`RayEnvPool`): only the envs
live in Ray actors (:class:`EnvHost`, each with its sandbox pools), while the engine and the
generation stay on the driver, which batches all episodes' requests on its own model. Each
``reset``/``step`` is one actor call; the env methods a policy calls synchronously
(``expert_action``, ``legal_actions``, ``format_results``, ``tool_schemas``) are a blocking round
trip each. Server-backed policies (openai, vLLM) could run in the actors too, but the trainer's
generation backend must see every request to batch them and to serve them from the weights it
just trained, so the trainer always uses this split.

Needs the ``ray`` extra. ``address=None`` starts a local cluster (or joins the one this process
already started); ``"auto"`` or ``"ray://host:10001"`` joins an existing cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from agentgym.core import InfraError, TextEnv
from agentgym.registry import EnvSpec
from agentgym.rollout import InfraBreaker, WorkItem
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Trajectory

__all__ = ["EnvHost", "RayEnvPool", "RemoteEnv", "RolloutWorker", "rollout_on_ray"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("rollouts on Ray need the ray extra: pip install 'agentgym-rl[ray]'") from e
    return ray


def _connect(address: str | None) -> Any:
    """The ``ray`` module, connected to ``address`` (unless this process already is)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RolloutWorker:
    """One Ray actor's rollout engine: its envs, its policy, its share of the episodes."""

    def __init__(self, spec_json: str, policy: str, policy_kwargs: dict[str, Any], *, concurrency: int = 8,
                 max_turns: int | None = None, max_tokens: int | None = None, step_timeout: float | None = None,
                 env_kwargs: dict[str, Any] | None = None):
        import agentgym  # noqa: F401 — registers the built-in envs in this worker process
        from agentgym.policies import make_policy

        self.spec = EnvSpec.from_json(spec_json)
        self.policy = make_policy(policy, **policy_kwargs)
        self.options = {"concurrency": concurrency, "max_turns": max_turns, "max_tokens": max_tokens,
                        "step_timeout": step_timeout, "env_kwargs": env_kwargs}
        self.name = _worker_name()

    async def run(self, items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """Run ``items``; yield each trajectory (as a dict) the moment it is finished."""
        from agentgym.rollout import rollout

        finished: asyncio.Queue[Trajectory] = asyncio.Queue()
        engine = asyncio.ensure_future(rollout(self.spec, self.policy, [WorkItem(**i) for i in items],
                                               on_done=finished.put_nowait, **self.options))
        for _ in items:
            getter = asyncio.ensure_future(finished.get())
            await asyncio.wait({getter, engine}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():  # the engine stopped early: raise its error (a policy bug)
                getter.cancel()
                engine.result()
            traj = getter.result()
            traj.info["rollout_worker"] = self.name
            yield traj.to_dict()
        await engine

    async def close(self) -> None:
        await self.policy.aclose()


async def rollout_on_ray(
    env_spec: EnvSpec,
    policy: str,
    items: list[WorkItem],
    *,
    policy_kwargs: dict[str, Any] | None = None,
    workers: int = 2,
    address: str | None = None,
    concurrency: int = 8,
    store: TrajectoryStore | None = None,
    max_turns: int | None = None,
    max_tokens: int | None = None,
    step_timeout: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
    stop_after_infra: int | None = None,
) -> list[Trajectory]:
    """:func:`agentgym.rollout.rollout` spread over ``workers`` Ray actors (each with
    ``concurrency`` episodes in flight). Whole groups go to one worker, round-robin.
    ``stop_after_infra`` is :func:`agentgym.rollout.run_rollouts`'s circuit breaker."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    breaker = InfraBreaker(stop_after_infra)
    ray = _connect(address)
    shares: list[list[dict[str, Any]]] = [[] for _ in range(workers)]
    for item in items:
        shares[item.task_index % workers].append(asdict(item))
    actor = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(RolloutWorker)
    pool = [actor.remote(env_spec.to_json(), policy, dict(policy_kwargs or {}), concurrency=concurrency,
                         max_turns=max_turns, max_tokens=max_tokens, step_timeout=step_timeout,
                         env_kwargs=env_kwargs) for share in shares if share]
    results: list[Trajectory] = []

    async def drain(worker: Any, share: list[dict[str, Any]]) -> None:
        async for ref in worker.run.remote(share):
            traj = Trajectory.from_dict(await ref)
            if store is not None:
                store.append(traj)
            results.append(traj)
            if on_done is not None:
                on_done(traj)
            breaker.record(traj)

    try:
        await asyncio.gather(*(drain(w, s) for w, s in zip(pool, [s for s in shares if s], strict=True)))
    finally:
        for worker in pool:
            try:
                await worker.close.remote()
            finally:
                ray.kill(worker)
    return results


class EnvHost:
    """One Ray actor holding envs for an engine on the driver (:class:`RayEnvPool`), by slot number.

    An async actor: its envs step concurrently (those with ``threaded_async`` in threads)."""

    def __init__(self, spec_json: str):
        import agentgym  # noqa: F401 — registers the built-in envs in this worker process

        self.spec = EnvSpec.from_json(spec_json)
        self.envs: dict[int, TextEnv] = {}
        self.name = _worker_name()

    async def make(self, slot: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Build the env of ``slot``; return what the driver's stand-in answers without a call."""
        env = self.envs[slot] = await asyncio.to_thread(self.spec.make, **kwargs)
        methods = [n for n in dir(env) if not n.startswith("_") and callable(getattr(env, n, None))]
        return {"system_prompt": env.system_prompt, "stop_sequences": tuple(env.stop_sequences),
                "max_turns": env.max_turns, "methods": methods, "host": self.name}

    async def reset(self, slot: int, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, ...]:
        env = self.envs[slot]
        obs, info = await env.areset(seed=seed, options=options)
        return obs, {**info, "rollout_worker": self.name}, env.turn

    async def step(self, slot: int, action: str) -> tuple[Any, ...]:
        env = self.envs[slot]
        return (*await env.astep(action), env.turn)

    async def call(self, slot: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await asyncio.to_thread(getattr(self.envs[slot], name), *args, **kwargs)

    async def close(self, slot: int) -> None:
        env = self.envs.pop(slot, None)
        if env is not None:
            await env.aclose()


class RemoteEnv:
    """The driver's stand-in for an env in an :class:`EnvHost`: what the engine and policies use.

    ``reset``/``step`` are awaited actor calls; the env's other public methods are forwarded as
    blocking calls; ``system_prompt``, ``stop_sequences``, ``max_turns`` and ``turn`` are local."""

    def __init__(self, host: Any, slot: int, meta: dict[str, Any]):
        self._host, self._slot, self._methods = host, slot, frozenset(meta["methods"])
        self.system_prompt: str = meta["system_prompt"]
        self.stop_sequences: tuple[str, ...] = meta["stop_sequences"]
        self.max_turns: int | None = meta["max_turns"]
        self.host: str = meta["host"]
        self.turn = 0

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        obs, info, self.turn = await self._host.reset.remote(self._slot, seed, options)
        return obs, info

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info, self.turn = await self._host.step.remote(self._slot, action)
        return obs, reward, terminated, truncated, info

    async def aclose(self) -> None:
        await self._host.close.remote(self._slot)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(name)
        ray = _ray()
        return lambda *args, **kwargs: ray.get(self._host.call.remote(self._slot, name, args, kwargs))


class RayEnvPool:
    """Envs in ``workers`` Ray actors for an engine that stays in this process (the trainer's):
    ``rollout(spec, policy, items, make_env=pool.make)``. Envs go to the actors round-robin;
    the actors live until :meth:`close`, so each rollout only builds envs, not processes."""

    def __init__(self, env_spec: EnvSpec, *, workers: int = 2, address: str | None = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        ray = _connect(address)
        actor = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(EnvHost)
        self.hosts = [actor.remote(env_spec.to_json()) for _ in range(workers)]
        self._slots = itertools.count()

    async def make(self, **kwargs: Any) -> RemoteEnv:
        """One env, built in the next live actor with ``spec.make(**kwargs)``.

        An actor that died is dropped (the episodes it was stepping already failed as infra);
        when none is left, the engine records each episode as an infra failure."""
        ray = _ray()
        while self.hosts:
            slot = next(self._slots)
            host = self.hosts[slot % len(self.hosts)]
            try:
                return RemoteEnv(host, slot, await host.make.remote(slot, kwargs))
            except ray.exceptions.RayActorError:
                if host in self.hosts:
                    self.hosts.remove(host)
        raise InfraError("every Ray env actor of this pool is dead")

    def close(self) -> None:
        ray = _ray()
        for host in self.hosts:
            ray.kill(host)
        self.hosts = []
