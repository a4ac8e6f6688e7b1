"""Rollouts on Ray: steps/s with 1 vs 2 rollout workers on an env with real per-step cost.

The env is ``agentgym/PythonTIR-v0`` with its scripted expert: every code turn runs in a sandbox
(``LocalSandbox`` here, one per episode, from each worker's own pool), so a step costs a real
process fork and a Python execution. Each configuration runs the same episodes on a local Ray
cluster (``ray.init(num_cpus=2)``); the 1-worker run is the baseline, measured in the same run.
Actor start-up is excluded: the actors are started and warmed up (a first share each) before the
timed share.

Then the trainer's split (``rollout.ray``: envs in actors, engine and policy here,
:class:`~agentgym.ray_rollout.RayEnvPool`) against the same engine with its envs in this process,
on ``Bifurcation-v0`` (microsecond steps, so what is measured is the per-step cost of the split: an
actor call per reset and step) with a fixed-action policy: steps/s and the driver's CPU time per
step, which bounds how many steps/s one trainer process can drive (docs/SCALING.md).

    .venv/bin/python bench/ray_scaling.py [--episodes 96] [--concurrency 4] [--pool-episodes 400]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import time

import ray

import agentgym
from agentgym.core import TextEnv
from agentgym.policies.base import Completion, Message, Policy
from agentgym.ray_rollout import RayEnvPool, RolloutWorker
from agentgym.rollout import plan, rollout


async def _run(worker: object, items: list) -> list[dict]:
    return [await ref async for ref in worker.run.remote([dataclasses.asdict(i) for i in items])]


async def steps_per_second(workers: int, episodes: int, concurrency: int, env_kwargs: dict) -> tuple[float, int]:
    spec = agentgym.spec("agentgym/PythonTIR-v0").to_json()
    actor = ray.remote(num_cpus=1)(RolloutWorker)
    pool = [actor.remote(spec, "scripted", {}, concurrency=concurrency, env_kwargs=env_kwargs) for _ in range(workers)]
    warm = plan(f"warm{workers}", tasks=concurrency * workers, group_size=1)
    await asyncio.gather(*(_run(w, warm[k::workers]) for k, w in enumerate(pool)))
    items = plan(f"run{workers}", tasks=episodes, group_size=1, seed=1000)
    start = time.perf_counter()
    shares = await asyncio.gather(*(_run(w, items[k::workers]) for k, w in enumerate(pool)))
    elapsed = time.perf_counter() - start
    trajs = [t for share in shares for t in share]
    for w in pool:
        ray.kill(w)
    return sum(len(t["turns"]) for t in trajs) / elapsed, sum(t["failure"] is not None for t in trajs)


class FirstOption(Policy):
    """Always option 1: a policy that costs nothing and never calls into the env."""

    name = "first-option"

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        return Completion(text="<answer>1</answer>")


def driver_cost(pool: RayEnvPool | None, episodes: int, concurrency: int) -> tuple[float, float]:
    """Steps/s and the driver's CPU microseconds per step of the in-process engine."""
    spec = agentgym.spec("agentgym/Bifurcation-v0")
    items = plan("pool" if pool else "local", tasks=episodes, group_size=1)
    wall, cpu = time.perf_counter(), time.process_time()
    trajs = asyncio.run(rollout(spec, FirstOption(), items, concurrency=concurrency,
                                make_env=pool.make if pool else None))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not any(t.failure for t in trajs), [t.failure_detail for t in trajs if t.failure][:3]
    steps = sum(t.num_turns for t in trajs)
    return steps / wall, 1e6 * cpu / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=4, help="Episodes in flight per worker.")
    parser.add_argument("--backend", default="local", help="Sandbox backend of the env (local or docker).")
    parser.add_argument("--pool-episodes", type=int, default=400, help="Bifurcation episodes per run of the "
                        "env-pool comparison (5 steps each, 64 in flight); 0: skip it.")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env_kwargs = {"backend": args.backend}
    one, failed1 = asyncio.run(steps_per_second(1, args.episodes, args.concurrency, env_kwargs))
    two, failed2 = asyncio.run(steps_per_second(2, args.episodes, args.concurrency, env_kwargs))
    if args.pool_episodes:
        pool = RayEnvPool(agentgym.spec("agentgym/Bifurcation-v0"), workers=2)
        driver_cost(pool, 64, 64)  # warm-up: the actors start and import
        remote, remote_cpu = driver_cost(pool, args.pool_episodes, 64)
        pool.close()
        local, local_cpu = driver_cost(None, args.pool_episodes, 64)
    ray.shutdown()
    print(f"# Ray rollout scaling, PythonTIR-v0 scripted, {args.episodes} episodes, {args.backend} sandboxes, "
          f"concurrency {args.concurrency}/worker ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"1 worker: {one:.1f} steps/s ({failed1} failed) | 2 workers: {two:.1f} steps/s ({failed2} failed) | "
          f"ratio {two / one:.2f}x (goal >= 1.7x)")
    if args.pool_episodes:
        print(f"# trainer split (RayEnvPool, 2 actors) vs envs in process, Bifurcation-v0, {args.pool_episodes} "
              f"episodes, 64 in flight (load {os.getloadavg()[0]:.1f})")
        print(f"in process: {local:.0f} steps/s, driver {local_cpu:.0f} us CPU/step | env pool: {remote:.0f} steps/s, "
              f"driver {remote_cpu:.0f} us CPU/step")


if __name__ == "__main__":
    main()
