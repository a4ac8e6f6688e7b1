"""Rollouts on Ray: the rollout engine runs inside Ray actors, trajectories stream to the driver.

Each :class:`RolloutWorker` actor holds its own envs (and, through them, its own sandbox pools)
and runs :func:`agentgym.rollout.rollout` on its share of the work items; the env travels as its
spec's JSON and the policy as a name plus keyword arguments (:func:`agentgym.policies.make_policy`),
so nothing but plain data crosses process or host boundaries. Every finished trajectory is
yielded at once (a Ray streaming generator) and the driver appends it to the run's single
:class:`~agentgym.store.TrajectoryStore`, so ``kill -9`` of the driver loses only episodes in
flight and ``--resume`` runs exactly the missing ones, as without Ray. Each trajectory records
the worker that ran it in ``info["rollout_worker"]`` (``host:pid``).

Needs the ``ray`` extra. ``address=None`` starts a local cluster (or joins the one this process
already started); ``"auto"`` or ``"ray://host:10001"`` joins an existing cluster.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from agentgym.registry import EnvSpec
from agentgym.rollout import WorkItem
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Trajectory

__all__ = ["RolloutWorker", "rollout_on_ray"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("rollouts on Ray need the ray extra: pip install 'agentgym-rl[ray]'") from e
    return ray


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
        self.name = f"{socket.gethostname()}:{os.getpid()}"

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
) -> list[Trajectory]:
    """:func:`agentgym.rollout.rollout` spread over ``workers`` Ray actors (each with
    ``concurrency`` episodes in flight). Whole groups go to one worker, round-robin."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    shares: list[list[dict[str, Any]]] = [[] for _ in range(workers)]
    for item in items:
        shares[item.task_index % workers].append(asdict(item))
    actor = ray.remote(num_cpus=1)(RolloutWorker)
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

    try:
        await asyncio.gather(*(drain(w, s) for w, s in zip(pool, [s for s in shares if s], strict=True)))
    finally:
        for worker in pool:
            try:
                await worker.close.remote()
            finally:
                ray.kill(worker)
    return results
