"""Issue 21, item 7 (and 4, 5 for MCP envs), against a real MCP server process that keeps global
state and has no reset tool (tests/mcp_env/notes_server.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym import registry
from agentgym.cli import app
from agentgym.mcp_env import MCPToolEnv
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import plan, rollout, summarize
from agentgym.tools import format_tool_calls

HERE = Path(__file__).parent
NOTES = [sys.executable, str(HERE / "notes_server.py")]
TASKS = str(HERE / "notes_tasks.jsonl")
VERIFIER = f"{HERE / 'notes_verifier.py'}:reward"
BROKEN = f"{HERE / 'notes_verifier.py'}:broken"


def call(name: str, **arguments: object) -> str:
    return format_tool_calls([{"name": name, "arguments": arguments}])


@pytest.fixture
def notes_id() -> Iterator[str]:
    agentgym.register("tests/Notes-v0", MCPToolEnv, kwargs={"server": NOTES, "tasks": TASKS, "reward": VERIFIER,
                                                            "timeout": 30.0}, max_turns=4, force=True)
    yield "tests/Notes-v0"
    registry.unregister("tests/Notes-v0")


def _outcomes(env_id: str, concurrency: int, **env_kwargs: object) -> dict[int, float]:
    trajs = asyncio.run(rollout(agentgym.spec(env_id), ScriptedPolicy(), plan("n", tasks=6, group_size=1),
                                concurrency=concurrency, env_kwargs=env_kwargs))
    assert [t.failure for t in trajs] == [None] * 6
    assert all(t.success == (t.outcome == 1.0) for t in trajs)  # the verifier's verdict
    return {t.seed: t.outcome for t in trajs}


def test_a_server_restarted_per_episode_scores_the_same_at_any_concurrency(notes_id: str) -> None:
    shared = _outcomes(notes_id, 1)
    assert sum(shared.values()) == 1.0  # the issue: notes of earlier episodes stay, only the first succeeds
    fresh_1 = _outcomes(notes_id, 1, restart_per_episode=True)
    fresh_4 = _outcomes(notes_id, 4, restart_per_episode=True)
    assert fresh_1 == fresh_4 == {seed: 1.0 for seed in range(6)}


def test_restart_per_episode_needs_a_stdio_server() -> None:
    with pytest.raises(ValueError, match="stdio"):
        MCPToolEnv("http://127.0.0.1:9/mcp", tasks=TASKS, reward=VERIFIER, restart_per_episode=True)


def test_a_list_result_is_one_json_document_with_its_structured_content_kept() -> None:
    env = MCPToolEnv(NOTES, tasks=TASKS, reward=VERIFIER, restart_per_episode=True)
    try:
        env.reset(seed=0)
        env.step(call("add_note", text="a\nb") + call("add_note", text="c"))
        obs, _, _, _, info = env.step(call("notes"))
        assert json.loads(obs) == [{"text": "a\nb"}, {"text": "c"}]  # was two objects joined by a newline
        assert info["tool_calls"][0]["structured_content"] == [{"text": "a\nb"}, {"text": "c"}]
        assert env.call_tool_structured("notes") == [{"text": "a\nb"}, {"text": "c"}]
        _, reward, terminated, _, info = env.step("<answer>2</answer>")
        assert terminated and reward == 0.0 and info["success"] is False and info["notes_seen"] == 2
    finally:
        env.close()


def test_consecutive_seeds_play_every_task_of_a_3_task_file(notes_id: str) -> None:
    env = agentgym.make(notes_id)
    try:
        for start in (0, 1, 5):
            assert {env.reset(seed=s)[1]["task_id"] for s in range(start, start + 3)} == {"milk", "eggs", "tea"}
    finally:
        env.close()


def test_a_verifier_that_raises_is_an_error_not_infra(notes_id: str) -> None:
    trajs = asyncio.run(rollout(agentgym.spec(notes_id), ScriptedPolicy(), plan("b", tasks=2, group_size=1),
                                env_kwargs={"reward": BROKEN}))
    assert [t.failure for t in trajs] == ["error", "error"] and not any(t.success for t in trajs)
    assert "the verifier broken raised JSONDecodeError" in trajs[0].failure_detail
    assert summarize(trajs).failures == {"error": 2}


def _yaml(tmp_path: Path, reward: str) -> Path:
    path = tmp_path / "notes.yaml"
    path.write_text("envs:\n  - id: tests/NotesCli-v0\n    entry_point: agentgym.mcp_env:MCPToolEnv\n"
                    f"    kwargs: {{server: {json.dumps(NOTES)}, tasks: {json.dumps(TASKS)}, reward: {json.dumps(reward)},"
                    " restart_per_episode: true}\n    max_turns: 4\n")
    return path


def test_cli_plays_every_task_once_and_exits_non_zero_on_a_verifier_error(tmp_path: Path) -> None:
    try:
        result = CliRunner().invoke(app, ["--env-file", str(_yaml(tmp_path, VERIFIER)), "rollout", "--env",
                                          "tests/NotesCli-v0", "--policy", "scripted", "--all-tasks", "-q",
                                          "--out", str(tmp_path / "ok")])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / "ok" / "trajectories.jsonl").read_text().splitlines()]
        assert sorted(r["task_id"] for r in rows) == ["eggs", "milk", "tea"] and all(r["success"] for r in rows)
        registry.unregister("tests/NotesCli-v0")
        result = CliRunner().invoke(app, ["--env-file", str(_yaml(tmp_path, BROKEN)), "rollout", "--env",
                                          "tests/NotesCli-v0", "--policy", "scripted", "--tasks", "2", "-q",
                                          "--out", str(tmp_path / "broken")])
        assert result.exit_code == 1, result.output
        assert "error: 2" in result.output and "failure='error'" in result.output
    finally:
        if "tests/NotesCli-v0" in registry.registry:
            registry.unregister("tests/NotesCli-v0")
