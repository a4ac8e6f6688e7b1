"""Rollouts on Ray: steps/s with 1 vs 2 rollout workers on an env with real per-step cost.

The env is ``agentgym/PythonTIR-v0`` with its scripted expert: every code turn runs in a sandbox
(``LocalSandbox`` here, one per episode, from each worker's own pool), so a step costs a real
process fork and a Python execution. Each configuration runs the same episodes on a local Ray
cluster (``ray.init(num_cpus=2)``); the 1-worker run is the baseline, measured in the same run.
Actor start-up is excluded: the actors are started and warmed up (a first share each) before the
timed share.

    .venv/bin/python bench/ray_scaling.py [--episodes 96] [--concurrency 4]
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
from agentgym.ray_rollout import RolloutWorker
from agentgym.rollout import plan


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=4, help="Episodes in flight per worker.")
    parser.add_argument("--backend", default="local", help="Sandbox backend of the env (local or docker).")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env_kwargs = {"backend": args.backend}
    one, failed1 = asyncio.run(steps_per_second(1, args.episodes, args.concurrency, env_kwargs))
    two, failed2 = asyncio.run(steps_per_second(2, args.episodes, args.concurrency, env_kwargs))
    ray.shutdown()
    print(f"# Ray rollout scaling, PythonTIR-v0 scripted, {args.episodes} episodes, {args.backend} sandboxes, "
          f"concurrency {args.concurrency}/worker ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"1 worker: {one:.1f} steps/s ({failed1} failed) | 2 workers: {two:.1f} steps/s ({failed2} failed) | "
          f"ratio {two / one:.2f}x (goal >= 1.7x)")


if __name__ == "__main__":
    main()
