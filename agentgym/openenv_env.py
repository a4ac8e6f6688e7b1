"""A running OpenEnv server as an agentgym env: :class:`OpenEnvEnv`.

Any server that speaks OpenEnv's protocol (one built with ``openenv-core``'s server helpers, a
Hugging Face Space's container, or ``agentgym serve-openenv``) becomes a :class:`TextEnv`: the
agent's text is the action, the observation's text is what it reads next, OpenEnv's
``reward``/``done`` are the step's reward and end. Each env holds one WebSocket session (one
episode at a time; the server gives every session its own env), so ``--concurrency N`` plays N
sessions at once.

How text maps to OpenEnv's typed actions and observations, read from the server's ``/schema``:

* action: with one string field (``EchoAction.message``, ``serve-openenv``'s ``message``) the
  agent's text is that field; otherwise the agent writes the action as one JSON object (the
  system prompt shows the schema). ``action_field`` picks the field by hand.
* observation: with one required string field (``serve-openenv``'s ``text``) the agent reads
  that; otherwise the observation as JSON (without ``reward``/``done``). ``observation_field``
  picks the field by hand.

Whose fault a failure is:

* an action that is not JSON (in JSON mode) or that the server rejects (``VALIDATION_ERROR``):
  the agent's, a readable parse-error observation, the episode goes on;
* the server unreachable, a dropped connection, no answer within ``timeout``, any other
  server error (``EXECUTION_ERROR``, ``CAPACITY_REACHED``, ...), or an observation with
  ``failure: "infra"``: :class:`~agentgym.errors.InfraError` (the engine records
  ``failure="infra"`` and rebuilds the env); ``failure: "error"`` (a bug in the served env's
  code): :class:`~agentgym.errors.EnvCodeError`.

Fields ``serve-openenv`` adds are used when present: ``terminated``/``truncated``, ``success``,
``failure: "agent"``, ``legal_actions`` (so ``--policy random`` plays legal moves),
``system_prompt``, ``task_id`` and the ``info`` keys the engine reads. Needs the ``openenv`` extra (its ``websockets`` client).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from agentgym.core import StepResult, TextEnv
from agentgym.errors import EnvCodeError, InfraError

__all__ = ["OpenEnvEnv"]

# Step info keys a served agentgym env sends that the engine reads (the rest stay on the server).
_INFO_KEYS = ("state_key", "parse_error", "void", "answer", "role")
_BASE_FIELDS = ("reward", "done", "metadata")  # OpenEnv's own observation fields, never the text


class OpenEnvEnv(TextEnv):
    """An env played on a running OpenEnv server.

    Args:
        base_url: the server, ``http://HOST:PORT`` (or ``ws://``); the session is ``/ws``.
        action_field: the action field the agent's text goes to (default: the action's only
            string field; none: the agent writes the action as a JSON object).
        observation_field: the observation field the agent reads (default: its only required
            string field; none: the whole observation as JSON).
        timeout: seconds to connect, and for each reset or step, before it counts as an infra failure.
        reset_kwargs: extra data for every reset (the server's ``reset`` keyword arguments).

    The rest (``max_turns``, ...) goes to :class:`~agentgym.core.TextEnv`. A session that
    failed is opened again at the next reset.
    """

    threaded_async: ClassVar[bool] = True  # every call waits on the server

    def __init__(
        self,
        base_url: str,
        *,
        action_field: str | None = None,
        observation_field: str | None = None,
        timeout: float = 60.0,
        reset_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if not base_url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"base_url must be an http(s):// or ws(s):// URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.reset_kwargs = dict(reset_kwargs or {})
        self.action_field, self.observation_field = action_field, observation_field
        self.action_schema: dict[str, Any] | None = None
        self._ws: Any = None
        self._ws_stack = ExitStack()
        self._legal: list[str] = []
        self._server_prompt: str | None = None

    # -- the connection ------------------------------------------------------------------
    def _http_url(self) -> str:
        return "http" + self.base_url[2:] if self.base_url.startswith("ws") else self.base_url

    def _loopback(self) -> bool:
        return urlsplit(self.base_url).hostname in ("localhost", "127.0.0.1", "::1")

    def _connect(self) -> None:
        from websockets.sync.client import connect

        self._disconnect()
        if self.action_schema is None:
            self._read_schema()
        ws_url = "ws" + self._http_url()[4:] + "/ws"
        stack = ExitStack()
        try:
            # A proxy from the environment applies to remote servers, never to this machine's own.
            proxy = None if self._loopback() else True
            self._ws = stack.enter_context(connect(ws_url, open_timeout=self.timeout, max_size=None, proxy=proxy))
            self._ws_stack = stack
        except Exception as e:  # noqa: BLE001 — refused, DNS, handshake: the server is not there
            raise InfraError(f"cannot open an OpenEnv session at {ws_url}: {type(e).__name__}: {e}") from e

    def _read_schema(self) -> None:
        """The action and observation schemas, and from them the text fields (see the module doc)."""
        url = self._http_url() + "/schema"
        try:
            response = httpx.get(url, timeout=self.timeout, trust_env=not self._loopback())
            response.raise_for_status()
            schema = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise InfraError(f"cannot read the OpenEnv server's schema at {url}: {type(e).__name__}: {e}") from e
        action, observation = schema.get("action") or {}, schema.get("observation") or {}
        if self.action_field is None:
            fields = {k: v for k, v in action.get("properties", {}).items() if k != "metadata"}
            strings = [k for k, v in fields.items() if v.get("type") == "string"]
            if len(fields) == 1 and strings:
                self.action_field = strings[0]
        if self.observation_field is None:
            props = observation.get("properties", {})
            required = [k for k in observation.get("required", [])
                        if k not in _BASE_FIELDS and props.get(k, {}).get("type") == "string"]
            if len(required) == 1:
                self.observation_field = required[0]
        self.action_schema = action

    def _request(self, message: dict[str, Any], what: str) -> dict[str, Any]:
        """Send one message, return the reply's ``data``; a ``VALIDATION_ERROR`` reply is
        returned as ``{"validation_error": ...}`` (the agent's action), anything else that is
        not an answer raises InfraError."""
        if self._ws is None:
            self._connect()
        try:
            self._ws.send(json.dumps(message))
            reply = json.loads(self._ws.recv(timeout=self.timeout))
        except TimeoutError as e:
            self._disconnect()
            raise InfraError(f"OpenEnv server {self.base_url}: no answer to {what} within {self.timeout:g}s") from e
        except Exception as e:  # noqa: BLE001 — a closed connection, a reply that is not JSON
            reason = self._parting_error() or f"{type(e).__name__}: {e}"
            self._disconnect()
            raise InfraError(f"OpenEnv server {self.base_url}: {what} failed: {reason}") from e
        data = reply.get("data") or {}
        if reply.get("type") == "error":
            if what == "step" and data.get("code") == "VALIDATION_ERROR":
                return {"validation_error": data.get("errors") or data.get("message")}
            self._disconnect()  # the server may have ended the session: open a new one at the next reset
            raise InfraError(f"OpenEnv server {self.base_url}: {what}: {data.get('message', 'error')} "
                             f"({data.get('code', 'no code')})")
        return data

    def _parting_error(self) -> str | None:
        """The error a server sent before it closed the session (a refused session: ``CAPACITY_REACHED``)."""
        try:
            data = json.loads(self._ws.recv(timeout=0.5)).get("data") or {}
            return f"{data['message']} ({data['code']})"
        except Exception:  # noqa: BLE001 — it sent none
            return None

    def _disconnect(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            try:
                ws.send(json.dumps({"type": "close"}))  # the server ends the session (and closes its env)
                ws.recv(timeout=2)  # and then the connection: closing it first races the server's close
            except Exception:  # noqa: BLE001, S110 — closed (as expected), or already gone
                pass
            self._ws_stack.close()

    # -- the env -------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data = self._request({"type": "reset", "data": {**self.reset_kwargs, "seed": self.task_seed}}, "reset")
        observation = data.get("observation") or {}
        self._check_failure(observation)
        prompt = observation.get("system_prompt")
        self._server_prompt = prompt if isinstance(prompt, str) else None
        self._legal = _strings(observation.get("legal_actions"))
        info = _info(observation)
        if observation.get("task_id") is not None:
            info["task_id"] = str(observation["task_id"])
        return self._text(observation), info

    def _step(self, action: str) -> StepResult:
        if self.action_field is not None:
            payload: Any = {self.action_field: action}
        else:
            try:
                payload = json.loads(action)
            except ValueError as e:
                payload, error = None, f"the action must be one JSON object: {e}"
            else:
                error = "" if isinstance(payload, dict) else f"the action must be a JSON object, got {type(payload).__name__}"
            if error:
                return f"Invalid action: {error}.", 0.0, False, False, {"parse_error": error}
        data = self._request({"type": "step", "data": payload}, "step")
        if "validation_error" in data:
            error = f"the server rejected the action: {json.dumps(data['validation_error'], default=str)[:2000]}"
            return f"Invalid action: {error}.", 0.0, False, False, {"parse_error": error}
        observation = data.get("observation") or {}
        self._check_failure(observation)
        done = bool(data.get("done"))
        truncated = bool(observation.get("truncated")) and done
        terminated = done and not truncated
        self._legal = [] if done else _strings(observation.get("legal_actions"))
        info = _info(observation)
        if observation.get("failure") == "agent":  # the served env ended the episode for the agent's fault
            info["failure"] = "agent"
        if done and isinstance(observation.get("success"), bool):
            info["success"] = observation["success"]
        return self._text(observation), float(data.get("reward") or 0.0), terminated, truncated, info

    def _check_failure(self, observation: dict[str, Any]) -> None:
        """A served agentgym env's typed failure, raised as ours."""
        failure = observation.get("failure")
        if failure == "infra":
            raise InfraError(f"OpenEnv server {self.base_url}: {observation.get('text', 'infra failure')}")
        if failure == "error":
            raise EnvCodeError(f"OpenEnv server {self.base_url}: {observation.get('text', 'env error')}")

    def _text(self, observation: dict[str, Any]) -> str:
        if self.observation_field is not None and self.observation_field in observation:
            value = observation[self.observation_field]
            return value if isinstance(value, str) else json.dumps(value, default=str)
        return json.dumps({k: v for k, v in observation.items() if v is not None}, default=str)

    @property
    def system_prompt(self) -> str:  # type: ignore[override]
        """The served env's own prompt when it sends one; else how to write an action."""
        if self._server_prompt:
            return self._server_prompt
        if self.action_field is not None:
            return f"You act in the OpenEnv environment at {self.base_url}. Reply with your action."
        schema = json.dumps(self.action_schema or {}, default=str)
        return (f"You act in the OpenEnv environment at {self.base_url}. Reply with your action as one JSON "
                f"object matching this JSON schema: {schema}")

    def legal_actions(self) -> list[str]:
        """The actions the server listed in its last observation (``legal_actions``), else none."""
        return list(self._legal)

    def close(self) -> None:
        self._disconnect()
        super().close()


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _info(observation: dict[str, Any]) -> dict[str, Any]:
    info = observation.get("info")
    return {k: info[k] for k in _INFO_KEYS if k in info} if isinstance(info, dict) else {}
