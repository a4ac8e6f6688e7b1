"""A policy backed by any OpenAI-compatible chat-completions server (``vllm serve``, SGLang, OpenAI).

Built for thousands of concurrent rollout turns: one pooled ``httpx`` client per event loop, a
retry policy that separates transient failures (429, 5xx, dropped connections, read timeouts:
retried with exponential backoff and jitter, honouring ``Retry-After``) from requests that can
never succeed (any other 4xx: raised at once with the server's message), and a typed
:class:`~agentgym.core.InfraError` when the server stays down, so the rollout engine masks the
episode instead of scoring it 0.

Token-in/token-out: besides the OpenAI-standard ``choices[0].logprobs.content[*].logprob``, the
policy asks vLLM (>= 0.10.2) for ``return_token_ids`` and reads the response's top-level
``prompt_token_ids`` and ``choices[0].token_ids``; with logprobs it also asks for
``return_tokens_as_token_ids`` (older vLLM), whose logprob tokens read ``"token_id:123"``.
Servers that ignore these fields still work; servers that reject unknown fields (api.openai.com)
need ``return_token_ids=False``.

Stop sequences: when the env declares ``stop_sequences``, they go out as ``stop`` with vLLM's
``include_stop_str_in_output`` (one of the vLLM extensions, sent unless ``return_token_ids=False``),
so the action keeps the stop string, as the env expects. A server that strips it anyway gets it
put back when it names the string or only one was sent (see :func:`parse_chat_completion`).
OpenAI strips it and does not say which stop string matched, or whether a ``"stop"`` finish was
the model's own end: with ``return_token_ids=False`` the policy sends ``stop`` only when the env
declares exactly one, and then appends it to every ``"stop"`` finish that lacks it (a natural end
gets it too; PythonTIR-v0 and CodeTests-v0 accept that). With several it sends none: text after
the stop stays in the action.

Tool calling: for an env with tools (``env.tool_schemas()``, e.g. a
:class:`~agentgym.tools.ToolEnv`), the request carries them as ``tools=[...]``. Returned
``tool_calls`` become the action as Hermes text (:func:`agentgym.tools.format_tool_calls`), the
format the env parses and the trainer sees, and the structured assistant message is kept for the
history (:func:`agentgym.policies.base.turn_messages`). A server that refuses ``tools`` (vLLM
without ``--enable-auto-tool-choice``) gets the request again without them, and no tools from
then on: the env's system prompt describes its tools in text, so the model can still call them.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from agentgym.errors import InfraError, PromptTooLongError, RequestRejectedError
from agentgym.policies.base import Completion, Message, Policy, episode_rng
from agentgym.retry import AsyncClientPerLoop, HTTPRetry, error_message
from agentgym.tools import format_tool_calls

if TYPE_CHECKING:
    from types import TracebackType

    from agentgym.core import TextEnv

__all__ = ["OpenAIChatPolicy", "PromptTooLongError", "RequestRejectedError", "parse_chat_completion"]

logger = logging.getLogger(__name__)

_TOKEN_ID_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids spelling of a logprob token


# In the message: vLLM's and OpenAI's "This model's maximum context length is 4096 tokens. ...";
# older servers' "context length exceeded"; vLLM >= 0.33 clamps max_tokens to the room left and
# then says "max_tokens must be at least 1, got 0" (or a negative count) for a full context, and
# its engine "... is longer than the maximum model length of 4096".
# OpenAI also sets ``error.code`` (whatever the wording).
_CONTEXT_LENGTH = re.compile(r"maximum (?:context|model) length|context[ _]length[ _]exceeded"
                             r"|max_tokens must be at least 1, got (?:0|-\d+)", re.IGNORECASE)
_CONTEXT_LENGTH_CODE = "context_length_exceeded"


def says_context_length(message: str) -> bool:
    """Whether a server's 400 message means the prompt does not fit the model's context."""
    return _CONTEXT_LENGTH.search(message) is not None


def _error_code(response: httpx.Response) -> Any:
    """OpenAI's ``{"error": {"code"}}``, else None."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _ids_from_tokens(tokens: list[Any]) -> list[int] | None:
    """Token ids from vLLM's ``"token_id:123"`` logprob tokens; None for ordinary token text."""
    if not all(isinstance(t, str) and t.startswith(_TOKEN_ID_PREFIX) for t in tokens):
        return None
    return [int(t[len(_TOKEN_ID_PREFIX):]) for t in tokens]


def parse_chat_completion(data: dict[str, Any], stop: Sequence[str] = ()) -> Completion:
    """Turn a chat-completions response body into a :class:`Completion`.

    Token ids come from vLLM's ``choices[0].token_ids``, else from ``"token_id:N"`` logprob
    tokens; ``num_tokens`` from ``usage.completion_tokens``, else the number of tokens seen.

    ``stop`` (the stop strings sent): a ``"stop"`` finish whose text does not end with one had it
    stripped, and it is appended back: the one the server names (vLLM ``stop_reason``, SGLang
    ``matched_stop``; ``None`` there means end-of-sequence: nothing to append), else the only one
    sent. Token ids and log-probs are then dropped: whether they cover the stripped string
    depends on the server (vLLM's do, others' may not), and token-level training must not guess.
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise InfraError(f"malformed chat completion (no choices[0].message): {str(data)[:300]}") from e
    token_ids = choice.get("token_ids")
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content")
    if content is not None:
        logprobs = [float(item["logprob"]) for item in content]
        if token_ids is None:
            token_ids = _ids_from_tokens([item.get("token") for item in content])
    num_tokens = (data.get("usage") or {}).get("completion_tokens")
    if num_tokens is None:
        counted = token_ids if token_ids is not None else logprobs
        num_tokens = len(counted) if counted is not None else None
    prompt_token_ids = data.get("prompt_token_ids")
    text = message.get("content") or ""
    assistant = None
    if message.get("tool_calls"):
        assistant = _assistant_message(text, message["tool_calls"])
        text = "\n".join(part for part in (text.strip(), format_tool_calls(assistant["tool_calls"])) if part)
    if stop and choice.get("finish_reason") == "stop" and not text.endswith(tuple(stop)):
        named = next((key for key in ("stop_reason", "matched_stop") if key in choice), None)
        matched = choice[named] if named else (stop[0] if len(stop) == 1 else None)
        if isinstance(matched, str) and matched in stop:
            text += matched
            token_ids = logprobs = None
    return Completion(
        text=text,
        token_ids=[int(t) for t in token_ids] if token_ids is not None else None,
        logprobs=logprobs,
        prompt_token_ids=[int(t) for t in prompt_token_ids] if prompt_token_ids is not None else None,
        finish_reason=choice.get("finish_reason"),
        num_tokens=num_tokens,
        message=assistant,
    )


def _assistant_message(content: str, tool_calls: list[Any]) -> dict[str, Any]:
    """The assistant message for the history: OpenAI shape, every call with an id (some servers
    omit it) and its arguments as a JSON string."""
    calls = []
    for i, call in enumerate(tool_calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", "{}")
        calls.append({
            "id": call.get("id") or f"call_{i}",
            "type": "function",
            "function": {"name": function.get("name"),
                         "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)},
        })
    return {"role": "assistant", "content": content or None, "tool_calls": calls}


def _refuses_tools(error: RequestRejectedError) -> bool:
    """A 400 about tool calling itself (vLLM: '"auto" tool choice requires --enable-auto-tool-choice
    and --tool-call-parser to be set'; servers without function calling name ``tools``)."""
    return error.status_code == 400 and not isinstance(error, PromptTooLongError) and "tool" in error.message.lower()


class OpenAIChatPolicy(Policy):
    """Chat with an OpenAI-compatible server: ``POST {base_url}/v1/chat/completions``.

    ``base_url`` may end with or without ``/v1``. ``max_retries`` counts retries after the first
    attempt; backoff starts near ``retry_wait_min`` seconds, doubles, and is capped (with any
    ``Retry-After``) at ``retry_wait_max``. ``extra_body`` is merged last into every request
    (e.g. ``{"top_k": 20}``). The connection pool waits for a free slot without a time limit:
    the caller bounds concurrency, and a full pool is not a server failure. ``send_tools``: send
    the env's tool schemas as ``tools`` (see the module docstring). ``seed``: every request
    carries a ``seed`` derived from it, the episode and the turn, so a server that honours
    per-request seeds (vLLM does) samples the same completions whatever the concurrency.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_connections: int = 64,
        request_logprobs: bool = True,
        return_token_ids: bool = True,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
        retry_wait_min: float = 0.5,
        retry_wait_max: float = 30.0,
        send_tools: bool = True,
        seed: int | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or max_connections < 1 or timeout <= 0:
            raise ValueError("need max_retries >= 0, max_connections >= 1 and timeout > 0")
        root = base_url.rstrip("/")
        self.api_root = root if root.endswith("/v1") else root + "/v1"
        self.url = self.api_root + "/chat/completions"
        self.model = model
        self.name = name or model
        self.sampling: dict[str, Any] = {"temperature": temperature, "top_p": top_p}
        if max_tokens is not None:
            self.sampling["max_tokens"] = max_tokens
        self.request_logprobs = request_logprobs
        self.return_token_ids = return_token_ids
        self.extra_body = dict(extra_body or {})
        self.send_tools = send_tools
        self.seed, self._rng = seed, random.Random(seed)  # the RNG: request seeds outside the rollout engine
        self.retry = HTTPRetry(max_retries, retry_wait_min, retry_wait_max)  # agentgym.retry: shared policy
        self._client_kwargs: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
            "timeout": httpx.Timeout(timeout, pool=None),
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        }
        self._aclients = AsyncClientPerLoop(**self._client_kwargs)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()  # act_sync may be called from many threads

    # -- requests -------------------------------------------------------------------------
    def request_body(
        self, messages: list[Message], stop: Sequence[str] = (), tools: Sequence[dict[str, Any]] = ()
    ) -> dict[str, Any]:
        """The JSON body sent for ``messages``, the env's ``stop`` sequences and its ``tools``
        (public so callers can log or replay it)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.sampling}
        if self.seed is not None:  # a 31-bit request seed, a pure function of (seed, episode, turn)
            body["seed"] = episode_rng(self.seed, messages, self._rng).getrandbits(31)
        if tools:
            body["tools"] = list(tools)
        if self.request_logprobs:
            body["logprobs"] = True
        if self.return_token_ids:
            body["return_token_ids"] = True
            if self.request_logprobs:
                body["return_tokens_as_token_ids"] = True
        if stop:
            body["stop"] = list(stop)
            if self.return_token_ids:
                body["include_stop_str_in_output"] = True
        body.update(self.extra_body)
        return body

    def stop_for(self, env: TextEnv | None) -> tuple[str, ...]:
        """The stop strings sent for ``env`` (its ``stop_sequences``; see the module docstring)."""
        stop = tuple(env.stop_sequences) if env is not None else ()
        return stop if self.return_token_ids or len(stop) == 1 else ()

    def tools_for(self, env: TextEnv | None) -> list[dict[str, Any]]:
        """The tool schemas sent for ``env``: its ``tool_schemas()``, unless tools are off."""
        schemas = getattr(env, "tool_schemas", None)
        return list(schemas()) if self.send_tools and schemas is not None else []

    def _tools_refused(self, error: RequestRejectedError, tools: Sequence[dict[str, Any]]) -> bool:
        """Whether to retry without tools: the request had some and the server refused them
        (then no later request sends them)."""
        if not tools or not _refuses_tools(error):
            return False
        logger.warning("%s refused tools (%s); sending none from now on", self.url, error.message)
        self.send_tools = False
        return True

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        """The body of a non-transient answer (:meth:`HTTPRetry.call` retried the rest); a 4xx
        raises :class:`RequestRejectedError` (:class:`PromptTooLongError` for a full context)."""
        status = response.status_code
        if status >= 400:
            message = error_message(response)
            too_long = says_context_length(message) or _error_code(response) == _CONTEXT_LENGTH_CODE
            raise (PromptTooLongError if status == 400 and too_long else RequestRejectedError)(status, message)
        try:
            return response.json()
        except ValueError as e:
            raise InfraError(f"HTTP {status} with a body that is not JSON: {response.text[:300]!r}") from e

    def check_server(self, timeout: float = 5.0) -> None:
        """Fail fast, before a run: one ``GET /v1/models``, no retries. Nothing listening (or no
        answer within ``timeout``) raises :class:`InfraError` naming the URL; a refused key, or a
        model list without :attr:`model`, raises :class:`RequestRejectedError`. Any other answer
        counts as a server (some do not implement ``/models``)."""
        url = self.api_root + "/models"
        try:
            response = httpx.get(url, headers=self._client_kwargs["headers"], timeout=timeout)
        except httpx.TransportError as e:
            raise InfraError(f"nothing answers at {url} ({type(e).__name__}: {e or 'no detail'}): "
                             "is the server running, and is --base-url right?") from None
        if response.status_code in (401, 403):
            raise RequestRejectedError(response.status_code, f"{url} refused the API key: {error_message(response)}")
        if response.status_code != 200:
            return
        try:
            served = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return
        if served and self.model not in served:
            raise RequestRejectedError(404, f"the server at {self.api_root} serves {served}, not {self.model!r}")

    # -- the policy -------------------------------------------------------------------------
    async def act(self, messages: list[Message], env: TextEnv | None = None) -> Completion:
        stop, tools, client = self.stop_for(env), self.tools_for(env), self._aclients.get()

        async def send(body: dict[str, Any]) -> dict[str, Any]:
            return self._check(await self.retry.acall(lambda: client.post(self.url, json=body), self.url))

        try:
            data = await send(self.request_body(messages, stop, tools))
        except RequestRejectedError as e:
            if not self._tools_refused(e, tools):
                raise
            data = await send(self.request_body(messages, stop))
        return parse_chat_completion(data, stop)

    def act_sync(self, messages: list[Message], env: TextEnv | None = None) -> Completion:
        """Blocking twin of :meth:`act` on a pooled, thread-safe ``httpx.Client``: it works where
        ``asyncio.run`` cannot (inside a running loop, or from many threads at once)."""
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(**self._client_kwargs)
            client = self._client
        stop, tools = self.stop_for(env), self.tools_for(env)

        def send(body: dict[str, Any]) -> dict[str, Any]:
            return self._check(self.retry.call(lambda: client.post(self.url, json=body), self.url))

        try:
            data = send(self.request_body(messages, stop, tools))
        except RequestRejectedError as e:
            if not self._tools_refused(e, tools):
                raise
            data = send(self.request_body(messages, stop))
        return parse_chat_completion(data, stop)

    # -- lifetime -------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close both connection pools; idempotent, and a later call opens new ones."""
        await self._aclients.aclose()
        self.close()

    def close(self) -> None:
        """Close the blocking client (for code that only uses :meth:`act_sync`); idempotent."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def __aenter__(self) -> OpenAIChatPolicy:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __enter__(self) -> OpenAIChatPolicy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIChatPolicy(url={self.url!r}, model={self.model!r})"
