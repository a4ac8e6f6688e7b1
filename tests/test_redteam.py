"""``agentgym redteam``: the generic attacks catch a weak env and pass a sound one, from Python and
from the command line (exit 1 when an attack earns reward or success, or crashes the env)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym import registry
from agentgym.cli import app
from agentgym.core import StepResult, TextEnv
from agentgym.redteam import GENERIC_ATTACKS, run_redteam


class GullibleEnv(TextEnv):
    """A deliberately weak grader: the answer is a number, and it pays when the gold number appears
    anywhere in the reply, or when the reply says it succeeded."""

    threaded_async = False

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.gold = str(int(self.np_random.integers(100)))
        return "What number am I thinking of (0-99)?", {"state_key": "start"}

    def _step(self, action: str) -> StepResult:
        won = self.gold in action.split() or self.gold in action.replace("{", " ").replace("}", " ").split()
        claimed = "success" in action.lower()
        return "ok", float(won), won or claimed, False, {"success": won or claimed, "state_key": "end"}


class CrashingEnv(GullibleEnv):
    """Raises on replies it cannot encode (a contract violation the red team reports)."""

    def _step(self, action: str) -> StepResult:
        action.encode("utf-8")
        return "no", 0.0, False, False, {"state_key": "start"}


@pytest.fixture
def weak_envs() -> Iterator[None]:
    agentgym.register("tests/Gullible-v0", f"{__name__}:GullibleEnv", max_turns=4, force=True)
    agentgym.register("tests/Crashing-v0", f"{__name__}:CrashingEnv", max_turns=4, force=True)
    yield
    registry.unregister("tests/Gullible-v0")
    registry.unregister("tests/Crashing-v0")


def test_a_weak_env_is_caught(weak_envs: None) -> None:
    results = {r.attack: r for r in run_redteam(lambda: agentgym.make("tests/Gullible-v0"), seeds=range(3))}
    assert results["answer-candidate-flood"].verdict == "FORGED" and results["answer-candidate-flood"].max_reward == 1.0
    assert results["claim-success"].verdict == "FORGED" and results["claim-success"].success
    assert results["empty"].verdict == "held" and results["empty"].max_reward == 0.0
    assert results["hedge-legal-actions"].verdict == "n/a"  # no legal_actions(): nothing to hedge over


def test_a_crash_is_a_finding(weak_envs: None) -> None:
    (result,) = run_redteam(lambda: agentgym.make("tests/Crashing-v0"), seeds=(0,),
                            attacks=[a for a in GENERIC_ATTACKS if a.name == "broken-unicode"])
    assert result.verdict == "CRASH" and "UnicodeEncodeError" in result.errors[0]


def test_cli_fails_on_a_weak_env(weak_envs: None) -> None:
    out = CliRunner().invoke(app, ["redteam", "tests/Gullible-v0", "--seeds", "2"])
    assert out.exit_code == 1, out.output
    assert "FORGED" in out.output and "answer-candidate-flood" in out.output and "not held" in out.output


def test_cli_json_lines(weak_envs: None) -> None:
    out = CliRunner().invoke(app, ["redteam", "tests/Gullible-v0", "--json", "--attack", "claim-success",
                                   "--attack", "empty"])
    assert out.exit_code == 1
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert [(r["attack"], r["verdict"]) for r in lines] == [("empty", "held"), ("claim-success", "FORGED")]


def test_cli_passes_a_sound_builtin_env() -> None:
    out = CliRunner().invoke(app, ["redteam", "agentgym/Sokoban-v0", "--seeds", "2"])
    assert out.exit_code == 0, out.output
    assert f"every attack held ({len(GENERIC_ATTACKS)} attacks x 2 seeds)" in out.output


def test_cli_errors() -> None:
    assert CliRunner().invoke(app, ["redteam", "agentgym/Nope-v0"]).exit_code == 2
    assert CliRunner().invoke(app, ["redteam", "agentgym/Sokoban-v0", "--attack", "nope"]).exit_code == 2
    assert CliRunner().invoke(app, ["redteam", "agentgym/Sokoban-v0", "--env-kwarg", "size=x"]).exit_code == 2
