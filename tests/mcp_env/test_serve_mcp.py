"""``agentgym serve-mcp``: a registered ToolEnv served over MCP (stdio and streamable HTTP), driven by
the official SDK's client in a real server process."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp_support import HERE

from agentgym.mcp_env import MCPClient, MCPToolEnv, result_text
from agentgym.mcp_server import build_server
from agentgym.tools import ToolEnv, format_tool_calls

SERVE = [sys.executable, "-m", "agentgym.cli", "--env-file", str(HERE / "counter_envs.yaml"), "serve-mcp",
         "tests/Counter-v0"]
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def target_of(text: str) -> int:
    return int(re.search(r"reach (\d+)", text).group(1))


def call(client: MCPClient, name: str, **arguments: Any) -> tuple[str, dict[str, Any] | None, bool]:
    result = client.call_tool(name, arguments)
    return result_text(result), result.structured_content, result.is_error


@pytest.fixture(scope="module")
def served() -> Iterator[MCPClient]:
    with MCPClient([*SERVE, "--seed", "5"], env=ENV, timeout=30) as client:
        yield client


def test_the_envs_tools_and_the_episode_controls_are_listed(served: MCPClient) -> None:
    tools = {t.name: t for t in served.list_tools()}
    assert set(tools) == {"add", "read", "explode", "reset", "answer"}
    assert tools["add"].input_schema["properties"]["amount"]["type"] == "integer"
    assert tools["add"].input_schema["required"] == ["amount"]
    assert "tests/Counter-v0" in served.instructions


def test_an_episode_over_stdio(served: MCPClient) -> None:
    text, status, error = call(served, "read")  # no reset: the first call starts episode --seed 5
    assert text.startswith("[A new episode started (seed 5)") and not error and status["turn"] == 1
    text, meta, error = call(served, "reset", seed=7)
    assert meta["seed"] == 7 and meta["task_id"] == f"target-{target_of(text)}" and not error
    target = target_of(text)
    text, status, error = call(served, "add", amount=0)
    assert error and "amount must be between 1 and 9" in text and status["terminated"] is False
    text, _, error = call(served, "add", amount="two")
    assert error and "expected integer" in text
    while target > 0:
        step = min(9, target)
        text, status, error = call(served, "add", amount=step)
        assert not error and status["reward"] == 0.0
        target -= step
    text, status, error = call(served, "answer", answer=str(target_of(call(served, "reset", seed=7)[0])))
    assert error is False and "Wrong." in text  # a fresh episode at counter 0: the right number, wrong state
    assert status == {"reward": 0.0, "return": 0.0, "terminated": True, "truncated": False, "turn": 1,
                      "failure": None}
    text, _, error = call(served, "add", amount=1)
    assert error and "episode is over" in text
    text, meta, _ = call(served, "reset")  # without a seed: the next one
    assert meta["seed"] == 8


def test_a_solved_episode_scores_1_and_infra_errors_end_it(served: MCPClient) -> None:
    text, _, _ = call(served, "reset", seed=11)
    target = target_of(text)
    for _ in range(target):
        call(served, "add", amount=1)
    assert call(served, "read")[0] == str(target)
    text, status, error = call(served, "answer", answer=str(target))
    assert (text, status["reward"], status["return"], error) == ("Solved.", 1.0, 1.0, False)
    call(served, "reset", seed=1)
    text, status, error = call(served, "explode")
    assert error and "infrastructure" in text and "the backend is gone" in text and status["failure"] == "infra"
    assert "episode is over" in call(served, "read")[0]
    text, _, error = call(served, "teleport")
    assert error and "unknown tool 'teleport'" in text


def test_over_http_each_session_has_its_own_episode() -> None:
    process = subprocess.Popen([*SERVE, "--http", "0"], env={**os.environ, **ENV}, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(process.stderr.readline())["mcp_url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        with MCPClient(url, timeout=30) as a, MCPClient(url, timeout=30) as b:
            call(a, "reset", seed=1)
            call(b, "reset", seed=2)
            assert call(a, "add", amount=3)[0] == "counter: 3"
            assert call(b, "add", amount=2)[0] == "counter: 2"
            assert call(a, "read")[0] == "3"
    finally:
        process.kill()
        process.wait()


def served_reward(task: dict[str, Any], answer: str, env: MCPToolEnv) -> float:
    """The served env scores the answer itself: forward it to its ``answer`` tool."""
    return env.client.call_tool("answer", {"answer": answer}).structured_content["reward"]


def test_a_served_env_is_an_mcp_tool_env_again() -> None:
    """Round trip: Counter-v0 → serve-mcp → MCPToolEnv; the served reset gives the prompt, the
    served answer the reward."""
    task = {"prompt": "{reset}", "reset_arguments": {"seed": 4}}
    env = MCPToolEnv(SERVE, server_env=ENV, tasks=[task], reward=f"{Path(__file__)}:served_reward",
                     reset_tool="reset", hidden_tools=["answer"], timeout=30)
    try:
        assert set(env.tools) == {"add", "read", "explode"}
        obs, _ = env.reset(seed=0)
        target = target_of(obs)
        amounts = [9] * (target // 9) + ([target % 9] if target % 9 else [])
        obs, *_ = env.step(format_tool_calls([{"name": "add", "arguments": {"amount": a}} for a in amounts]))
        assert obs.endswith(f"counter: {target}")
        obs, reward, terminated, _, _ = env.step(f"<answer>{target}</answer>")
        assert (reward, terminated) == (1.0, True)
    finally:
        env.close()


def test_build_server_refuses_envs_it_cannot_serve() -> None:
    from agentgym import make

    with pytest.raises(TypeError, match="not a ToolEnv"):
        build_server(lambda: make("agentgym/Bifurcation-v0"), name="agentgym/Bifurcation-v0")

    class Clash(ToolEnv):
        def __init__(self) -> None:
            super().__init__(tools=[reset])

    def reset() -> str:
        """A tool named like the episode control."""
        return "x"

    with pytest.raises(ValueError, match="tools named \\['reset'\\]"):
        build_server(Clash, name="tests/Clash-v0")


def test_the_command_reports_bad_env_ids_and_envs_without_tools() -> None:
    from typer.testing import CliRunner

    from agentgym.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve-mcp", "agentgym/Bifurcation-v0"])
    assert result.exit_code == 2 and "not a ToolEnv" in result.output
    result = runner.invoke(app, ["serve-mcp", "agentgym/ToolWrld-v0"])
    assert result.exit_code == 2 and "Did you mean: agentgym/ToolWorld-v0" in result.output


def test_random_arguments_never_crash_the_served_env(served: MCPClient) -> None:
    rng = random.Random(1)
    values = [None, True, -1, 0, 3, 10**30, 2.5, "", "x" * 10_000, [], [1], {}, {"a": {"b": []}}]
    call(served, "reset", seed=0)
    for _ in range(150):
        tool = rng.choice(["add", "read", "reset", "answer"])
        arguments = {rng.choice(["amount", "seed", "answer", "zzz"]): rng.choice(values) for _ in range(rng.randint(0, 2))}
        text, _, _ = call(served, tool, **arguments)
        assert isinstance(text, str)
    assert call(served, "reset", seed=2)[2] is False  # still serving
