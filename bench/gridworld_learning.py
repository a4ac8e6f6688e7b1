"""Does the user's path learn the user's env? The example gridworld recipe against the random policy.

Why: users judge the library on their own first env. ``examples/gridworld`` is such an env (a
third-party package registered by entry point) and ``examples/gridworld/gridworld.yaml`` is the
embedded demo's recipe pointed at it. This script trains that recipe (tiny model built locally,
SFT warm start, GiGPO) and prints, on the same eval episodes (the recipe's task pool, the same
seeds and episode count as the trainer's own eval), the success rate of the uniform random
policy, of the model after the SFT warm start and after RL, with the wall time, the process CPU
time and ``os.getloadavg()`` (the 2 cores are shared: CPU seconds say what an idle machine would
take). Goal (issue 15): trained - random >= 0.25 within 10 minutes on 2 cores.

Overrides are recipe keys, e.g. an ablation of the SFT fix::

    .venv/bin/python bench/gridworld_learning.py                         # the recipe as shipped
    .venv/bin/python bench/gridworld_learning.py sft.imitate_exploration=true
    .venv/bin/python bench/gridworld_learning.py env.id=gridworld/Grid-v0   # the 5x5 grid
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "gridworld" / "gridworld.yaml"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rate(trajs: list) -> float:
    return sum(t.success for t in trajs) / max(len(trajs), 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    parser.add_argument("--recipe", default=str(RECIPE))
    # One thread: the tiny model's matrices are too small to gain from two, and on the shared machine
    # two threads waited on each other (a run took over 30 minutes that takes 5 with one).
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also append the result as one JSON line here")
    args = parser.parse_args(argv)

    try:  # installed (pip install examples/gridworld) or straight from the checkout
        import agentgym_gridworld  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "examples" / "gridworld"))
        import agentgym_gridworld  # noqa: F401
    import torch

    from agentgym.policies.simple import RandomPolicy
    from agentgym.trainers.config import load_recipe
    from agentgym.trainers.trainer import Trainer

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gridworld-bench-") as tmp:
        recipe = load_recipe(args.recipe, [f"model.path={tmp}/tiny", f"train.out_dir={tmp}/run", "train.plot=false",
                                           "train.tensorboard=false", "model.device=cpu", *args.overrides])
        t0, c0 = time.perf_counter(), _cpu_seconds()
        trainer = Trainer(recipe, resume=False)  # builds the tiny model (its tokenizer learns this env's text)
        rows = trainer.fit()
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        r, e = recipe.rollout, recipe.eval
        seeds = trainer.task_seeds(0, r.task_pool or r.tasks_per_iter)  # the trainer's own eval episodes
        random_trajs = trainer.collect(seeds, e.episodes_per_task, "random", policy=RandomPolicy(seed=recipe.seed))
        # Tasks never trained on (seeds past the pool): does the model read grids or recall layouts?
        unseen = [r.seed_start + len(seeds) + 1000 + i for i in range(len(seeds))]
        unseen_rates = [_rate(trainer.collect(unseen, e.episodes_per_task, tag, policy=policy))
                        for tag, policy in (("unseen-random", RandomPolicy(seed=recipe.seed)), ("unseen", None))]
    random_rate = _rate(random_trajs)
    evals = [(row["iteration"], row["eval/success_rate"]) for row in rows if "eval/success_rate" in row]
    after_sft, trained = evals[0][1], evals[-1][1]
    result = {
        "env": recipe.env.id, "overrides": args.overrides, "iterations": recipe.train.iterations,
        "eval_episodes": len(random_trajs), "random": random_rate, "after_sft": after_sft, "trained": trained,
        "trained_minus_random": trained - random_rate, "peak": max(v for _, v in evals),
        "rollout_success": [round(row["rollout/success_rate"], 3) for row in rows if "rollout/success_rate" in row],
        "unseen_random": unseen_rates[0], "unseen_trained": unseen_rates[1], "eval_curve": evals, "sft_imitated_turn_share": rows[0].get("sft/imitated_turn_share"),
        "wall_s": wall, "cpu_s": cpu, "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
    }
    print(f"{recipe.env.id}, {recipe.train.iterations} iterations, {len(random_trajs)} eval episodes "
          f"({len(seeds)} tasks x {e.episodes_per_task}), overrides {args.overrides or 'none'}")
    print(f"  {'policy':<22}{'eval success':>12}")
    print(f"  {'random':<22}{random_rate:>12.3f}")
    print(f"  {'after SFT warm start':<22}{after_sft:>12.3f}")
    print(f"  {'after RL':<22}{trained:>12.3f}   (peak {result['peak']:.3f})")
    print(f"  trained - random: {trained - random_rate:+.3f} (goal >= +0.25)")
    print(f"  on {len(unseen)} tasks outside the pool: random {unseen_rates[0]:.3f}, trained {unseen_rates[1]:.3f}")
    print("  rollout success per iteration: " + ", ".join(f"{v:.2f}" for v in result["rollout_success"]))
    print("  eval curve: " + ", ".join(f"{i}: {v:.3f}" for i, v in evals))
    print(f"  wall {wall:.0f} s, process CPU {cpu:.0f} s (model build, SFT, RL and evals; goal <= 600 s on 2 cores)")
    print(f"  load average at start {tuple(round(x, 2) for x in load_start)}, "
          f"at end {tuple(round(x, 2) for x in result['loadavg_end'])}")
    if args.json:
        with args.json.open("a") as out:
            out.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
