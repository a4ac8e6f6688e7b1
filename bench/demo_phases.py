"""Wall time of each phase of the demo (scripts/demo.sh's recipe), with the load average.

    .venv/bin/python bench/demo_phases.py                        # the demo as it ships
    .venv/bin/python bench/demo_phases.py --threads 1,2 sft.steps=40 train.iterations=2 eval.every=0

Each thread count runs the recipe (plus any overrides) from scratch, building its tiny model
(as a first demo does); "setup" is that build and the model load. The machine may be shared:
read the load averages beside the times (the 1-minute load before and after each run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict


def run(recipe: str, overrides: list[str], threads: int | None) -> dict:
    from agentgym.trainers.config import load_recipe
    from agentgym.trainers.progress import Progress
    from agentgym.trainers.trainer import Trainer

    class Timer(Progress):
        """Adds up each phase's wall time (phases run one at a time)."""

        def __init__(self, iterations: int):
            super().__init__(iterations)
            self.seconds: dict[str, float] = defaultdict(float)
            self.count: dict[str, int] = defaultdict(int)

        def end(self) -> None:
            assert self.phase is not None
            self.seconds[self.phase.name] += time.monotonic() - self.phase.started
            self.count[self.phase.name] += 1
            super().end()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="demo-phases-") as tmp:
        extra = [] if threads is None else [f"train.threads={threads}"]
        rec = load_recipe(recipe, [f"model.path={tmp}/tiny", f"train.out_dir={tmp}/run", "train.tensorboard=false",
                                   "model.device=cpu", *extra, *overrides])
        t0 = time.monotonic()
        trainer = Trainer(rec, resume=False)
        setup = time.monotonic() - t0
        import torch

        timer = Timer(rec.train.iterations)
        rows = trainer.fit(progress=timer)
        total = time.monotonic() - t0
    evals = [r["eval/success_rate"] for r in rows if "eval/success_rate" in r]
    return {"threads": torch.get_num_threads(), "setup": setup, "seconds": dict(timer.seconds),
            "count": dict(timer.count), "total": total, "load": (load_before, os.getloadavg()[0]), "evals": evals}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    parser.add_argument("--recipe", default="demo_bifurcation")
    parser.add_argument("--threads", default="auto", help="comma-separated torch thread counts, or auto (the recipe's)")
    args = parser.parse_args(argv)
    counts = [None if t == "auto" else int(t) for t in args.threads.split(",")]
    print(f"{args.recipe} {' '.join(args.overrides)}  ({os.cpu_count()} CPUs, python {sys.version.split()[0]})")
    for threads in counts:
        r = run(args.recipe, args.overrides, threads)
        print(f"\n{r['threads']} torch thread(s); load (1 min) {r['load'][0]:.2f} before, {r['load'][1]:.2f} after")
        print(f"  {'setup (build + load)':24s} {r['setup']:7.1f} s")
        for name, seconds in r["seconds"].items():
            print(f"  {name:24s} {seconds:7.1f} s  ({r['count'][name]}×, {seconds / r['count'][name]:.2f} s each)")
        print(f"  {'total':24s} {r['total']:7.1f} s   eval success {' → '.join(f'{e:.3f}' for e in r['evals'])}")


if __name__ == "__main__":
    main()
