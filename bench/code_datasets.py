"""Problems judged per second: HumanEval's 164 canonical solutions beside our 32-problem set.

Every problem's reference solution goes through the hardened judge (``envs/code/judge.py``: a
harness process plus a freshly exec'd worker per submission) with ``judge_many``, on Docker and
on LocalSandbox, with 1 and 8 sandboxes at a time. The baseline measured in the same run is a
bare sandbox call (``pass``) per problem, the floor any judge pays. Sandbox start-up is
included (one sandbox per lane). Needs the ``humaneval`` extra, and for Docker an engine and the
python sandbox image (``agentgym sandbox build python``).

    .venv/bin/python bench/code_datasets.py [--backends docker,local] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from agentgym.envs.code.datasets import CodeProblem, from_builtin, load_code_dataset
from agentgym.envs.code.judge import judge_many
from agentgym.envs.code.problems import PROBLEMS
from agentgym.sandboxes import SandboxSpec, make_sandbox

LABELS = {"agentgym.bench": "1"}


def bare_calls(count: int, backend: str, concurrency: int) -> float:
    """Calls/s of ``pass`` in ``concurrency`` sandboxes: the sandbox's own cost per submission."""
    def lane(index: int) -> None:
        with make_sandbox(SandboxSpec(), backend=backend, pool="bench", labels=LABELS) as box:
            for _ in range(index, count, concurrency):
                box.run_python("pass")

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lane, range(concurrency)))
    return count / (time.perf_counter() - start)


def judged(problems: list[CodeProblem], backend: str, concurrency: int) -> tuple[float, int]:
    """(problems judged per second, how many passed every test)."""
    start = time.perf_counter()
    verdicts = judge_many(problems, [p.solution or "" for p in problems], backend=backend, concurrency=concurrency,
                          labels=LABELS)
    return len(problems) / (time.perf_counter() - start), sum(all(v.results) for v in verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="docker,local")
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    sets = {"HumanEval (164)": load_code_dataset("humaneval"), "CodeTests (32)": [from_builtin(p) for p in PROBLEMS]}
    print(f"{'problems':<16}{'backend':<8}{'conc':>5}{'judged/s':>10}{'passed':>9}{'bare calls/s':>14}{'ratio':>7}")
    for backend in args.backends.split(","):
        for concurrency in map(int, args.concurrency.split(",")):
            for name, problems in sets.items():
                rate, passed = judged(problems, backend, concurrency)
                bare = bare_calls(len(problems), backend, concurrency)
                print(f"{name:<16}{backend:<8}{concurrency:>5}{rate:>10.1f}{passed:>5}/{len(problems):<3}"
                      f"{bare:>14.1f}{rate / bare:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
