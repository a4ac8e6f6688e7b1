"""ToolWorld throughput: steps/s with the scripted policy through the rollout engine, side by side
with a plain ``env.step`` loop over the same episodes, for each difficulty.

    .venv/bin/python bench/tool_env.py [--episodes 1000] [--concurrency 1 8 64] [--repeats 3]

A ToolWorld step parses the model's Hermes text, validates the arguments against the tool's
JSON schema, runs the tool on the world and hashes the changed state for ``state_key``; a reset
generates a world and a task and runs the gold plan on a copy. The runners are those of
``bench/rollout_overhead.py`` (one place for them); each is timed ``--repeats`` times and the best
time kept (the machine is shared). Steps per CPU-second (this process's CPU time, best run) are
printed too: on a machine shared with other work, wall-clock steps/s only says how much CPU the
run got. Goal: >= 2,000 steps/s through the engine on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from rollout_overhead import baseline, engine

VARIANTS = ("agentgym/ToolWorld-Easy-v0", "agentgym/ToolWorld-v0", "agentgym/ToolWorld-Hard-v0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=list(VARIANTS))
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def best(run: Callable[[], tuple[float, int]]) -> tuple[float, float, int]:
        """(best wall seconds, best CPU seconds, steps) over the repeats."""
        walls, cpus = [], []
        for _ in range(args.repeats):
            cpu = time.process_time()
            wall, steps = run()
            walls.append(wall)
            cpus.append(time.process_time() - cpu)
        return min(walls), min(cpus), steps

    print(f"{'env':28} {'runner':26} {'steps':>6} {'steps/s':>8} {'time vs loop':>13} {'steps/CPU-s':>12}")
    for env_id in args.env:
        engine(env_id, 50, 8, False)  # warm-up: imports, schema building
        base_s, base_cpu, base_steps = best(lambda e=env_id: baseline(e, list(range(args.episodes))))
        print(f"{env_id:28} {'plain env.step loop':26} {base_steps:>6} {base_steps / base_s:>8.0f} {'1.00':>13}"
              f" {base_steps / base_cpu:>12.0f}")
        for concurrency in args.concurrency:
            seconds, cpu, steps = best(lambda e=env_id, c=concurrency: engine(e, args.episodes, c, False))
            assert steps == base_steps, "engine and baseline must run the same episodes"
            print(f"{'':28} {f'engine, scripted, c={concurrency}':26} {steps:>6} {steps / seconds:>8.0f}"
                  f" {seconds / base_s:>13.2f} {steps / cpu:>12.0f}")

if __name__ == "__main__":
    main()
