"""MCPToolEnv and MCPClient against a real MCP server process (tests/mcp_env/shop_server.py), over
stdio and over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_support import SHOP, TASKS, VERIFIER

import agentgym
from agentgym import registry
from agentgym.core import InfraError
from agentgym.mcp_env import MCPClient, MCPToolEnv, load_function, load_tasks
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import plan, rollout, run_episode
from agentgym.tools import format_tool_calls


def call(name: str, **arguments: object) -> str:
    return format_tool_calls([{"name": name, "arguments": arguments}])


def shop_env(server: object = SHOP, **kwargs: object) -> MCPToolEnv:
    options = {"tasks": TASKS, "reward": VERIFIER, "reset_tool": "reset_basket", "timeout": 20.0, **kwargs}
    return MCPToolEnv(server, **options)


@pytest.fixture(scope="module")
def env() -> Iterator[MCPToolEnv]:
    env = shop_env(hidden_tools=["crash", "pid", "fail"])
    yield env
    env.close()


def test_the_servers_tools_are_the_envs_tools(env: MCPToolEnv) -> None:
    assert set(env.tools) == {"add_item", "view_basket", "total", "echo"}  # reset/crash/pid/fail hidden
    schema = next(s for s in env.tool_schemas() if s["function"]["name"] == "add_item")["function"]
    assert schema["parameters"]["required"] == ["item"]
    assert schema["parameters"]["properties"]["quantity"]["type"] == "integer"
    assert schema["description"].startswith("Put an item in the basket.\n\nArgs:\n    item: one of apple")
    assert env.system_prompt.startswith("A shop with a basket.")  # the server's instructions first
    assert '"name": "add_item"' in env.system_prompt


def test_an_episode_is_scored_on_the_servers_final_state(env: MCPToolEnv) -> None:
    obs, info = env.reset(seed=0, options={"task": "fruit"})
    assert obs.startswith("Put 2 apples and 1 pear") and info["task_id"] == "fruit"
    obs, reward, terminated, _, info = env.step(call("add_item", item="apple", quantity=2))
    assert "2 apple added" in obs and info["role"] == "tool" and not terminated
    assert info["tool_calls"][0]["result"] == obs and info["parse_error"] is None
    obs, *_ = env.step(call("add_item", item="pear") + "\n" + call("total"))
    assert obs.endswith("total: 10")
    obs, reward, terminated, _, info = env.step("<answer>10</answer>")
    assert (reward, terminated, info["answer"]) == (1.0, True, "10") and "Reward: 1" in obs
    # The reset tool empties the basket: the same answer without the items scores 0.
    env.reset(seed=0, options={"task": "fruit"})
    assert json.loads(env.call_tool("view_basket", {})) == {}
    assert env.step("<answer>10</answer>")[1] == 0.0


def test_errors_are_tool_observations_and_the_episode_goes_on(env: MCPToolEnv) -> None:
    env.reset(seed=1)
    # The server's error result (isError): the agent's mistake, with the server's message.
    obs, reward, terminated, _, info = env.step(call("add_item", item="kiwi"))
    assert "no such item: 'kiwi'" in obs and info["parse_error"] and not terminated
    assert info["tool_calls"][0]["error_kind"] == "agent" and info["failure"] is None
    # Checked here against the server's schema before any request is sent.
    obs, *_, info = env.step(call("add_item", item=3))
    assert obs == "Error: invalid arguments for add_item: item: expected string, got integer 3"
    assert info["tool_calls"][0]["error_kind"] == "agent"
    obs, *_, info = env.step(call("steal", item="milk"))
    assert "unknown tool 'steal'" in obs and info["failure"] is None
    obs, *_, info = env.step("<tool_call>{not json</tool_call>")
    assert info["parse_error"] and info["failure"] is None
    obs, *_ = env.step(call("add_item", item="milk"))
    assert "1 milk added" in obs  # still alive


def test_a_server_that_dies_mid_episode_is_an_infra_failure_never_reward_0() -> None:
    env = shop_env()
    try:
        env.reset(seed=0)
        env.step(call("add_item", item="apple"))
        with pytest.raises(InfraError, match="Connection closed|connection lost"):
            env.step(call("crash"))
        with pytest.raises(InfraError):
            env.call_tool("total", {})
        # Through the engine: the trajectory is marked infra, not scored.
        env.reset(seed=0)  # a lost server is reconnected (a new process) at reset
        assert env.step(call("add_item", item="pear"))[4]["failure"] is None

        class CrashPolicy(ScriptedPolicy):
            async def act(self, messages, env):  # noqa: ANN001, ANN202
                from agentgym.policies import Completion

                text = call("add_item", item="milk") if len(messages) < 3 else call("crash")
                return Completion(text)

        traj = asyncio.run(run_episode(env, CrashPolicy(), plan("r", tasks=1, group_size=1)[0], env_id="tests/Shop-v0"))
        assert traj.failure == "infra" and "step: InfraError" in traj.failure_detail
        assert traj.outcome == 0.0 and len(traj.turns) == 1
    finally:
        env.close()


def test_json_rpc_errors_and_close_which_is_idempotent_and_ends_the_stdio_server() -> None:
    env = shop_env()
    # JSON-RPC errors: "invalid params" is the agent's call; any other is the server's problem.
    env.reset(seed=0)
    obs, *_, info = env.step(call("fail", code=-32602))
    assert "the server rejected the call: refused with JSON-RPC error -32602" in obs and info["failure"] is None
    with pytest.raises(InfraError, match="refused with JSON-RPC error -32603"):
        env.step(call("fail", code=-32603))
    env.reset(seed=0)  # reconnected
    pid = int(env.client.call_tool("pid").structured_content["result"])
    os.kill(pid, 0)  # running
    env.close()
    env.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(InfraError, match="closed"):
        env.client.call_tool("total")


def test_streamable_http_server(http_shop: str) -> None:
    env = shop_env(http_shop)
    try:
        assert "add_item" in env.tools and "reset_basket" not in env.tools
        env.reset(seed=0, options={"task": "breakfast"})
        for action in (call("add_item", item="milk"), call("add_item", item="bread", quantity=2)):
            env.step(action)
        assert env.step("<answer>17</answer>")[1] == 1.0
        env.reset(seed=0)
        with pytest.raises(InfraError):
            env.step(call("crash"))
    finally:
        env.close()


def test_a_server_that_does_not_answer_in_time_is_infra(http_shop: str) -> None:
    with MCPClient(http_shop, timeout=20) as client:
        client.timeout = 0.000_001  # every request now times out
        started = time.monotonic()
        with pytest.raises(InfraError, match="no answer within"):
            client.call_tool("total")
        assert time.monotonic() - started < 10
    with pytest.raises(InfraError, match="could not connect|did not start"):
        MCPClient("http://127.0.0.1:9/mcp", timeout=10)  # nothing listens on port 9
    with pytest.raises(InfraError):
        MCPClient([sys.executable, "-c", "import sys; sys.exit(1)"], timeout=10)


def test_a_server_that_never_starts_is_infra_and_is_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    mute = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    with pytest.raises(InfraError, match="did not start within 3s"):
        MCPClient([sys.executable, "-c", mute], timeout=3)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_declared_in_yaml_and_rolled_out_by_the_engine(tmp_path: Path) -> None:
    """A YAML entry is all a user writes; the scripted policy replays each task's solution."""
    (tmp_path / "envs.yaml").write_text(
        "envs:\n"
        "  - id: tests/Shop-v0\n"
        "    entry_point: agentgym.mcp_env:MCPToolEnv\n"
        f"    kwargs: {{server: {json.dumps(SHOP)}, tasks: {json.dumps(TASKS)}, reward: {json.dumps(VERIFIER)},"
        " reset_tool: reset_basket, hidden_tools: [crash, pid, fail]}\n"
        "    max_turns: 6\n"
    )
    try:
        (spec,) = agentgym.load_yaml(tmp_path / "envs.yaml")
        trajs = asyncio.run(rollout(spec, ScriptedPolicy(), plan("y", tasks=4, group_size=2), concurrency=2))
        assert [t.failure for t in trajs] == [None] * 8
        assert all(t.success and t.outcome == 1.0 and t.num_turns == 3 for t in trajs)
        assert {t.task_id for t in trajs} == {"fruit", "breakfast"}
    finally:
        registry.registry.pop("tests/Shop-v0", None)


def test_bad_configuration_is_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="module:function"):
        load_function("no_colon")
    with pytest.raises(FileNotFoundError):
        load_function(str(tmp_path / "missing.py") + ":reward")
    with pytest.raises(ValueError, match="'nope' is not a function"):
        load_function("json:nope")
    assert load_function("json:dumps") is json.dumps
    (tmp_path / "t.jsonl").write_text('{"prompt": "a"}\n\n{"id": "b", "prompt": "b"}\n')
    assert [t["id"] for t in load_tasks(tmp_path / "t.jsonl")] == ["0", "b"]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"task": 1}\n')
    with pytest.raises(ValueError, match="task 1: needs a string 'prompt'"):
        load_tasks(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="has no tool"):
        shop_env(hidden_tools=["no_such_tool"])
    with pytest.raises(InfraError, match="could not connect"):
        shop_env(["/nonexistent/mcp-server"])


def test_random_text_never_crashes_the_env(env: MCPToolEnv) -> None:
    """2,000 random actions built from tool-call fragments: each is an observation, never an exception."""
    rng = random.Random(0)
    pieces = ["<tool_call>", "</tool_call>", "{", "}", '"name": ', '"add_item"', '"echo"', '"total"', '"arguments": ',
              '{"item": "apple"}', '{"text": 1}', '{"quantity": -3, "item": "pear"}', "[", "]", ",", "null", "é",
              "\x00", "<answer>", "</answer>", " ", "\n", '{"name": "view_basket", "arguments": {}}', "9" * 50,
              '<tool_call>{"name": "view_basket", "arguments": {}}</tool_call>']  # JSON in prose is not a call
    env.reset(seed=0)
    answered = 0  # calls the server ran: the fuzz reaches it, not only the parser
    for _ in range(2000):
        action = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and info["failure"] is None
        answered += sum("result" in c for c in info["tool_calls"])
        if terminated or truncated:
            env.reset(seed=rng.randint(0, 9))
    assert answered >= 20


def test_a_stdio_servers_stderr_stays_off_the_console_and_is_quoted_when_it_fails(
        capfd: pytest.CaptureFixture[str]) -> None:
    noisy = "import sys; print('boom: NOTES_DB is not set', file=sys.stderr, flush=True); sys.exit(1)"
    with pytest.raises(InfraError, match="server stderr: boom: NOTES_DB is not set"):
        MCPClient([sys.executable, "-c", noisy], timeout=10)
    chatty = [*SHOP[:1], "-c", "import sys, runpy; print('starting the shop', file=sys.stderr, flush=True);"
              f" runpy.run_path({SHOP[1]!r}, run_name='__main__')"]
    with MCPClient(chatty, timeout=30) as client:
        assert client.list_tools()
        assert client.stderr_tail() == "starting the shop"
    assert "boom" not in capfd.readouterr().err and "starting the shop" not in capfd.readouterr().err
