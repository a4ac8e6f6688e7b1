"""agentgym/CodeTests-v0: hidden tests in the sandbox, partial credit, malformed and hostile code
(the judge's reward-hacking tests are in test_judge.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from agentgym.core import InfraError, TextEnv
from agentgym.envs.code.judge import MARK, same_value
from agentgym.envs.code.problems import PROBLEMS

ENV_ID = "agentgym/CodeTests-v0"
MakeEnv = Callable[..., TextEnv]


def submit(source: str) -> str:
    return f"Here is my function.\n```python\n{source}\n```\nIt handles the edge cases."


def test_problem_set_is_plain_data_and_solved_by_its_references() -> None:
    names = [p.entry_point for p in PROBLEMS]
    assert len(PROBLEMS) >= 24 and len(set(names)) == len(names)
    for problem in PROBLEMS:
        assert len(problem.tests) >= 5 and problem.entry_point in problem.prompt
        namespace: dict[str, Any] = {}
        exec(problem.solution, namespace)  # our own reference code, on the host
        for args, expected in problem.tests:
            assert json.loads(json.dumps([args, expected])) == [args, expected]  # no tuples, no sets
            got = namespace[problem.entry_point](*json.loads(json.dumps(args)))
            assert same_value(json.loads(json.dumps(got)), expected), (problem.entry_point, args)


def test_expert_passes_every_problem(make_env: MakeEnv, run_expert: Callable[..., float], backend: str) -> None:
    env = make_env(ENV_ID, backend=backend)
    rewards = [run_expert(env, task=i) for i in range(len(PROBLEMS))]
    assert sum(r == 1.0 for r in rewards) >= 0.95 * len(PROBLEMS), rewards


def test_a_submission_cut_at_the_stop_sequence_is_complete(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, backend="local")
    (stop,) = env.stop_sequences
    action = submit(PROBLEMS[0].solution)
    env.reset(options={"task": PROBLEMS[0].entry_point})
    assert env.step(action[: action.index(stop) + len(stop)])[1] == 1.0


def test_reward_is_the_share_of_tests_passed(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, backend="local")
    obs, info = env.reset(options={"task": "fizzbuzz"})
    assert "def fizzbuzz(n: int)" in obs and ">>> fizzbuzz(1)" in obs and info["state_key"] == "start"
    obs, reward, terminated, _, info = env.step(submit("def fizzbuzz(n):\n    return [str(i) for i in range(1, n + 1)]"))
    assert info["test_results"] == [True, False, False, False, True, False, False]
    assert (info["passed"], info["total"], info["all_passed"], terminated) == (2, 7, False, True)
    assert reward == pytest.approx(2 / 7) and "Passed 2 of 7" in obs and "Test 2: wrong answer" in obs
    assert info["state_key"] == "attempt 1: 1000100" and info["role"] == "tool"
    env.reset(options={"task": "fizzbuzz"})
    obs, reward, _, _, info = env.step(env.expert_action())
    assert (reward, info["all_passed"], obs) == (1.0, True, "\nAll 7 hidden tests passed.\n")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def median(nums):\n    return 1 / 0", "Test 1: ZeroDivisionError: division by zero"),
        ("def median(nums):\n    while True:\n        pass", "Test 1: TimeoutError: timed out after 0.3 s"),
        ("import signal\ndef median(nums):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n"
         "        pass", "Test 1: TimeoutError: timed out after 0.3 s"),  # the limit is kept from outside
        ("while True:\n    print('spam')", "failed before any test ran: TimeoutError"),
        ("def median(:", "failed before any test ran: SyntaxError"),
        ("def average(nums):\n    return 0", "defines no function named median"),
        ("import os\nos._exit(1)", "failed before any test ran: RuntimeError: the process exited (exit code 1)"),
        ("def median(nums):\n    print('x' * 10**7)\n    return {1, 2}", "Test 1: wrong answer"),
        ("def median(nums):\n    return object()", "returned a object, which the tests cannot compare"),
        ("def median(nums):\n    return median(nums)", "RecursionError"),
    ],
)
def test_bad_code_fails_its_tests_with_a_readable_reason(make_env: MakeEnv, source: str, message: str) -> None:
    env = make_env(ENV_ID, backend="local", timeout=1.5, test_timeout=0.3)
    env.reset(options={"task": "median"})
    obs, reward, terminated, _, info = env.step(submit(source))
    assert message in obs and (reward, terminated, info["void"], info["all_passed"]) == (0.0, True, False, False)


# Python expressions for a line the submission writes, as if it came from the judge.
@pytest.mark.parametrize("line", ["'[1]'", "'\"load_error\"'", "'0' * 32 + ' {\"results\": [true]}'", "'null'",
                                  "'[' * 10**5"])
def test_malformed_verdict_lines_from_the_submission_only_fail_it(make_env: MakeEnv, line: str) -> None:
    env = make_env(ENV_ID, backend="local")
    env.reset(options={"task": "median"})
    source = f"import os\nos.write(1, ({MARK!r} + {line} + '\\n').encode())\ndef median(nums):\n    return 0"
    _, reward, terminated, _, info = env.step(submit(source))
    assert reward < 1.0 and terminated and not info["all_passed"] and not info["void"]


def test_all_or_nothing_scoring(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, backend="local", partial_credit=False)
    env.reset(options={"task": "fizzbuzz"})
    _, reward, _, _, info = env.step(submit("def fizzbuzz(n):\n    return [str(i) for i in range(1, n + 1)]"))
    assert (reward, info["passed"], info["total"]) == (0.0, 2, 7)
    env.reset(options={"task": "fizzbuzz"})
    assert env.step(env.expert_action())[1] == 1.0


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("def f(x): return x", "found no ```python block"),
        ("```python\ndef median(nums):\n    return 1", "never closed"),
        ("```python\n```", "the code block is empty"),
        ("x" * 200_000, "200000 characters long"),
    ],
)
def test_malformed_submissions_are_void(make_env: MakeEnv, action: str, error: str) -> None:
    env = make_env(ENV_ID)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(action)
    assert error in info["parse_error"] and error in obs
    assert (reward, terminated, info["void"]) == (0.0, True, True)
    assert env.sandbox.current is None


def test_resubmission_after_feedback(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, backend="local", max_attempts=3)
    env.reset(options={"task": "digital_root"})
    obs, reward, terminated, _, _ = env.step("no code yet")
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _, info = env.step(submit("def digital_root(n):\n    return n % 9"))
    assert (reward, terminated) == (0.0, False) and "submit it again" in obs and info["passed"] == 6
    assert "Test 2: wrong answer" in obs and "[9]" not in obs  # the failing input stays hidden
    obs, reward, terminated, _, info = env.step(env.expert_action())
    assert (reward, terminated, info["state_key"]) == (1.0, True, "attempt 3: 11111111")


def test_same_value_semantics() -> None:
    assert same_value(1.0, 1) and same_value(0.1 + 0.2, 0.3) and not same_value(1.01, 1)
    assert not same_value(True, 1) and not same_value(0, False) and same_value(False, False)
    assert same_value([1, [2.0, "a"]], [1, [2, "a"]]) and not same_value([1, 2], [1, 2, 3])
    assert same_value({"a": [1]}, {"a": [1.0]}) and not same_value({"a": 1}, {"b": 1})
    assert not same_value("1", 1) and same_value(None, None) and not same_value(None, 0)
    assert same_value(float("nan"), float("nan"))


@pytest.mark.docker
def test_killed_container_is_an_infra_failure(make_env: MakeEnv, docker_client: Any, sandbox_image: str) -> None:
    env = make_env(ENV_ID, backend="docker")
    env.reset(options={"task": "fizzbuzz"})
    assert env.step(env.expert_action())[1] == 1.0
    env.reset(options={"task": "fizzbuzz"})
    docker_client.containers.get(env.sandbox.get().container_id).kill()
    with pytest.raises(InfraError):
        env.step(env.expert_action())
    env.reset(options={"task": "fizzbuzz"})
    assert env.step(env.expert_action())[1] == 1.0  # a fresh sandbox
