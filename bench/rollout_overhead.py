"""Rollout-engine overhead: engine steps/s against a plain ``env.step`` loop, same env, same run.

    .venv/bin/python bench/rollout_overhead.py [--env agentgym/Sokoban-v0] [--episodes 2000]

The baseline loop asks the env's expert for each action and calls ``env.step`` directly. The
engine runs the same episodes (same seeds) with the scripted policy through ``rollout`` at
several concurrencies, without and with the JSONL store. Every runner is timed ``--repeats``
times and its best time kept (the machine is shared; the minimum is the least disturbed run).
Overhead per step is (engine time - baseline time) / steps. Goal: <= 0.2 ms per step, >= 3,000 steps/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Callable
from typing import Any

import agentgym
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import plan, rollout
from agentgym.store import TrajectoryStore


def baseline(env_id: str, seeds: list[int], kwargs: dict[str, Any] | None = None) -> tuple[float, int]:
    env = agentgym.make(env_id, **(kwargs or {}))
    steps = 0
    start = time.perf_counter()
    for seed in seeds:
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.expert_action())
            done = terminated or truncated
            steps += 1
    return time.perf_counter() - start, steps


def engine(
    env_id: str, episodes: int, concurrency: int, with_store: bool, kwargs: dict[str, Any] | None = None
) -> tuple[float, int]:
    items = plan("bench", tasks=episodes, group_size=1)
    spec = agentgym.spec(env_id)
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **(kwargs or {})})
    with tempfile.TemporaryDirectory() as tmp:
        store = TrajectoryStore(tmp) if with_store else None
        start = time.perf_counter()
        trajs = asyncio.run(
            rollout(spec, ScriptedPolicy(), items, concurrency=concurrency, store=store)
        )
        seconds = time.perf_counter() - start
        if store is not None:
            store.close()
    assert not any(t.failure for t in trajs), "the benchmark episodes must not fail"
    return seconds, sum(t.num_turns for t in trajs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="agentgym/Sokoban-v0")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def best(run: Callable[[], tuple[float, int]]) -> tuple[float, int]:
        return min(run() for _ in range(args.repeats))

    engine(args.env, 50, 8, False)  # warm-up: imports, expert caches
    base_s, base_steps = best(lambda: baseline(args.env, list(range(args.episodes))))
    print(f"env {args.env}, {args.episodes} episodes, {base_steps} steps")
    print(f"{'runner':34} {'steps/s':>10} {'us/step':>9} {'overhead us/step':>17} {'ratio':>7}")
    print(f"{'plain env.step loop (baseline)':34} {base_steps / base_s:>10.0f} {1e6 * base_s / base_steps:>9.1f}"
          f" {'-':>17} {'1.00':>7}")
    for with_store in (False, True):
        for concurrency in args.concurrency:
            seconds, steps = best(lambda c=concurrency, w=with_store: engine(args.env, args.episodes, c, w))
            assert steps == base_steps, "engine and baseline must run the same episodes"
            overhead = 1e6 * (seconds - base_s) / steps
            label = f"engine c={concurrency}{' + jsonl store' if with_store else ''}"
            print(f"{label:34} {steps / seconds:>10.0f} {1e6 * seconds / steps:>9.1f} {overhead:>17.1f}"
                  f" {seconds / base_s:>7.2f}")


if __name__ == "__main__":
    main()
