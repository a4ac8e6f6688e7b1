"""Tool calling through OpenAI-compatible servers: the loopback test server answers with
``tool_calls`` and checks the history as OpenAI does; the official ``openai`` client and our
policy (alone and inside the rollout engine) both talk to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai_server import ChatServer, Reply

import agentgym
from agentgym.policies import Completion, OpenAIChatPolicy
from agentgym.policies.base import turn_messages
from agentgym.rollout import plan, run_episode
from agentgym.tools import ToolEnv, format_tool_calls, tool

FAST = {"retry_wait_min": 0.001, "retry_wait_max": 0.01, "timeout": 5.0}


class AddEnv(ToolEnv):
    """Solved by answering 5 (after adding 2 and 3 with the tool, if the agent likes)."""

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "What is 2 + 3? Use the add tool.", {}

    @tool
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        return "Done.", float(answer.strip() == "5"), True, {}


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as s:
        yield s


def add_call(a: int, b: int) -> dict[str, Any]:
    return {"name": "add", "arguments": {"a": a, "b": b}}


def act(policy: OpenAIChatPolicy, messages: list[dict[str, Any]], env: Any) -> Completion:
    async def main() -> Completion:
        async with policy:
            return await policy.act(messages, env)

    return asyncio.run(main())


def test_official_openai_client_gets_tool_calls_and_must_answer_them(server: ChatServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    env = AddEnv()
    messages: list[Any] = [{"role": "user", "content": "What is 2 + 3?"}]
    server.script(Reply(tool_calls=[add_call(2, 3)]))
    response = client.chat.completions.create(model="tiny", messages=messages, tools=env.tool_schemas())
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 2, "b": 3}
    assert server.requests[0]["body"]["tools"] == env.tool_schemas()
    # Our Hermes rendering of the SDK's own objects is what the env parses.
    assert env.parse_action(format_tool_calls(choice.message.tool_calls)).tool_calls[0].arguments == {"a": 2, "b": 3}

    assistant = choice.message.model_dump(exclude_none=True)
    with pytest.raises(openai.BadRequestError, match="did not have response messages"):
        client.chat.completions.create(model="tiny", messages=[*messages, assistant])
    answered = [*messages, assistant, {"role": "tool", "tool_call_id": call.id, "content": "5"}]
    response = client.chat.completions.create(model="tiny", messages=answered, tools=env.tool_schemas())
    assert response.choices[0].message.content == "echo: 5"
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceding"):
        client.chat.completions.create(model="tiny", messages=[*messages, {"role": "tool", "tool_call_id": "x",
                                                                          "content": "5"}])


@pytest.mark.parametrize("flavor", ["vllm", "openai"])
def test_policy_sends_the_envs_tools_and_maps_tool_calls_to_the_envs_text(flavor: str) -> None:
    env = AddEnv()
    with ChatServer(flavor=flavor) as server:
        server.script(Reply(text="Let me add.", tool_calls=[add_call(2, 3), add_call(1, 1)]))
        completion = act(OpenAIChatPolicy(server.url, "tiny", return_token_ids=flavor == "vllm", **FAST),
                         [{"role": "user", "content": "2 + 3?"}], env)
        body = server.requests[0]["body"]
    assert body["tools"] == env.tool_schemas()
    assert completion.text == "Let me add.\n" + format_tool_calls([add_call(2, 3), add_call(1, 1)])
    assert completion.finish_reason == "tool_calls"
    message = completion.message
    assert message["role"] == "assistant" and message["content"] == "Let me add."
    assert [c["id"] for c in message["tool_calls"]] == ["call_1_0", "call_1_1"]
    assert json.loads(message["tool_calls"][1]["function"]["arguments"]) == {"a": 1, "b": 1}
    assert [c.arguments for c in env.parse_action(completion.text).tool_calls] == [{"a": 2, "b": 3}, {"a": 1, "b": 1}]


def test_plain_envs_get_no_tools_and_tools_can_be_turned_off(server: ChatServer) -> None:
    act(OpenAIChatPolicy(server.url, "tiny", **FAST), [{"role": "user", "content": "hi"}], agentgym.make(
        "agentgym/Bifurcation-v0"))
    act(OpenAIChatPolicy(server.url, "tiny", send_tools=False, **FAST), [{"role": "user", "content": "hi"}], AddEnv())
    assert ["tools" in r["body"] for r in server.requests] == [False, False]


def test_a_server_that_refuses_tools_is_asked_again_without_them() -> None:
    with ChatServer(accept_tools=False) as server:
        policy = OpenAIChatPolicy(server.url, "tiny", **FAST)
        first = act(policy, [{"role": "user", "content": "2 + 3?"}], AddEnv())
        act(policy, [{"role": "user", "content": "again"}], AddEnv())
        assert ["tools" in r["body"] for r in server.requests] == [True, False, False]
        assert [r["body"]["messages"][-1]["content"] for r in server.requests] == ["2 + 3?", "2 + 3?", "again"]
    assert first.text == "echo: 2 + 3?" and first.message is None and policy.send_tools is False


def test_rollout_writes_tool_calls_and_results_into_the_history(server: ChatServer) -> None:
    """Turn 1 calls two tools; turn 2's request must carry the assistant's tool_calls and one
    tool message per call id (the server rejects anything else); turn 2 answers."""
    server.script(Reply(tool_calls=[add_call(2, 3), add_call(1, 1)]), Reply(text="<answer>5</answer>"))
    env = AddEnv(max_turns=4)

    async def episode() -> Any:
        async with OpenAIChatPolicy(server.url, "tiny", **FAST) as policy:
            return await run_episode(env, policy, plan("r", tasks=1, group_size=1)[0], env_id="tests/Add-v0")

    traj = asyncio.run(episode())
    assert traj.failure is None and traj.outcome == 1.0 and traj.num_turns == 2
    first = traj.turns[0]
    assert first.action == format_tool_calls([add_call(2, 3), add_call(1, 1)])
    assert [c["result"] for c in first.tool_calls] == ["5", "2"]
    history = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in history[2]["tool_calls"]] == ["call_1_0", "call_1_1"]
    assert [(m["tool_call_id"], m["content"]) for m in history[3:]] == [("call_1_0", "5"), ("call_1_1", "2")]
    assert all(r["body"]["tools"] == env.tool_schemas() for r in server.requests)


def test_turn_messages_for_text_actions_and_unmatched_calls() -> None:
    env = AddEnv()
    plain = turn_messages(Completion("<answer>5</answer>"), "Done.", {"role": "user"}, env)
    assert plain == [{"role": "assistant", "content": "<answer>5</answer>"}, {"role": "user", "content": "Done."}]
    calls = [{"id": "a", "type": "function", "function": {"name": "add", "arguments": "{"}},
             {"id": "b", "type": "function", "function": {"name": "add", "arguments": "{}"}}]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    # The env could not parse the calls (no per-call entries): the observation answers the first.
    messages = turn_messages(Completion("...", message=message), "Error: bad JSON", {"role": "tool"}, env)
    assert messages[0] is message
    assert [(m["tool_call_id"], m["content"]) for m in messages[1:]] == [
        ("a", "Error: bad JSON"), ("b", "(see the previous tool message)")]


def test_toolworld_tools_go_out_with_the_request(server: ChatServer) -> None:
    env = agentgym.make("agentgym/ToolWorld-v0")
    obs, _ = env.reset(seed=0)
    act(OpenAIChatPolicy(server.url, "tiny", **FAST), [{"role": "user", "content": obs}], env)
    names = [t["function"]["name"] for t in server.requests[0]["body"]["tools"]]
    assert len(names) >= 12 and names == [s["function"]["name"] for s in env.tool_schemas()]


def test_a_model_acts_in_an_mcp_server_env(server: ChatServer) -> None:
    """End to end: the MCP server's tools go out as `tools`, the model's tool_calls run on the
    MCP server (a real process), and its final state is judged."""
    pytest.importorskip("mcp")
    from mcp_env.mcp_support import SHOP, TASKS, VERIFIER  # tests/mcp_env

    from agentgym.mcp_env import MCPToolEnv, load_tasks

    fruit = [t for t in load_tasks(TASKS) if t["id"] == "fruit"]
    env = MCPToolEnv(SHOP, tasks=fruit, reward=VERIFIER, reset_tool="reset_basket", hidden_tools=["crash", "pid", "fail"],
                     max_turns=4)
    server.script(Reply(tool_calls=[{"name": "add_item", "arguments": {"item": "apple", "quantity": 2}},
                                    {"name": "add_item", "arguments": {"item": "pear"}}]),
                  Reply(tool_calls=[{"name": "total", "arguments": {}}]),
                  Reply(text="<answer>10</answer>"))

    async def episode() -> Any:
        async with OpenAIChatPolicy(server.url, "tiny", **FAST) as policy:
            return await run_episode(env, policy, plan("m", tasks=1, group_size=1)[0], env_id="tests/Shop-v0")

    try:
        traj = asyncio.run(episode())
    finally:
        env.close()
    assert traj.failure is None and traj.outcome == 1.0 and traj.num_turns == 3
    sent = {t["function"]["name"]: t["function"] for t in server.requests[0]["body"]["tools"]}
    assert set(sent) == {"add_item", "view_basket", "total", "echo"}
    assert sent["add_item"]["parameters"]["required"] == ["item"]  # the MCP server's own schema
    history = server.requests[2]["body"]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool"]
    assert history[-1]["content"] == "10"
