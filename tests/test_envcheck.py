"""``agentgym check``: every built-in env and the example user env pass it, and deliberately broken
envs fail it, each on the check that names their defect (exit 1; bad input exits 2)."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym import registry
from agentgym.cli import app
from agentgym.core import StepResult, TextEnv
from agentgym.envcheck import run_checks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gridworld"
CODE_ENVS = {"agentgym/PythonTIR-v0", "agentgym/CodeTests-v0", "agentgym/HumanEval-v0"}
# TextWorld ids differ only in generator settings: TextWorld-v0 (8 games) stands for them here.
BUILTINS = [s.id for s in registry.all_specs() if s.id.startswith("agentgym/")
            and (not s.id.startswith("agentgym/TextWorld-") or s.id == "agentgym/TextWorld-v0")]
KWARGS = {"agentgym/TextWorld-v0": {"num_games": 8}, **{i: {"backend": "local"} for i in CODE_ENVS}}


class GoodEnv(TextEnv):
    """Say the task's number (a pool of 10); the reference for the broken ones below."""

    threaded_async = False
    num_tasks = 10

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.number = self.pool_index(10)
        return f"Say {self.number}.", {"task_id": f"n{self.number}", "state_key": ("start", self.number)}

    def _step(self, action: str) -> StepResult:
        won = action.strip() == str(self.number)
        return ("Correct." if won else "No."), float(won), won, False, {"state_key": (self.turn, self.number),
                                                                        "success": won if won else None}

    def expert_action(self) -> str:
        return str(self.number)

    def legal_actions(self) -> list[str]:
        return [str(n) for n in range(10)]


class NondeterministicEnv(GoodEnv):
    """Picks its task from the global random module, not from the seed."""

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.number = random.randrange(1000)
        return f"Say {self.number}.", {"task_id": f"n{self.number}", "state_key": ("start", self.number)}


class RaisingEnv(GoodEnv):
    """Indexes into the reply: an empty reply raises."""

    def _step(self, action: str) -> StepResult:
        action[0]  # noqa: B018 — the defect under test
        return super()._step(action)


class SilentEnv(GoodEnv):
    """Ends episodes without ever saying whether they succeeded."""

    def _step(self, action: str) -> StepResult:
        obs, reward, terminated, truncated, info = super()._step(action)
        info.pop("success")
        return obs, reward, terminated, truncated, info


class ReplacementEnv(GoodEnv):
    """A finite pool drawn with replacement: consecutive seeds repeat tasks and miss others."""

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.number = int(self.np_random.integers(10))
        return f"Say {self.number}.", {"task_id": f"n{self.number}", "state_key": ("start", self.number)}


class GullibleEnv(GoodEnv):
    """Pays whoever says they succeeded."""

    def _step(self, action: str) -> StepResult:
        if "success" in action.lower():
            return "Well done.", 1.0, True, False, {"state_key": "end", "success": True}
        return super()._step(action)


BROKEN = {"tests/Nondeterministic-v0": NondeterministicEnv, "tests/Raising-v0": RaisingEnv,
          "tests/Silent-v0": SilentEnv, "tests/Replacement-v0": ReplacementEnv, "tests/Gullible-v0": GullibleEnv}


@pytest.fixture
def check_envs() -> Iterator[None]:
    ids = {"tests/Good-v0": GoodEnv, **BROKEN}
    for env_id, cls in ids.items():
        agentgym.register(env_id, f"{__name__}:{cls.__name__}", max_turns=4, force=True)
    yield
    for env_id in ids:
        registry.unregister(env_id)


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(tmp_path_factory.mktemp("agentgym-cache")))
        yield


def _statuses(env_id: str, **kwargs: Any) -> dict[str, Any]:
    return {r.name: r for r in run_checks(registry.spec(env_id), kwargs, seeds=2)}


@pytest.mark.parametrize("env_id", BUILTINS)
def test_every_builtin_env_passes(env_id: str) -> None:
    results = _statuses(env_id, **KWARGS.get(env_id, {}))
    assert list(results) == ["gymnasium-checker", "reset-determinism", "state_key", "task_id", "success",
                             "task-pool", "malformed-actions", "redteam", "latency"]
    assert not {n: r.reason for n, r in results.items() if r.status == "FAIL"}
    assert results["latency"].status == "INFO" and "n=" in results["latency"].reason


def test_the_example_user_env_passes() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agentgym_gridworld  # noqa: F401 — registers gridworld/*

        out = CliRunner().invoke(app, ["check", "gridworld/Grid3-v0", "--seeds", "2"])
    finally:
        sys.path.remove(str(EXAMPLE))
    assert out.exit_code == 0, out.output
    assert "every check passed" in out.output and "PASS redteam" in out.output


@pytest.mark.parametrize(("env_id", "check", "reason", "also"), [
    # Gymnasium's checker sees an unseeded reset too, and the pool check sees its tasks wander.
    ("tests/Nondeterministic-v0", "reset-determinism", "second reset(seed=0) of the same env gave another",
     {"gymnasium-checker", "task-pool"}),
    ("tests/Raising-v0", "malformed-actions", "IndexError", set()),
    ("tests/Silent-v0", "success", "never sets info['success']", set()),
    ("tests/Replacement-v0", "task-pool", "distinct tasks of 10", set()),
    ("tests/Gullible-v0", "redteam", "claim-success", set()),
])
def test_a_broken_env_fails_on_its_defect(check_envs: None, env_id: str, check: str, reason: str,
                                          also: set[str]) -> None:
    results = _statuses(env_id)
    assert results[check].status == "FAIL" and reason in results[check].reason, results[check]
    assert {n for n, r in results.items() if r.status == "FAIL"} == {check, *also}
    assert all(r.status in ("PASS", "INFO") for r in _statuses("tests/Good-v0").values())


def test_cli_report_json_and_exit_codes(check_envs: None) -> None:
    out = CliRunner().invoke(app, ["check", "tests/Raising-v0", "--seeds", "1"])
    assert out.exit_code == 1
    assert "FAIL malformed-actions" in out.output and "1 check(s) failed: malformed-actions" in out.output
    out = CliRunner().invoke(app, ["check", "tests/Good-v0", "--seeds", "1", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["passed"] and report["env"] == "tests/Good-v0"
    assert {c["name"]: c["status"] for c in report["checks"]}["task-pool"] == "PASS"
    assert CliRunner().invoke(app, ["check", "agentgym/Nope-v0"]).exit_code == 2
    bad = CliRunner().invoke(app, ["check", "agentgym/Sokoban-v0", "--env-kwarg", "width=x"])
    assert bad.exit_code == 2 and "could not be" in bad.output


def test_cli_checks_an_env_file_env_with_kwargs(tmp_path: Path) -> None:
    env_file = tmp_path / "envs.yaml"
    env_file.write_text(f"envs:\n  - id: mine/Silent-v0\n    entry_point: {__name__}:SilentEnv\n    max_turns: 4\n")
    try:
        out = CliRunner().invoke(app, ["--env-file", str(env_file), "check", "mine/Silent-v0", "--seeds", "1",
                                       "--env-kwarg", "max_turns=3"])
    finally:
        registry.unregister("mine/Silent-v0")
    assert out.exit_code == 1 and "FAIL success" in out.output and '"max_turns": 3' in out.output
