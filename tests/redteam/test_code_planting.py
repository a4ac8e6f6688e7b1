"""Planted modules: a submission writes modules wherever user code can write, hoping that the
judge of a later submission in the same sandbox imports them (issue 21, item 1).

The attack of the issue: attempt 1 writes ``pickle.py`` (and every other stdlib name the judge
imports) into the work dir, /tmp and the user site; each planted module loads the real one and
patches ``json.dumps`` so the judge's report says every test passed. Attempt 2 is wrong. On Docker
the executor ran without ``-I``, so the work dir was on every call's ``sys.path`` and the wrong
attempt scored 1.0. Here every such submission must score 0, on both backends, in CodeTests-v0
with two attempts (assert, call and APPS stdin/stdout problems), HumanEval-v0 and ``judge_many``.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import TEST_LABELS

from agentgym.core import TextEnv
from agentgym.envs.code.datasets import load_code_dataset
from agentgym.envs.code.judge import judge_many
from agentgym.sandboxes import SandboxSpec, make_sandbox

# Every module the judge's harness imports, plus the start-up hooks of a fresh interpreter.
PLANTED = ("pickle", "shutil", "subprocess", "tempfile", "typing", "types", "math", "ctypes", "resource",
           "select", "signal", "struct", "time", "builtins", "sitecustomize", "usercustomize", "planted_probe")
FORGE = r'''
import sys
if __name__ not in ("sitecustomize", "usercustomize"):
    _mine = __file__.rsplit("/", 1)[0]
    _saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", _mine)]
    del sys.modules[__name__]
    _real = __import__(__name__)
    sys.path[:] = _saved
    sys.modules[__name__] = _real
import json
_dumps = json.dumps
def _forged(obj, *args, **kwargs):
    if isinstance(obj, dict) and "results" in obj:
        n = len(obj["results"])
        obj = {"results": [True] * n, "reasons": [""] * n, "load_error": None}
    return _dumps(obj, *args, **kwargs)
json.dumps = _forged
open("/tmp/planted-module-ran", "a").write(__name__ + "\n")
'''
PLANT = f'''
import os, sys
forge = {FORGE!r}
home = os.environ.get("HOME", "/tmp")
site = os.path.join(home, ".local", "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
for where in {{os.getcwd(), os.path.dirname(os.getcwd()), "/workspace", "/tmp/work", "/tmp", home, site,
              *[p for p in sys.path if p]}}:
    for name in {PLANTED!r}:
        try:
            os.makedirs(where, exist_ok=True)
            with open(os.path.join(where, name + ".py"), "w") as f:
                f.write(forge)
        except OSError:
            pass
'''
INC_TEST = "def check(candidate):\n    assert candidate(1) == 2\n"
DATASET = [
    {"task_id": "inc", "prompt": "Write inc(x).", "entry_point": "inc", "solution": "def inc(x):\n    return x + 1\n",
     "tests": {"kind": "assert", "setup": INC_TEST,
               "cases": ["assert candidate(1) == 2", "assert candidate(5) == 6", "assert candidate(9) == 10"]}},
    {"task_id": "double", "prompt": "Write double(x).", "entry_point": "double",
     "solution": "def double(x):\n    return 2 * x\n",
     "tests": {"kind": "call", "cases": [[[1], 2], [[3], 6], [[4], 8]]}},
]
APPS = [{"problem_id": 4000, "question": "Print the sum of the two integers on stdin.",
         "input_output": {"inputs": ["1 2\n", "10 5\n", "3 3\n"], "outputs": ["3\n", "15\n", "6\n"]},
         "solutions": ["a, b = map(int, input().split())\nprint(a + b)\n"]}]
WRONG = {"inc": "def inc(x):\n    return 0\n", "double": "def double(x):\n    return 0\n", "4000": "print(0)\n",
         "HumanEval/0": "def has_close_elements(numbers, threshold):\n    return None\n"}


def submit(code: str) -> str:
    return f"```python\n{code}\n```"


def plant_then_resubmit(env: TextEnv, task: str) -> tuple[float, dict[str, Any]]:
    """Attempt 1 plants (and is wrong), attempt 2 is wrong: the planted judge would pass it."""
    env.reset(options={"task": task})
    _, reward, terminated, _, info = env.step(submit(PLANT + WRONG[task]))
    assert (reward, terminated, info["passed"]) == (0.0, False, 0), info
    _, reward, terminated, _, info = env.step(submit(WRONG[task]))
    assert terminated
    return reward, info


@pytest.mark.parametrize("task", ["inc", "double"])
def test_codetests_second_attempt_cannot_use_planted_modules(make_env, backend: str, task: str) -> None:  # noqa: ANN001
    env = make_env("agentgym/CodeTests-v0", dataset=DATASET, backend=backend, max_attempts=2, test_timeout=2.0)
    reward, info = plant_then_resubmit(env, task)
    assert (reward, info["passed"], info["all_passed"]) == (0.0, 0, False), info
    # The right answer after the plant still scores: the judge works, it just ignores the plants.
    env.reset(options={"task": task})
    env.step(submit(PLANT + WRONG[task]))
    assert env.step(env.expert_action())[1] == 1.0


def test_apps_stdio_second_attempt_cannot_use_planted_modules(make_env, backend: str) -> None:  # noqa: ANN001
    env = make_env("agentgym/CodeTests-v0", dataset=APPS, backend=backend, max_attempts=2, test_timeout=2.0)
    reward, info = plant_then_resubmit(env, "4000")
    assert (reward, info["passed"]) == (0.0, 0), info


def test_humaneval_second_attempt_cannot_use_planted_modules(make_env, backend: str) -> None:  # noqa: ANN001
    env = make_env("agentgym/HumanEval-v0", backend=backend, max_attempts=2, problems=["HumanEval/0"])
    reward, info = plant_then_resubmit(env, "HumanEval/0")
    assert (reward, info["passed"]) == (0.0, 0), info


def test_judge_many_later_problems_cannot_use_planted_modules(backend: str) -> None:
    problems = load_code_dataset("humaneval")[:4]
    codes = [PLANT + WRONG["HumanEval/0"]] + [f"def {p.entry_point}(*args):\n    return None\n" for p in problems[1:]]
    verdicts = judge_many(problems, codes, backend=backend, concurrency=1, labels=TEST_LABELS, test_limit=2.0)
    assert [v.passed for v in verdicts] == [0, 0, 0, 0]


def test_no_call_process_imports_what_user_code_wrote(backend: str) -> None:
    """Below the judge: after a call plants modules, no later call's ``sys.path`` holds a dir that
    user code can write, and stdlib names resolve to the stdlib."""
    with make_sandbox(SandboxSpec(), backend=backend, labels=TEST_LABELS) as box:
        assert box.run_python(PLANT).ok
        probe = box.run_python(
            "import os, sys, pickle, tempfile\n"
            "assert sys.flags.isolated, sys.flags\n"
            "bad = [p for p in sys.path if not p or (os.path.isabs(p) and os.access(p, os.W_OK))]\n"
            "assert not bad, bad\n"
            "for module in (pickle, tempfile):\n"
            "    assert not os.access(os.path.dirname(module.__file__), os.W_OK), module.__file__\n"
            "try:\n    import planted_probe\nexcept ImportError:\n    pass\nelse:\n    raise AssertionError(planted_probe)\n"
            "assert not os.path.exists('/tmp/planted-module-ran'), open('/tmp/planted-module-ran').read()\n")
        assert probe.ok, probe.stderr
