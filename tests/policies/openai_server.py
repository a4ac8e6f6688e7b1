"""A scriptable OpenAI-compatible chat-completions server on loopback, for tests.

Real HTTP (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive), so clients are tested with their
real transports. Each request takes the next scripted :class:`Reply` (an error status, a delay, a
dropped connection) or, when the script is empty, succeeds. Successful replies follow the request
the way the server ``flavor`` would:

* ``"vllm"``: ``return_token_ids`` adds top-level ``prompt_token_ids`` and ``choices[0].token_ids``;
  ``return_tokens_as_token_ids`` spells logprob tokens ``"token_id:N"`` (vLLM >= 0.10.2);
* ``"vllm-legacy"``: only ``return_tokens_as_token_ids`` (vLLM < 0.10.2);
* ``"openai"``: rejects unknown request fields with a 400, as api.openai.com does.

Stop strings work as on the real servers: the model's text (the echo, or ``Reply.text``) ends
at the end of the first ``stop`` string it contains (``finish_reason`` ``"stop"``). OpenAI strips
the string from the text; vLLM strips it too unless ``include_stop_str_in_output``, names it in
``stop_reason`` (``None`` for a natural end), and its token ids and logprobs cover every sampled
token, the stop string's included.

Tool calling works as on OpenAI and vLLM with ``--enable-auto-tool-choice``: ``Reply.tool_calls``
answers with ``message.tool_calls`` (ids ``call_<request>_<i>``, arguments as a JSON string,
``finish_reason`` ``"tool_calls"``), and the history is checked as OpenAI checks it: every
assistant ``tool_calls`` id must be answered by a ``role="tool"`` message with that
``tool_call_id``, and such a message must answer a call. ``ChatServer(accept_tools=False)``
refuses ``tools`` with vLLM's 400 (a server started without a tool-call parser).

The fake tokenizer maps each character to its code point, so tests can predict token ids.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from support import LoopbackHTTPServer

CHAT_PATH = "/v1/chat/completions"
OPENAI_FIELDS = {
    "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "logprobs",
    "top_logprobs", "n", "stop", "seed", "stream", "user", "presence_penalty", "frequency_penalty",
    "tools", "tool_choice", "parallel_tool_calls",
}
REFUSE_TOOLS = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'



@dataclass
class Reply:
    """What the server does with one request: answer ``status`` (with ``message`` for errors),
    after ``delay`` seconds; or ``drop`` the connection without answering. ``text`` overrides
    the echo of a successful reply; ``raw`` sends these bytes as a 200 body instead;
    ``tool_calls`` (``[{"name", "arguments"}]``) makes the model call tools (``text`` is then the
    message's content, ``None`` by default)."""

    status: int = 200
    message: str = ""
    delay: float = 0.0
    drop: bool = False
    text: str | None = None
    raw: bytes | None = None
    tool_calls: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's (and current vLLM's) error shape."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]


class ChatServer(LoopbackHTTPServer):
    """``with ChatServer() as server:`` serves on ``server.url``; ``server.script(...)`` queues
    replies; ``server.requests`` and ``server.connections`` record what clients did."""

    def __init__(self, flavor: str = "vllm", models: tuple[str, ...] = ("tiny",), accept_tools: bool = True):
        self.flavor = flavor
        self.accept_tools = accept_tools
        self.models = set(models)
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} of every request
        self.connections: set[tuple[str, int]] = set()  # client (host, port): one per TCP connection
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        super().__init__()
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # clients hang up on purpose

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

        self._thread.join(timeout=5)

    # -- serving --------------------------------------------------------------------------
    def _next_reply(self, path: str, headers: dict[str, str], body: Any, client: tuple[str, int]) -> Reply:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            self.connections.add(client)
            return self._script.popleft() if self._script else Reply()

    def _validate(self, path: str, body: Any) -> tuple[int, str] | None:
        """The checks a real server makes before generating: route, JSON, fields, model."""
        if path != CHAT_PATH:
            return 404, f"Not found: {path}"
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return 400, "'messages' is a required property and must be a non-empty list"
        if not all(isinstance(m, dict) and "role" in m for m in body["messages"]):
            return 400, "each message needs a 'role'"
        if self.flavor == "openai":
            unknown = sorted(set(body) - OPENAI_FIELDS)
            if unknown:
                return 400, f"Unrecognized request argument supplied: {', '.join(unknown)}"
        if body.get("model") not in self.models:
            return 404, f"The model `{body.get('model')}` does not exist."
        if body.get("tools") and not self.accept_tools:
            return 400, REFUSE_TOOLS
        return _check_tool_history(body["messages"])

    def completion(self, body: dict[str, Any], text: str | None,
                   tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A success body of exactly the OpenAI shape, plus the flavor's extensions."""
        if tool_calls is not None:
            return self._tool_call_completion(body, text, tool_calls)
        last = str(body["messages"][-1].get("content", ""))
        text = f"echo: {last}" if text is None else text
        vllm = self.flavor.startswith("vllm")
        stops = body.get("stop") or []
        hits = sorted((text.index(s) + len(s), s) for s in ([stops] if isinstance(stops, str) else stops) if s in text)
        stop_reason = hits[0][1] if hits else None
        if hits:  # the model sampled up to the end of the first stop string
            text = text[: hits[0][0]]
        sampled = text
        if stop_reason and not (vllm and body.get("include_stop_str_in_output")):
            text = text[: -len(stop_reason)]
        ids = tokenize(sampled if vllm else text)
        prompt_ids = tokenize("".join(str(m.get("content", "")) for m in body["messages"]))
        as_ids = vllm and body.get("return_tokens_as_token_ids")
        logprobs = None
        if body.get("logprobs"):
            content = []
            for i, (char, token_id) in enumerate(zip(sampled if vllm else text, ids, strict=True)):
                token = f"token_id:{token_id}" if as_ids else char
                content.append({"token": token, "logprob": -0.1 * (i + 1),
                                "bytes": list(char.encode()), "top_logprobs": []})
            logprobs = {"content": content, "refusal": None}
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None, "tool_calls": None},
            "logprobs": logprobs,
            "finish_reason": "stop",
        }
        response: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(sampled),
                      "total_tokens": len(prompt_ids) + len(sampled)},
            "system_fingerprint": None,
        }
        if self.flavor == "vllm":
            choice["stop_reason"] = stop_reason
            if body.get("return_token_ids"):
                choice["token_ids"] = ids
                response["prompt_token_ids"] = prompt_ids
        return response

    def _tool_call_completion(self, body: dict[str, Any], text: str | None,
                              tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
        calls = [{"id": f"call_{len(self.requests)}_{i}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                 for i, c in enumerate(tool_calls)]
        sampled = (text or "") + "".join(json.dumps(c) for c in tool_calls)  # roughly what the model wrote
        prompt_tokens = len("".join(str(m.get("content") or "") for m in body["messages"]))
        return {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "system_fingerprint": None,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": text, "refusal": None, "tool_calls": calls}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(sampled),
                      "total_tokens": prompt_tokens + len(sampled)},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                reply = server._next_reply(self.path, dict(self.headers), body, self.client_address)
                if reply.drop:
                    self.close_connection = True  # hang up without a status line
                    return
                time.sleep(reply.delay)
                if reply.raw is not None:
                    self._send(200, reply.raw, reply.headers)
                    return
                if reply.status != 200:
                    self._send(reply.status, error_body(reply.status, reply.message), reply.headers)
                    return
                problem = server._validate(self.path, body)
                if problem is not None:
                    self._send(problem[0], error_body(*problem), reply.headers)
                    return
                self._send(200, server.completion(body, reply.text, reply.tool_calls), reply.headers)

            def _send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _check_tool_history(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """OpenAI's rule: each assistant tool call is answered by a tool message with its id, right
    after it; a tool message with an id answers such a call."""
    open_ids: list[str] = []
    for message in [*messages, {"role": "end"}]:
        if message["role"] == "tool" and "tool_call_id" in message:
            if message["tool_call_id"] not in open_ids:
                return 400, ("Invalid parameter: messages with role 'tool' must be a response to a preceding "
                             f"message with 'tool_calls' (tool_call_id {message['tool_call_id']!r})")
            open_ids.remove(message["tool_call_id"])
            continue
        if open_ids:
            return 400, ("An assistant message with 'tool_calls' must be followed by tool messages responding "
                         f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                         f"{', '.join(open_ids)}")
        if message["role"] == "assistant":
            open_ids = [call["id"] for call in message.get("tool_calls") or ()]
    return None
