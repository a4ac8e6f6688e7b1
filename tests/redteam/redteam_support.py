"""The red-team suite's one verdict check and its problems (imported by the tests beside it).

Every forged submission in ``tests/redteam`` ends in :func:`assert_held`: the env paid no reward
and did not call the episode a success. ``info["success"]`` is what each env says success is; an
env that does not set it yet counts as not claiming it.
"""

from __future__ import annotations

from typing import Any

from agentgym.envs.code.judge import MARK


def assert_held(reward: float, info: dict[str, Any], what: str) -> None:
    """The attack earned nothing: reward exactly 0 and no success claim."""
    assert reward == 0.0, f"{what}: reward {reward!r}"
    assert not info.get("success"), f"{what}: info['success'] is {info.get('success')!r}"


def episode(env: Any, actions: list[str], *, seed: int | None = 0, options: dict | None = None) -> tuple[float, dict]:
    """Reset, play ``actions`` until the episode ends; (summed reward, last info, success seen)."""
    env.reset(seed=seed, options=options)
    total, info, success = 0.0, {}, False
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        success |= bool(info.get("success"))
        if terminated or truncated:
            break
    return total, {**info, "success": success}


# Problems in agentgym's own format, one of each test kind (HumanEval-style asserts, call-based
# MBPP/APPS, stdin/stdout APPS); the attacks try to pass them without solving them.
ADD_SETUP = '''
def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(-1, 4) == 3
'''
PROBLEMS = [
    {"task_id": "add", "prompt": "Write add(a, b).", "entry_point": "add",
     "solution": "def add(a, b):\n    return a + b\n",
     "tests": {"kind": "assert", "setup": ADD_SETUP, "cases": [
         "assert candidate(2, 3) == 5", "assert candidate(-1, 4) == 3", "check(candidate)",
         "import unittest\nunittest.TestCase().assertEqual(candidate(10, 5), 15)"]}},
    {"task_id": "twice", "prompt": "Write twice(xs).", "entry_point": "twice",
     "solution": "def twice(xs):\n    return [2 * x for x in xs]\n",
     "tests": {"kind": "call", "cases": [[[[1, 2]], [2, 4]], [[[]], []], [[[7]], [14]]]}},
    {"task_id": "sum-lines", "prompt": "Print the sum of the integers on stdin.",
     "solution": "import sys\nprint(sum(int(t) for t in sys.stdin.read().split()))\n",
     "tests": {"kind": "stdio", "cases": [["1 2 3\n", "6\n"], ["10\n-4\n", "6"], ["0\n", "0\n"]]}},
]


def fake_report(problem: dict[str, Any]) -> str:
    """A verdict body claiming every test of ``problem`` passed."""
    n = len(problem["tests"]["cases"])
    return '{"results": [' + ", ".join(["true"] * n) + '], "reasons": [' + ", ".join(['""'] * n) + '], "load_error": null}'


def fill(source: str, problem: dict[str, Any]) -> str:
    """An attack's source for ``problem``: ``{f}`` is the entry point, ``{mark}``/``{report}`` a
    forged verdict line's parts."""
    return (source.replace("{f}", problem.get("entry_point") or "main").replace("{mark}", repr(MARK))
            .replace("{report}", repr(fake_report(problem))))
