"""TextWorld env speed: game generation, load and reset latency, and steps/s through the
rollout engine against a plain ``env.step`` loop, same episodes, same run.

    .venv/bin/python bench/textworld_env.py [--env agentgym/TextWorld-v0] [--games 8] [--episodes 64]

Games are generated into a fresh temporary cache first (timed per game: TextWorld's maker plus
two Inform 7 compiles), so every later number plays cached games. The step comparison reuses
``bench/rollout_overhead.py``: the scripted (walkthrough) policy, best of ``--repeats``.
Every env instance loads each game it plays once (a Z-machine per game), so the engine at
concurrency c pays up to c times the loads of the single-env baseline; the table says how much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from rollout_overhead import baseline, engine

import agentgym
from agentgym.envs.textworld.games import game_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="agentgym/TextWorld-v0")
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["AGENTGYM_CACHE"] = cache
        kwargs = {"num_games": args.games}
        spec = agentgym.spec(args.env)
        game, difficulty = spec.kwargs.get("game", "cooking"), spec.kwargs.get("difficulty", "easy")
        gen = []
        for seed in range(args.games):
            start = time.perf_counter()
            game_file(game, difficulty, seed)
            gen.append(time.perf_counter() - start)
        print(f"env {args.env} ({game}, {difficulty}), {args.games} games")
        print(f"generate (maker + compile): mean {statistics.mean(gen):.2f} s/game, max {max(gen):.2f} s")

        env = agentgym.make(args.env, **kwargs)
        loads, resets = [], []
        for index in range(args.games):
            start = time.perf_counter()
            env.reset(options={"game": index})  # first play of the game in this env: a load
            loads.append(time.perf_counter() - start)
        for index in list(range(args.games)) * 3:
            start = time.perf_counter()
            env.reset(options={"game": index})
            resets.append(time.perf_counter() - start)
        env.close()
        print(f"first reset of a game (load): p50 {1e3 * statistics.median(loads):.0f} ms; "
              f"later resets: p50 {1e3 * statistics.median(resets):.1f} ms")

        def best(run):
            return min(run() for _ in range(args.repeats))

        base_s, base_steps = best(lambda: baseline(args.env, list(range(args.episodes)), kwargs))
        print(f"{args.episodes} episodes, {base_steps} steps (walkthrough policy)")
        print(f"{'runner':34} {'steps/s':>10} {'ms/step':>9} {'ratio':>7}")
        print(f"{'plain env.step loop (baseline)':34} {base_steps / base_s:>10.1f} {1e3 * base_s / base_steps:>9.2f}"
              f" {'1.00':>7}")
        for concurrency in args.concurrency:
            seconds, steps = best(lambda c=concurrency: engine(args.env, args.episodes, c, False, kwargs))
            assert steps == base_steps, "engine and baseline must run the same episodes"
            print(f"{f'engine c={concurrency}':34} {steps / seconds:>10.1f} {1e3 * seconds / steps:>9.2f}"
                  f" {seconds / base_s:>7.2f}")


if __name__ == "__main__":
    main()
