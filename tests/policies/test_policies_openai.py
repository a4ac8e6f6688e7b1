"""OpenAIChatPolicy against a real HTTP server on loopback (tests/policies/openai_server.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openai_server import CHAT_PATH, ChatServer, Reply, tokenize

from agentgym.core import InfraError, StepResult, TextEnv
from agentgym.policies import (
    OpenAIChatPolicy,
    PromptTooLongError,
    RequestRejectedError,
    make_policy,
    parse_chat_completion,
)
from agentgym.retry import TransientHTTPError
from agentgym.rollout import plan, run_episode

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say 7."}]
FAST = {"retry_wait_min": 0.001, "retry_wait_max": 0.01, "timeout": 2.0}  # quick backoff for tests


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as s:
        yield s


def policy_for(server: ChatServer, **kwargs: Any) -> OpenAIChatPolicy:
    return OpenAIChatPolicy(server.url, "tiny", **{**FAST, **kwargs})


def act(policy: OpenAIChatPolicy, messages: list[dict[str, Any]] = MESSAGES):
    async def main():
        async with policy:
            return await policy.act(messages)

    return asyncio.run(main())


# -- request and response shapes -------------------------------------------------------------
def test_vllm_token_ids_logprobs_and_request_body(server: ChatServer) -> None:
    completion = act(policy_for(server, temperature=0.7, top_p=0.9, max_tokens=16,
                                extra_body={"top_k": 5}, api_key="sk-test"))
    text = "echo: Say 7."
    assert completion.text == text
    assert completion.token_ids == tokenize(text)
    assert completion.logprobs == pytest.approx([-0.1 * (i + 1) for i in range(len(text))])
    assert completion.prompt_token_ids == tokenize("Be brief.Say 7.")
    assert completion.finish_reason == "stop"
    assert completion.num_tokens == len(text)
    (request,) = server.requests
    assert request["path"] == CHAT_PATH
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "tiny", "messages": MESSAGES, "temperature": 0.7, "top_p": 0.9, "max_tokens": 16,
        "logprobs": True, "return_token_ids": True, "return_tokens_as_token_ids": True, "top_k": 5,
    }


def test_legacy_vllm_token_ids_come_from_logprob_tokens() -> None:
    with ChatServer(flavor="vllm-legacy") as server:
        completion = act(policy_for(server))
    assert completion.token_ids == tokenize("echo: Say 7.")
    assert completion.prompt_token_ids is None
    assert len(completion.logprobs) == len(completion.token_ids)


def test_openai_server_gives_logprobs_without_token_ids() -> None:
    with ChatServer(flavor="openai") as server:
        completion = act(policy_for(server, return_token_ids=False))
        assert "return_token_ids" not in server.requests[0]["body"]
    assert completion.logprobs is not None and len(completion.logprobs) == completion.num_tokens
    assert completion.token_ids is None and completion.prompt_token_ids is None


def test_without_logprobs_num_tokens_comes_from_usage(server: ChatServer) -> None:
    completion = act(policy_for(server, request_logprobs=False, return_token_ids=False))
    assert "logprobs" not in server.requests[0]["body"]
    assert completion.logprobs is None and completion.token_ids is None
    assert completion.num_tokens == len("echo: Say 7.")


@pytest.mark.parametrize("base", ["{url}", "{url}/", "{url}/v1", "{url}/v1/"])
def test_base_url_with_or_without_v1(server: ChatServer, base: str) -> None:
    assert act(OpenAIChatPolicy(base.format(url=server.url), "tiny")).text == "echo: Say 7."
    assert server.requests[0]["path"] == CHAT_PATH


def test_parse_chat_completion_edge_cases() -> None:
    # content None (e.g. a tool call), no usage: token count falls back to the token ids.
    data = {"choices": [{"message": {"role": "assistant", "content": None}, "token_ids": [5, 6],
                         "finish_reason": "length"}]}
    completion = parse_chat_completion(data)
    assert (completion.text, completion.token_ids, completion.num_tokens) == ("", [5, 6], 2)
    with pytest.raises(InfraError, match="malformed"):
        parse_chat_completion({"choices": []})


def test_official_openai_client_parses_the_test_server(server: ChatServer) -> None:
    """The test server speaks exactly what the official client sends and expects."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, temperature=0.5, logprobs=True,
        extra_body={"return_token_ids": True},
    )
    assert response.choices[0].message.content == "echo: Say 7."
    assert response.choices[0].logprobs.content[0].logprob == pytest.approx(-0.1)
    assert response.usage.completion_tokens == len("echo: Say 7.")
    assert response.prompt_token_ids == tokenize("Be brief.Say 7.")  # vLLM extras survive as extras
    assert response.choices[0].token_ids == tokenize("echo: Say 7.")
    sent = server.requests[0]["body"]
    assert sent == {"model": "tiny", "messages": MESSAGES, "temperature": 0.5, "logprobs": True,
                    "return_token_ids": True}
    # Our parser reads the same body the official client parsed.
    ours = act(policy_for(server, temperature=0.5, return_token_ids=True))
    assert parse_chat_completion(response.model_dump()).token_ids == ours.token_ids
    # Errors: the official client finds our error message where OpenAI puts it.
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    server.script(Reply(status=429, message="slow down"))
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.chat.completions.create(model="tiny", messages=MESSAGES)
    client.close()


# -- stop sequences ---------------------------------------------------------------------------
class CodeEnv(TextEnv):
    """Declares PythonTIR-v0's stop string (or ``stops``); stepping is not needed here."""

    def __init__(self, stops: tuple[str, ...] = ("\n```\n",)):
        super().__init__()
        self.stop_sequences = stops


BLOCK = "Run it.\n```python\nprint(1)\n```\n"
TAIL = "The output will be 1.\n```python\nprint(2)\n```\n"


def act_in(policy: OpenAIChatPolicy, env: TextEnv) -> Any:
    async def main() -> Any:
        async with policy:
            return await policy.act(MESSAGES, env)

    return asyncio.run(main())


def test_vllm_stops_after_the_stop_string_and_keeps_it(server: ChatServer) -> None:
    server.script(Reply(text=BLOCK + TAIL))
    completion = act_in(policy_for(server), CodeEnv())
    assert server.requests[0]["body"]["stop"] == ["\n```\n"]
    assert server.requests[0]["body"]["include_stop_str_in_output"] is True
    assert (completion.text, completion.finish_reason) == (BLOCK, "stop")
    assert completion.token_ids == tokenize(BLOCK) and len(completion.logprobs) == len(BLOCK)
    with policy_for(server) as policy:  # the blocking twin sends the same
        server.script(Reply(text=BLOCK + TAIL))
        assert policy.act_sync(MESSAGES, CodeEnv()).text == BLOCK
    server.script(Reply(text="\\boxed{1}"))  # a natural end: nothing to add
    completion = act_in(policy_for(server), CodeEnv())
    assert completion.text == "\\boxed{1}" and completion.token_ids == tokenize("\\boxed{1}")


def test_an_env_without_stop_sequences_sends_no_stop(server: ChatServer) -> None:
    server.script(Reply(text=BLOCK + TAIL))
    assert act_in(policy_for(server), CodeEnv(())).text == BLOCK + TAIL
    assert "stop" not in server.requests[0]["body"]
    assert "include_stop_str_in_output" not in server.requests[0]["body"]


def test_a_stripped_stop_string_named_by_the_server_is_put_back(server: ChatServer) -> None:
    stops = ("</search>", "</answer>")
    server.script(Reply(text="<answer>Paris</answer> because"))
    policy = policy_for(server, extra_body={"include_stop_str_in_output": False})  # a server that strips
    completion = act_in(policy, CodeEnv(stops))
    assert completion.text == "<answer>Paris</answer>"
    assert completion.token_ids is None and completion.logprobs is None  # cannot tell what they cover
    assert completion.num_tokens == len("<answer>Paris</answer>")
    # SGLang names it matched_stop; None there is a natural end.
    body = {"choices": [{"message": {"content": "<search>q"}, "finish_reason": "stop", "matched_stop": "</search>"}]}
    assert parse_chat_completion(body, stops).text == "<search>q</search>"
    body["choices"][0]["matched_stop"] = None
    assert parse_chat_completion(body, stops).text == "<search>q"
    body["choices"][0]["finish_reason"] = "length"
    del body["choices"][0]["matched_stop"]
    assert parse_chat_completion(body, ("</search>",)).text == "<search>q"  # cut off, not stopped


def test_openai_gets_one_stop_string_and_it_is_appended_back() -> None:
    with ChatServer(flavor="openai") as server:
        server.script(Reply(text=BLOCK + TAIL))
        completion = act_in(policy_for(server, return_token_ids=False), CodeEnv())
        assert server.requests[0]["body"]["stop"] == ["\n```\n"]  # and nothing OpenAI would reject
        assert (completion.text, completion.finish_reason) == (BLOCK, "stop")
        assert completion.token_ids is None and completion.logprobs is None
        # OpenAI cannot say a "stop" finish was the model's own end: the stop string is assumed.
        server.script(Reply(text="\\boxed{1}"))
        assert act_in(policy_for(server, return_token_ids=False), CodeEnv()).text == "\\boxed{1}\n```\n"
        # With several stop strings it could not tell which one to put back, so it sends none.
        server.script(Reply(text="<search>q</search> more"))
        completion = act_in(policy_for(server, return_token_ids=False), CodeEnv(("</search>", "</answer>")))
        assert "stop" not in server.requests[-1]["body"] and completion.text == "<search>q</search> more"


# -- retries ----------------------------------------------------------------------------------
def test_retries_429_and_5xx_then_succeeds(server: ChatServer) -> None:
    server.script(Reply(429, "rate limited"), Reply(500, "boom"), Reply(503, "loading"))
    assert act(policy_for(server)).text == "echo: Say 7."
    assert len(server.requests) == 4


def test_retries_dropped_connections_and_read_timeouts(server: ChatServer) -> None:
    server.script(Reply(drop=True), Reply(delay=0.5), Reply(drop=True))
    assert act(policy_for(server, timeout=0.2)).text == "echo: Say 7."
    assert len(server.requests) == 4


@pytest.mark.parametrize(("status", "model", "message"), [
    (400, "tiny", "context length exceeded"),
    (401, "tiny", "bad key"),
    (404, "missing", "The model `missing` does not exist."),  # the server's own validation
])
def test_other_4xx_raise_at_once_with_the_server_message(server: ChatServer, status: int, model: str,
                                                         message: str) -> None:
    if model == "tiny":
        server.script(Reply(status, message))
    with pytest.raises(RequestRejectedError) as caught:
        act(OpenAIChatPolicy(server.url, model, **FAST))
    assert caught.value.status_code == status and caught.value.message == message
    assert len(server.requests) == 1


def test_openai_rejects_vllm_fields_without_retrying() -> None:
    with ChatServer(flavor="openai") as server:
        with pytest.raises(RequestRejectedError, match="Unrecognized request argument.*return_token_ids"):
            act(policy_for(server))
        assert len(server.requests) == 1


def test_exhausted_retries_raise_infra_error_with_cause(server: ChatServer) -> None:
    server.script(*[Reply(500, "out of memory")] * 5)
    with pytest.raises(InfraError, match="3 attempts.*HTTP 500: out of memory") as caught:
        act(policy_for(server, max_retries=2))
    assert isinstance(caught.value.__cause__, TransientHTTPError)
    assert len(server.requests) == 3


def test_unreachable_server_is_infra_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InfraError) as caught:
        act(OpenAIChatPolicy(f"http://127.0.0.1:{port}", "tiny", max_retries=1, **FAST))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_retry_after_is_honoured(server: ChatServer) -> None:
    server.script(Reply(429, "busy", headers={"Retry-After": "0.3"}))
    start = time.perf_counter()
    act(policy_for(server, retry_wait_max=1.0))
    assert time.perf_counter() - start >= 0.3
    assert len(server.requests) == 2


def test_malformed_success_body_is_infra_error(server: ChatServer) -> None:
    server.script(Reply(raw=b"<html>proxy error</html>"))
    with pytest.raises(InfraError, match="not JSON"):
        act(policy_for(server))


# -- concurrency, sync twin, lifetime -------------------------------------------------------
def test_concurrent_acts_share_a_bounded_connection_pool(server: ChatServer) -> None:
    policy = policy_for(server, max_connections=8)
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(32)]

    async def main() -> tuple[list[str], int, list[str]]:
        async with policy:
            first = await asyncio.gather(*(policy.act(p) for p in prompts))
            opened = len(server.connections)
            second = await asyncio.gather(*(policy.act(p) for p in prompts))
        return [c.text for c in first], opened, [c.text for c in second]

    server.script(*[Reply(delay=0.05)] * 32)  # overlap the first round so the pool fills
    first, opened, second = asyncio.run(main())
    assert first == second == [f"echo: q{i}" for i in range(32)]
    assert len(server.requests) == 64
    assert 1 < opened <= 8
    assert len(server.connections) == opened  # the second round reused the pooled connections


def test_act_sync_uses_a_blocking_client_and_retries(server: ChatServer) -> None:
    server.script(Reply(502, "bad gateway"))
    with policy_for(server) as policy:
        assert policy.act_sync(MESSAGES).text == "echo: Say 7."
        assert policy.act_sync(MESSAGES).text == "echo: Say 7."

        async def inside_a_running_loop() -> str:  # where asyncio.run() would fail
            return policy.act_sync(MESSAGES).text

        assert asyncio.run(inside_a_running_loop()) == "echo: Say 7."
        assert len(server.connections) == 1  # one kept-alive connection for sequential calls
        with ThreadPoolExecutor(8) as pool:  # one client shared by many threads
            prompts = [[{"role": "user", "content": f"t{i}"}] for i in range(16)]
            assert [c.text for c in pool.map(policy.act_sync, prompts)] == [f"echo: t{i}" for i in range(16)]
    assert len(server.requests) == 20


def test_aclose_is_idempotent_and_the_policy_reopens(server: ChatServer) -> None:
    policy = policy_for(server)

    async def main() -> None:
        async with policy:
            await policy.act(MESSAGES)
        await policy.aclose()
        await policy.aclose()
        assert (await policy.act(MESSAGES)).text == "echo: Say 7."
        await policy.aclose()

    asyncio.run(main())
    act(policy)  # a second event loop gets its own pool
    assert len(server.requests) == 3


def test_constructor_validates_and_make_policy_builds_it(server: ChatServer) -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAIChatPolicy("localhost:8000", "tiny")
    with pytest.raises(ValueError):
        OpenAIChatPolicy(server.url, "tiny", max_connections=0)
    policy = make_policy("openai", base_url=server.url, model="tiny", api_key=None, temperature=0.2)
    assert isinstance(policy, OpenAIChatPolicy) and policy.name == "tiny"
    assert make_policy("openai", base_url=server.url, model="tiny", name="sft-v1").name == "sft-v1"


# -- with the rollout engine -------------------------------------------------------------------
class SayEnv(TextEnv):
    """Solved by saying the server's echo of the prompt."""

    threaded_async = False

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "Say 7.", {"state_key": "start"}

    def _step(self, action: str) -> StepResult:
        solved = action == "echo: Say 7."
        return "Done." if solved else "Again.", float(solved), solved, False, {}


def test_rollout_records_tokens_and_types_a_dead_server_as_infra(server: ChatServer) -> None:
    async def episode(policy: OpenAIChatPolicy):
        async with policy:
            return await run_episode(SayEnv(max_turns=2), policy, plan("r", tasks=1, group_size=1)[0],
                                     env_id="tests/Say-v0")

    traj = asyncio.run(episode(policy_for(server)))
    assert traj.failure is None and traj.outcome == 1.0
    assert traj.turns[0].action_token_ids == tokenize("echo: Say 7.")
    assert traj.turns[0].action_logprobs is not None
    server.script(*[Reply(503, "down")] * 3)
    traj = asyncio.run(episode(policy_for(server, max_retries=2)))
    assert traj.failure == "infra" and "503" in traj.failure_detail


def test_a_prompt_over_the_context_length_truncates_the_episode(server: ChatServer) -> None:
    vllm_message = ("This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
                    "(1900 in the messages, 200 in the completion). Please reduce the length.")
    server.script(Reply(400, vllm_message))
    with pytest.raises(PromptTooLongError):  # a RequestRejectedError (never retried) that the engine knows
        act(policy_for(server))

    async def episode() -> Any:
        async with policy_for(server) as policy:
            return await run_episode(SayEnv(max_turns=5), policy, plan("r", tasks=1, group_size=1)[0],
                                     env_id="tests/Say-v0")

    server.script(Reply(text="not yet"), Reply(400, vllm_message))
    traj = asyncio.run(episode())
    assert traj.failure is None and traj.truncated and traj.truncation_reason == "context_length"
    assert [t.action for t in traj.turns] == ["not yet"] and traj.final_observation == "Again."

    server.script(Reply(400, vllm_message))  # not even the first prompt fits: a config error stops the run
    with pytest.raises(PromptTooLongError):
        asyncio.run(episode())

    # OpenAI names the error in its code, whatever the message says.
    openai_body = {"error": {"message": "Your input exceeds the context window of this model.",
                             "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}
    with pytest.raises(PromptTooLongError):
        OpenAIChatPolicy._check(httpx.Response(400, json=openai_body))
    with pytest.raises(RequestRejectedError) as rejected:
        OpenAIChatPolicy._check(httpx.Response(400, json={"error": {"message": "bad", "code": "invalid_value"}}))
    assert not isinstance(rejected.value, PromptTooLongError)


def test_a_retried_request_logs_one_warning_per_incident(server: ChatServer, caplog) -> None:
    server.script(*[Reply(503, "warming up")] * 3)
    with caplog.at_level("DEBUG", logger="agentgym.retry"):
        act(policy_for(server, max_retries=4))
    warnings = [r for r in caplog.records if r.name == "agentgym.retry" and r.levelname == "WARNING"]
    assert len(server.requests) == 4 and len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "retry 1/4" in warnings[0].getMessage()


def test_check_server_names_the_url_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(InfraError, match=f"nothing answers at http://127.0.0.1:{port}/v1/models"):
        OpenAIChatPolicy(f"http://127.0.0.1:{port}", "tiny").check_server()
    assert time.perf_counter() - started < 5  # one try, no backoff


def test_a_seeded_policy_sends_a_request_seed_per_episode_and_turn(server: ChatServer) -> None:
    from agentgym.policies.base import Episode, running_episode

    def seed_of(policy: OpenAIChatPolicy, episode: Episode, messages: list[dict[str, Any]] = MESSAGES) -> int:
        with running_episode(episode):
            return policy.request_body(messages)["seed"]

    policy = policy_for(server, seed=3)
    first = seed_of(policy, Episode(10, 0))
    assert first == seed_of(policy_for(server, seed=3), Episode(10, 0))  # a pure function of the episode
    later_turn = [*MESSAGES, {"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    others = {seed_of(policy, Episode(10, 1)), seed_of(policy, Episode(11, 0)), seed_of(policy, Episode(10, 0), later_turn),
              seed_of(policy_for(server, seed=4), Episode(10, 0))}
    assert first not in others and len(others) == 4
    assert "seed" not in policy_for(server).request_body(MESSAGES)  # unseeded: the server's own sampling
