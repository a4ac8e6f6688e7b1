"""A stand-in for ``vllm serve`` 0.33.0 on loopback (real HTTP, stdlib ``ThreadingHTTPServer``).

It answers the routes :class:`agentgym.trainers.vllm_backend.VLLMServer` uses the way vLLM 0.33.0
does (read from its source: ``entrypoints/serve``, ``entrypoints/openai``,
``serve/utils/api_utils.get_max_tokens``, ``sampling_params``):

* ``GET /version`` → ``{"version": "0.33.0"}``; ``GET /v1/models`` lists the base model only,
  with its ``max_model_len``;
* ``POST /v1/completions``: at most ``VLLM_MAX_STOP_STRINGS`` (4) stop strings (else a 400
  validation error); a prompt over ``max_model_len`` is a 400 "Input length (N) exceeds model's
  maximum context length (M)."; ``max_tokens`` is clamped to the room left, so a prompt of exactly
  ``max_model_len`` is a 400 "max_tokens must be at least 1, got 0." and a clamped one finishes
  ``"length"``; an unknown model (or unloaded adapter) is a 404;
* ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` exist only with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` (``runtime_lora``), ``/reset_prefix_cache`` only with
  ``VLLM_SERVER_DEV_MODE`` (``dev_mode``; it answers ``{"success": bool}``); a route that is not
  mounted is FastAPI's 404 ``{"detail": "Not Found"}``.

The "model" is deterministic: every completion is ``reply_len`` tokens ``10, 11, ...`` with
log-probs ``-0.5, -1.0, ...``, the last one EOS (``finish_reason "stop"``) unless ``max_tokens``
cuts it first (``"length"``).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from support import LoopbackHTTPServer

NOT_FOUND = {"detail": "Not Found"}  # FastAPI's answer for a route that is not mounted


def error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
    """vLLM's ``ErrorResponse`` body."""
    return status, {"error": {"message": message, "type": kind, "param": param, "code": status}}


class FakeVLLMServer(LoopbackHTTPServer):
    """``with FakeVLLMServer() as server:`` serves on ``server.url``; ``server.requests`` records
    ``(method, path, body)``."""

    def __init__(self, *, model: str = "base", max_model_len: int = 32, reply_len: int = 3,
                 runtime_lora: bool = True, dev_mode: bool = False, reset_succeeds: bool = True,
                 max_stop_strings: int = 4, version: str = "0.33.0", empty_reset: bool = False):
        self.model, self.max_model_len, self.reply_len = model, max_model_len, reply_len
        self.runtime_lora, self.dev_mode, self.reset_succeeds = runtime_lora, dev_mode, reset_succeeds
        self.max_stop_strings, self.version = max_stop_strings, version
        self.empty_reset = empty_reset  # vLLM < 0.33 answered the reset with an empty 200
        self.adapters: dict[str, str] = {}
        self.requests: list[tuple[str, str, Any]] = []
        super().__init__()

    # -- routes -----------------------------------------------------------------------------
    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        if (method, path) == ("GET", "/version"):
            return 200, {"version": self.version}
        if (method, path) == ("GET", "/v1/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "vllm",
                                                     "root": self.model, "max_model_len": self.max_model_len}]}
        if (method, path) == ("POST", "/v1/completions"):
            return self.completions(body)
        if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter") and self.runtime_lora and method == "POST":
            return self.lora(path, body)
        if (method, path) == ("POST", "/reset_prefix_cache") and self.dev_mode:
            return 200, "" if self.empty_reset else {"success": self.reset_succeeds}
        return 404, NOT_FOUND

    def completions(self, body: dict[str, Any]) -> tuple[int, Any]:
        stop = body.get("stop") or []
        if isinstance(stop, list) and len(stop) > self.max_stop_strings:
            message = (f"1 validation error:\n  {{'type': 'too_long', 'loc': 'body.stop', 'msg': 'List should "
                       f"have at most {self.max_stop_strings} items after validation, not {len(stop)}'}}")
            return error(400, "Bad Request", message, "body.stop")
        if body["model"] != self.model and body["model"] not in self.adapters:
            return error(404, "NotFoundError", f"The model `{body['model']}` does not exist.", "model")
        prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
        choices = []
        for index, prompt in enumerate(prompts):
            if len(prompt) > self.max_model_len:
                return error(400, "BadRequestError", f"Input length ({len(prompt)}) exceeds model's maximum "
                             f"context length ({self.max_model_len}).")
            max_tokens = min(body.get("max_tokens") or self.max_model_len, self.max_model_len - len(prompt))
            if max_tokens < 1:
                return error(400, "BadRequestError", f"max_tokens must be at least 1, got {max_tokens}.",
                             "max_tokens")
            n = min(self.reply_len, max_tokens)
            ids = list(range(10, 10 + n))
            as_ids = body.get("return_tokens_as_token_ids")
            choices.append({"index": index, "text": "x" * n, "stop_reason": None,
                            "finish_reason": "stop" if n == self.reply_len else "length",
                            "logprobs": {"tokens": [f"token_id:{t}" if as_ids else "x" for t in ids],
                                         "token_logprobs": [-0.5 * (k + 1) for k in range(n)],
                                         "text_offset": list(range(n)), "top_logprobs": None}})
        return 200, {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": choices}

    def lora(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("lora_name")
        if path.endswith("unload_lora_adapter"):
            if name not in self.adapters:
                return error(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
            del self.adapters[name]
            return 200, f"Success: LoRA adapter '{name}' removed successfully."
        if not name or not body.get("lora_path"):
            return error(400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.")
        if name in self.adapters:
            return error(400, "InvalidUserInput", f"The lora adapter '{name}' has already been loaded. If you "
                         "want to load the adapter in place, set 'load_inplace' to True.")
        if not (Path(body["lora_path"]) / "adapter_config.json").exists():
            return error(404, "NotFoundError", f"Loading lora {name} failed: No adapter found for {body['lora_path']}")
        self.adapters[name] = body["lora_path"]
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = server.answer(method, self.path, json.loads(raw) if raw else None)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 — BaseHTTPRequestHandler's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler
