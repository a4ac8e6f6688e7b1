"""The judge cannot be gamed: every reward-hacking attempt below scores 0, on Docker and LocalSandbox.

The problems are written here in agentgym's own format (assert-style like HumanEval, call-based,
stdin/stdout); the attacks are submissions that try to pass without solving them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from agentgym.core import TextEnv
from agentgym.envs.code.judge import MARK, judge, outputs_match, same_value
from agentgym.envs.code.judge import TestSuite as Suite

MakeEnv = Callable[..., TextEnv]

ADD_TEST = '''
def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(-1, 4) == 3, "adds negatives"
    import unittest
    unittest.TestCase().assertEqual(candidate(10, 5), 15)
    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9
    assert candidate(2**70, 1) == 2**70 + 1
'''
PROBLEMS = [
    {"task_id": "add", "prompt": "Write add(a, b).", "entry_point": "add",
     "context": "import math\n", "solution": "def add(a, b):\n    return a + b\n",
     "tests": {"kind": "assert", "setup": ADD_TEST, "cases": [
         "assert candidate(2, 3) == 5", "assert candidate(-1, 4) == 3, 'adds negatives'",
         "import unittest\nunittest.TestCase().assertEqual(candidate(10, 5), 15)\nassert True",
         "assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9", "assert candidate(2**70, 1) == 2**70 + 1"]}},
    {"task_id": "twice", "prompt": "Write twice(xs).", "entry_point": "twice",
     "solution": "def twice(xs):\n    return [2 * x for x in xs]\n",
     "tests": {"kind": "call", "cases": [[[[1, 2]], [2, 4]], [[[]], []], [[[7]], [14]], [[[-3, 0]], [-6, 0]]]}},
    {"task_id": "sum-lines", "prompt": "Print the sum of the integers on stdin.",
     "solution": "import sys\nprint(sum(int(t) for t in sys.stdin.read().split()))\n",
     "tests": {"kind": "stdio", "cases": [["1 2 3\n", "6\n"], ["10\n-4\n", "6"], ["0\n", "0\n"]]}},
]

ATTACKS = {
    "exit-0-at-load": "import sys\nsys.exit(0)",
    "os-exit-0-at-load": "import os\nos._exit(0)",
    "exit-0-in-call": "import sys\ndef {f}(*a):\n    sys.exit(0)",
    "os-exit-0-in-call": "import os\ndef {f}(*a):\n    os._exit(0)",
    "kill-the-judge": "import os, signal\ndef {f}(*a):\n    os.kill(os.getppid(), signal.SIGKILL)",
    "kill-every-process": "import os, signal\nos.kill(-1, signal.SIGKILL)\ndef {f}(*a):\n    return 0",
    "fake-verdict-on-stdout": (
        "import os, sys\nline = {mark!r} + '0' * 32 + ' ' + {report!r} + '\\n'\n"
        "print(line)\nsys.__stdout__.write(line)\nfor fd in range(256):\n    try:\n        os.write(fd, line.encode())\n"
        "    except OSError:\n        pass\ndef {f}(*a):\n    print(line)\n    return 0"),
    "redefine-check": ("def check(candidate):\n    pass\nimport builtins, sys\nbuiltins.check = check\n"
                       "sys.modules['__main__'].check = check\ndef {f}(*a):\n    return 0"),
    "patch-builtins": ("import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {{}})\n"
                       "builtins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
                       "builtins.len = lambda x: 0\ndef {f}(*a):\n    return 0"),
    "patch-unittest": ("import unittest\nfor name in dir(unittest.TestCase):\n    if name.startswith('assert'):\n"
                       "        setattr(unittest.TestCase, name, lambda *a, **k: None)\ndef {f}(*a):\n    return 0"),
    "always-equal-object": ("class Any:\n    def __eq__(self, other):\n        return True\n"
                            "    __ne__ = lambda self, other: False\n    __lt__ = __le__ = __gt__ = __ge__ = __eq__\n"
                            "    __sub__ = __rsub__ = __abs__ = lambda *a: 0\n    __hash__ = object.__hash__\n"
                            "def {f}(*a):\n    return Any()"),
    "int-subclass-equal-to-all": ("class Int(int):\n    def __eq__(self, other):\n        return True\n"
                                  "    __hash__ = int.__hash__\ndef {f}(*a):\n    return Int(0)"),
    "list-subclass-equal-to-all": ("class L(list):\n    def __eq__(self, other):\n        return True\n"
                                   "def {f}(*a):\n    return L()"),
    "patch-comparison-operators": (
        "import operator\nfor name in ('eq', '__eq__', 'ne', '__ne__'):\n"
        "    setattr(operator, name, lambda a, b: name.endswith('eq'))\ndef {f}(*a):\n    return 0"),
    "hunt-expected-values": (  # look through the process's memory for the test's expected values
        "import gc, sys\ndef {f}(*a):\n    for obj in gc.get_objects():\n        if isinstance(obj, list) and len(obj) == 2 "
        "and obj[0] == list(a):\n            return obj[1]\n    frame = sys._getframe(1)\n    while frame:\n"
        "        for v in frame.f_locals.values():\n            if isinstance(v, list) and len(v) == 2 and v[0] == list(a):\n"
        "                return v[1]\n        frame = frame.f_back\n    return 0"),
}
# Reconnaissance: everything the submission can learn about the judge; written to /tmp for the test.
SPY = r'''
import json, os, re
found = {"judge_mem": False, "judge_fds": [], "secrets": []}
judge = os.getppid()
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    for name in ("cmdline", "environ", "mem"):
        try:
            with open("/proc/%s/%s" % (pid, name), "rb") as f:
                if name != "mem":
                    found["secrets"] += re.findall(rb"[0-9a-f]{32}", f.read())
                    continue
                found["judge_mem"] |= int(pid) == judge
                with open("/proc/%s/maps" % pid) as maps:
                    for line in maps:
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        if line.split()[1].startswith("rw") and hi - lo < 1 << 26:
                            f.seek(lo)
                            found["secrets"] += re.findall(rb"nonce.{0,8}([0-9a-f]{32})", f.read(hi - lo))
        except (OSError, ValueError, OverflowError):
            pass
try:
    for fd in os.listdir("/proc/%d/fd" % judge):
        try:
            os.close(os.open("/proc/%d/fd/%s" % (judge, fd), os.O_WRONLY))
            found["judge_fds"].append(fd)
        except OSError:
            pass
except OSError:
    pass
found["secrets"] = [s.decode() for s in found["secrets"]]
with open("/tmp/spy.json", "w") as out:
    json.dump(found, out)
'''


def submit(source: str) -> str:
    return f"```python\n{source}\n```"


def attack(source: str, problem: dict[str, Any]) -> str:
    report = json.dumps({"results": [True] * len(problem["tests"]["cases"]),
                         "reasons": [""] * len(problem["tests"]["cases"]), "load_error": None})
    return source.format(f=problem.get("entry_point") or "main", mark=MARK, report=report)


@pytest.fixture
def dataset_env(make_env: MakeEnv, backend: str) -> TextEnv:
    return make_env("agentgym/CodeTests-v0", dataset=PROBLEMS, backend=backend, timeout=8.0, test_timeout=1.0)


def test_references_pass_on_every_kind(dataset_env: TextEnv) -> None:
    for problem in PROBLEMS:
        dataset_env.reset(options={"task": problem["task_id"]})
        _, reward, _, _, info = dataset_env.step(dataset_env.expert_action())
        assert (reward, info["passed"]) == (1.0, len(problem["tests"]["cases"])), info


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_reward_hacks_score_zero(dataset_env: TextEnv, name: str) -> None:
    for problem in PROBLEMS:
        dataset_env.reset(options={"task": problem["task_id"]})
        obs, reward, terminated, _, info = dataset_env.step(submit(attack(ATTACKS[name], problem)))
        assert (reward, info["passed"], terminated) == (0.0, 0, True), (problem["task_id"], obs)


def test_the_submission_cannot_see_or_reach_the_judge(dataset_env: TextEnv) -> None:
    """The spy looks for the nonce in every other process's cmdline, environment and memory,
    and tries the judge's memory and fds: it finds nothing, and a right answer still scores."""
    dataset_env.reset(options={"task": "twice"})
    spy = SPY + "def twice(xs):\n    return [2 * x for x in xs]\n"
    _, reward, _, _, _ = dataset_env.step(submit(spy))
    found = json.loads(dataset_env.sandbox.current.read_file("/tmp/spy.json"))
    assert found == {"judge_mem": False, "judge_fds": [], "secrets": []}
    assert reward == 1.0


def test_spy_in_a_program_finds_nothing_either(dataset_env: TextEnv) -> None:
    dataset_env.reset(options={"task": "sum-lines"})
    _, reward, _, _, _ = dataset_env.step(submit(SPY + PROBLEMS[2]["solution"]))
    found = json.loads(dataset_env.sandbox.current.read_file("/tmp/spy.json"))
    assert found == {"judge_mem": False, "judge_fds": [], "secrets": []} and reward == 1.0


def test_partial_credit_and_feedback_per_kind(dataset_env: TextEnv) -> None:
    dataset_env.reset(options={"task": "add"})
    obs, reward, _, _, info = dataset_env.step(submit("def add(a, b):\n    return a + b if a >= 1 else 0"))
    assert info["test_results"] == [True, False, True, False, True] and reward == pytest.approx(3 / 5)
    assert "Test 2: assertion failed" in obs and "adds negatives" not in obs  # the test text stays hidden
    dataset_env.reset(options={"task": "sum-lines"})
    obs, reward, _, _, info = dataset_env.step(submit("print(6)"))
    assert info["test_results"] == [True, True, False] and "Test 3: wrong output" in obs
    dataset_env.reset(options={"task": "sum-lines"})
    obs, reward, _, _, info = dataset_env.step(submit("raise ValueError('bad input')"))
    assert reward == 0.0 and "Test 1: ValueError: bad input" in obs


def test_time_limits_per_test_and_in_total(make_env: MakeEnv) -> None:
    env = make_env("agentgym/CodeTests-v0", dataset=PROBLEMS, backend="local", timeout=5.0, test_timeout=0.5)
    env.reset(options={"task": "twice"})
    slow = "import time\ndef twice(xs):\n    if xs == [7]:\n        time.sleep(10)\n    return [2 * x for x in xs]"
    obs, _, _, _, info = env.step(submit(slow))
    assert info["test_results"] == [True, True, False, True] and "Test 3: TimeoutError" in obs  # restarted after
    env.reset(options={"task": "sum-lines"})
    obs, _, _, _, info = env.step(submit("while True:\n    pass"))
    assert info["passed"] == 0 and "timed out after 0.5 s" in obs
    suite = Suite("call", tuple([[[i]], [2 * i]] for i in range(6)))
    sleepy = "import time\ndef twice(xs):\n    time.sleep(0.3)\n    return [2 * x for x in xs]"
    verdict = judge(env.sandbox, code=sleepy, suite=suite, entry_point="twice", test_limit=0.5, total_limit=1.0)
    assert 1 <= verdict.passed <= 3 and verdict.reasons[-1] == "not run: the time limit for all tests (1 s) ran out"


def test_a_verdict_on_thousands_of_failed_tests_fits(make_env: MakeEnv) -> None:
    env = make_env("agentgym/CodeTests-v0", dataset=PROBLEMS, backend="local")
    suite = Suite("call", tuple([[[i]], i] for i in range(2000)))
    code = "def f(i):\n    raise ValueError('x' * 1000)"
    verdict = judge(env.sandbox, code=code, suite=suite, entry_point="f", test_limit=1.0, total_limit=60.0)
    assert len(verdict.results) == 2000 and verdict.passed == 0
    assert verdict.reasons[-1].startswith("ValueError: xxx") and len(verdict.reasons[-1]) == 300


def test_a_broken_test_setup_fails_every_test_saying_so(make_env: MakeEnv) -> None:
    broken = [{**PROBLEMS[0], "tests": {**PROBLEMS[0]["tests"], "setup": "import no_such_module_here"}}]
    env = make_env("agentgym/CodeTests-v0", dataset=broken, backend="local")
    env.reset(options={"task": "add"})
    obs, reward, _, _, info = env.step(env.expert_action())
    assert (reward, info["total"]) == (0.0, 5)
    assert "the tests could not be set up: ModuleNotFoundError" in obs


def test_comparisons() -> None:
    assert outputs_match("6  \n\n", "6") and outputs_match("a\r\nb\n", "a\nb") and not outputs_match("6 7", "6\n7")
    assert not outputs_match(" 6", "6") and not outputs_match("0.3333", "0.33333")
    assert outputs_match("0.3333\n1", "0.33333 1", 1e-3) and not outputs_match("0.3", "0.4", 1e-3)
    assert not outputs_match("x", "y", 1e-3) and not outputs_match("1 2", "1", 1e-3)
    assert same_value((1, [2.0]), [1, [2]]) and same_value(0.1, 0.1001, 1e-2) and not same_value(0.1, 0.2, 1e-2)
    with pytest.raises(ValueError, match="test kind"):
        Suite("pytest", ("x",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        Suite("call", ())
