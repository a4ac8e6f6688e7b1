"""ToolWorld throughput: steps/s with the scripted policy through the rollout engine, side by side
with a plain ``env.step`` loop over the same episodes, for each difficulty.

    .venv/bin/python bench/tool_env.py [--episodes 1000] [--concurrency 1 8 64] [--repeats 3]

A ToolWorld step parses the model's Hermes text, validates the arguments against the tool's
JSON schema, runs the tool on the world and hashes the changed state for ``state_key``; a reset
generates a world and a task and runs the gold plan on a copy. The runners are those of
``bench/rollout_overhead.py`` (one place for them); each is timed ``--repeats`` times and the best
time kept (the machine is shared). Goal: >= 2,000 steps/s through the engine on 2 cores.
"""

from __future__ import annotations

import argparse
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

    def best(run: Callable[[], tuple[float, int]]) -> tuple[float, int]:
        return min(run() for _ in range(args.repeats))

    print(f"{'env':28} {'runner':30} {'steps':>7} {'steps/s':>9} {'us/step':>8} {'time vs loop':>13}")
    for env_id in args.env:
        engine(env_id, 50, 8, False)  # warm-up: imports, schema building
        base_s, base_steps = best(lambda e=env_id: baseline(e, list(range(args.episodes))))
        print(f"{env_id:28} {'plain env.step loop':30} {base_steps:>7} {base_steps / base_s:>9.0f}"
              f" {1e6 * base_s / base_steps:>8.1f} {'1.00':>13}")
        for concurrency in args.concurrency:
            seconds, steps = best(lambda e=env_id, c=concurrency: engine(e, args.episodes, c, False))
            assert steps == base_steps, "engine and baseline must run the same episodes"
            print(f"{'':28} {f'engine, scripted, c={concurrency}':30} {steps:>7} {steps / seconds:>9.0f}"
                  f" {1e6 * seconds / steps:>8.1f} {seconds / base_s:>13.2f}")


if __name__ == "__main__":
    main()
