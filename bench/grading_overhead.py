"""What the hard time bound on math grading costs per answer (issue 21, item 3).

    .venv/bin/python bench/grading_overhead.py [--rounds 5]

Each of the 61 answer pairs of ``tests/envs/code/test_math_answers.py`` is graded two ways,
interleaved pair by pair so load from other processes falls on both alike: math-verify called
in this process on the main thread (what ``math_match`` did before: unbounded in any other
thread), and :func:`agentgym.envs.code.tasks.math_grade` (a grading worker process with a hard
time bound, from any thread). The workers are started and warmed before timing (a one-off cost
per worker, printed too). Prints p50/p99 per answer and the difference of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "envs" / "code"))

from test_math_answers import PAIRS  # noqa: E402

from agentgym.envs.code.tasks import math_grade  # noqa: E402


def direct(answer: str, gold: str) -> bool:
    from math_verify import parse, verify

    expected = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
    got = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    return bool(expected) and bool(got) and bool(verify(expected, got, timeout_seconds=None))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    start = time.perf_counter()
    math_grade("1", "1")  # starts and warms one worker
    print(f"first grade (worker start + math-verify import): {time.perf_counter() - start:.2f} s")
    direct("1", "1")
    times: dict[str, list[float]] = {"in process (unbounded)": [], "grading worker (bounded)": []}
    disagreements = 0
    for _ in range(args.rounds):
        for answer, gold, _expected in PAIRS:
            t0 = time.perf_counter()
            a = direct(answer, gold)
            t1 = time.perf_counter()
            b = math_grade(answer, gold)[0] == 1.0
            t2 = time.perf_counter()
            times["in process (unbounded)"].append(t1 - t0)
            times["grading worker (bounded)"].append(t2 - t1)
            disagreements += a != b
    print(f"load average at end: {os.getloadavg()}; {len(PAIRS)} pairs × {args.rounds} rounds")
    for name, xs in times.items():
        print(f"{name:28s} p50 {1e3 * statistics.median(xs):7.2f} ms   p99 {1e3 * pct(xs, 0.99):7.2f} ms")
    delta = statistics.median(times["grading worker (bounded)"]) - statistics.median(times["in process (unbounded)"])
    print(f"overhead of the bound (difference of medians): {1e3 * delta:.2f} ms per answer; "
          f"verdicts that differ: {disagreements}")


if __name__ == "__main__":
    main()
