"""``agentgym serve-openenv ENV_ID``: any registered env served with OpenEnv's protocol.

`OpenEnv <https://github.com/meta-pytorch/OpenEnv>`_ clients (``openenv-core``'s
``GenericEnvClient`` or an env's typed client) talk to a server over a WebSocket at ``/ws``:
each connection is a session with its own env, so sessions run concurrently and never share
an episode. The server is ``openenv-core``'s own FastAPI app (``/ws``, ``/health``,
``/schema``, ``/metadata``, and the stateless ``/reset`` and ``/step``); this module supplies
the Environment it serves:

* the action is ``{"message": "<the action text>"}``, exactly what the env's agent would write;
* the observation is :func:`observation_model`: ``text`` (what the agent reads), ``reward``
  and ``done`` as OpenEnv defines them, plus ``terminated``/``truncated``, ``turn``,
  ``success`` (on the final step), ``legal_actions`` (when the env lists them), the reset's
  ``seed``, ``task_id`` and ``system_prompt``, and the step's ``info`` (its JSON-safe keys);
* nothing the client sends crashes the session: a malformed action (no ``message``, one that
  is not a string, unknown fields) comes back as an observation with ``error:
  "malformed_action"`` explaining it (the env never sees it, no turn is spent), a reset with a
  seed that is not a non-negative integer ``error: "malformed_reset"``; a step before ``reset``
  is ``error: "no_episode"``, one after the episode ended ``error: "episode_over"``;
* failures are typed: an env's :class:`~agentgym.errors.InfraError` ends the episode with
  ``failure: "infra"`` (do not score it), any other exception from the env's code with
  ``failure: "error"``; both set ``done`` and ``error``, and the server logs the traceback.

Unseeded resets count up from ``--seed`` in each session, as ``serve-mcp`` does. Needs the
``openenv`` extra.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import typer

from agentgym.core import TextEnv
from agentgym.errors import InfraError

__all__ = ["ACTION_FIELD", "build_app", "observation_model", "require_openenv", "serve_openenv"]

ACTION_FIELD = "message"
log = logging.getLogger("agentgym.openenv")


def require_openenv() -> None:
    """Import ``openenv-core`` or say which extra installs it."""
    try:
        import openenv.core  # noqa: F401
    except ImportError as e:
        raise ImportError("OpenEnv support needs openenv-core: pip install 'agentgym-rl[openenv]'") from e


def _json_safe(value: Any) -> Any:
    """``value`` as JSON data (what JSON cannot hold becomes its string)."""
    return json.loads(json.dumps(value, default=str))


@functools.cache
def _classes() -> tuple[type, type, type]:
    """The action, observation and Environment classes (built on first use: they subclass
    ``openenv-core``'s, which this module must not import when the CLI starts)."""
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
    from pydantic import ConfigDict, Field

    def _require_message(schema: dict[str, Any]) -> None:
        schema["required"] = [ACTION_FIELD]

    class AgentGymAction(Action):
        """``{"message": text}``. Any JSON object is accepted here so that a malformed one
        reaches :meth:`ServedEnv.step`, which answers it with a readable observation."""

        model_config = ConfigDict(extra="allow", json_schema_extra=_require_message)
        message: Any = Field(default=None, description="The action, as text the env's agent would write.",
                             json_schema_extra={"type": "string"})

    class AgentGymObservation(Observation):
        text: str = Field(description="What the agent reads: the task after reset, the env's answer after a step.")
        turn: int = Field(default=0, description="Steps taken in this episode.")
        terminated: bool = Field(default=False, description="The env ended the episode.")
        truncated: bool = Field(default=False, description="The episode was cut short (turn limit).")
        success: bool | None = Field(default=None, description="On the final step: did the agent reach the goal?")
        failure: str | None = Field(default=None, description="'infra': the env's infrastructure failed (do not "
                                    "score the episode); 'error': a bug in the env's code; 'agent': the agent's fault.")
        error: str | None = Field(default=None, description="Why this message did not play a normal step: "
                                  "malformed_action, malformed_reset, no_episode, episode_over, infra or env_error.")
        seed: int | None = Field(default=None, description="The episode's seed (on reset).")
        task_id: str | None = Field(default=None, description="The episode's task (on reset).")
        system_prompt: str | None = Field(default=None, description="The env's instructions (on reset).")
        legal_actions: list[str] | None = Field(default=None, description="The actions the env allows now, when "
                                                "it lists them.")
        info: dict[str, Any] = Field(default_factory=dict, description="The env's step info (JSON-safe keys).")

    class ServedEnv(Environment):
        """One session's agentgym env behind OpenEnv's Environment interface."""

        SUPPORTS_CONCURRENT_SESSIONS = True  # every session builds its own env

        def __init__(self, make_env: Callable[[], TextEnv], first_seed: int, name: str):
            super().__init__()
            self.env = make_env()
            self.name = name
            self.next_seed = first_seed
            self.started = False
            self.episode_id: str | None = None

        def reset(self, seed: int | None = None, episode_id: str | None = None,
                  options: dict[str, Any] | None = None) -> AgentGymObservation:
            problem = _malformed_reset(seed, options)
            if problem:
                return AgentGymObservation(text=f"Malformed reset: {problem}; no episode was started.",
                                           error="malformed_reset", turn=self.env.turn)
            seed = self.next_seed if seed is None else seed
            self.next_seed = seed + 1
            self.started, self.episode_id = False, str(episode_id or uuid.uuid4().hex)
            try:
                obs, info = self.env.reset(seed=seed, options=options)
            except InfraError as e:
                return self._failed("infra", f"The environment failed (infrastructure) at reset: {e}")
            except Exception as e:  # noqa: BLE001 — the env's own bug: typed, logged, never the session's end
                log.exception("env %s raised at reset", self.name)
                return self._failed("error", f"The environment's code raised at reset: {type(e).__name__}: {e}")
            self.started = True
            return AgentGymObservation(
                text=obs, seed=seed, task_id=None if info.get("task_id") is None else str(info["task_id"]),
                system_prompt=self.env.system_prompt, legal_actions=self._legal_actions(),
                info=self._info(info))

        def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> AgentGymObservation:
            problem = _malformed(action)
            if problem:
                return AgentGymObservation(
                    text=f"Malformed action: {problem}. Send {{\"{ACTION_FIELD}\": \"<your action as text>\"}}.",
                    error="malformed_action", turn=self.env.turn, done=self.env.done and self.started)
            if not self.started:
                return AgentGymObservation(text="No episode is running: send reset first.", error="no_episode")
            if self.env.done:
                return AgentGymObservation(
                    text=f"The episode is over (return {self.env.episode_return:g}); reset to start a new one.",
                    error="episode_over", done=True, turn=self.env.turn)
            try:
                obs, reward, terminated, truncated, info = self.env.step(action.message)
            except InfraError as e:
                self.env.done = True
                return self._failed("infra", f"The environment failed (infrastructure): {e}")
            except Exception as e:  # noqa: BLE001 — the env's own bug: typed, logged, never the session's end
                log.exception("env %s raised at step", self.name)
                self.env.done = True
                return self._failed("error", f"The environment's code raised: {type(e).__name__}: {e}")
            done = terminated or truncated
            return AgentGymObservation(
                text=obs, reward=reward, done=done, terminated=terminated, truncated=truncated,
                turn=self.env.turn, success=info["success"] if done else None,
                failure=None if info["failure"] is None else str(info["failure"]),
                legal_actions=None if done else self._legal_actions(), info=self._info(info))

        def _failed(self, failure: str, text: str) -> AgentGymObservation:
            return AgentGymObservation(text=text, done=True, failure=failure,
                                       error="infra" if failure == "infra" else "env_error", turn=self.env.turn)

        def _legal_actions(self) -> list[str] | None:
            legal = getattr(self.env.unwrapped, "legal_actions", None)
            return [str(a) for a in legal()] if callable(legal) else None

        @staticmethod
        def _info(info: dict[str, Any]) -> dict[str, Any]:
            return _json_safe({k: v for k, v in info.items() if k not in ("success", "failure")})

        @property
        def state(self) -> State:
            return State(episode_id=self.episode_id, step_count=self.env.turn, done=self.env.done,
                         episode_return=self.env.episode_return, seed=self.env.task_seed)

        def get_metadata(self) -> EnvironmentMetadata:
            import agentgym

            spec = getattr(self.env, "agentgym_spec", None)
            return EnvironmentMetadata(name=self.name, description=getattr(spec, "description", "") or self.name,
                                       version=agentgym.__version__, author="agentgym serve-openenv")

        def close(self) -> None:
            self.env.close()

    return AgentGymAction, AgentGymObservation, ServedEnv


def _malformed(action: Any) -> str:
    """Why ``action`` is not ``{"message": str}`` ('' when it is)."""
    extra = sorted(set(getattr(action, "model_extra", None) or {}))
    if extra:
        return f"unknown field(s) {', '.join(map(repr, extra))}; the action has one field, {ACTION_FIELD!r}"
    message = getattr(action, ACTION_FIELD, None)
    if message is None:
        return f"no {ACTION_FIELD!r}"
    if not isinstance(message, str):
        return f"{ACTION_FIELD!r} must be a string, got {type(message).__name__}"
    return ""


def _malformed_reset(seed: Any, options: Any) -> str:
    """Why a reset's data is unusable ('' when it is fine)."""
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        return f"seed must be a non-negative integer, got {seed!r}"
    if options is not None and not isinstance(options, dict):
        return f"options must be an object, got {type(options).__name__}"
    return ""


def observation_model() -> type:
    """The pydantic class of the observations ``serve-openenv`` sends (its fields are the protocol)."""
    return _classes()[1]


def build_app(make_env: Callable[[], TextEnv], *, name: str, first_seed: int = 0, max_sessions: int = 64) -> Any:
    """``openenv-core``'s FastAPI app serving the envs ``make_env()`` builds, one per session (at
    most ``max_sessions`` at once; one more is refused with OpenEnv's ``CAPACITY_REACHED``)."""
    from openenv.core.env_server.http_server import create_fastapi_app

    action_cls, observation_cls, served_cls = _classes()
    probe = make_env()  # a bad env id or kwarg fails here, not in every session
    probe.close()
    factory = functools.partial(served_cls, make_env, first_seed, name)
    return _QuietDisconnects(create_fastapi_app(factory, action_cls, observation_cls,
                                                max_concurrent_envs=max_sessions))


class _QuietDisconnects:
    """ASGI wrapper: a client that closes its WebSocket while the server closes it too (as
    openenv-core's own client does) makes openenv-core's endpoint raise ``WebSocketDisconnect``
    from its cleanup; that is a session ending, not an error worth a traceback on stderr."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope["type"] != "websocket":
                raise


def serve_openenv(
    env_id: str = typer.Argument(..., help="A registered env, e.g. agentgym/Sokoban-v0."),
    port: int = typer.Option(8000, "--port", help="Serve on 127.0.0.1:PORT (0: any free port; the address is "
                             "printed on stderr as JSON).", min=0, max=65535),
    seed: int = typer.Option(0, help="Seed of each session's first unseeded reset; later ones count up from it."),
    max_sessions: int = typer.Option(64, "--max-sessions", min=1, help="Sessions (WebSocket connections, one env "
                                     "each) served at once; one more is refused with CAPACITY_REACHED."),
    env_kwarg: list[str] = typer.Option([], "--env-kwarg", help="Env kwarg override key=value (repeatable)."),
) -> None:
    """Serve a registered env with OpenEnv's protocol, so OpenEnv clients (openenv-core) can play it.

    Each WebSocket session (ws://127.0.0.1:PORT/ws) has its own env. Actions are
    {"message": "<action text>"}; observations carry text, reward, done and the episode's
    details (turn, success, legal_actions, failure). A malformed action is answered with a readable
    observation (error "malformed_action"), never a crash; an env's infrastructure failure ends the
    episode with failure "infra". Needs the openenv extra. Example client:

        from openenv.core import GenericEnvClient
        with GenericEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
            result = env.reset(seed=0); result = env.step({"message": "..."})

    The other way round, agentgym.openenv_env.OpenEnvEnv plays any running OpenEnv server as an
    agentgym env (docs/openenv.md).
    """
    from agentgym.cli import _fail, _loopback_socket, _serve_asgi, _served_env

    try:
        require_openenv()
    except ImportError as e:
        raise _fail(str(e)) from None
    make_env, kwargs = _served_env(env_id, env_kwarg)
    try:
        app = build_app(make_env, name=env_id, first_seed=seed, max_sessions=max_sessions)
    except Exception as e:  # noqa: BLE001 — the env cannot be built with these kwargs
        raise _fail(f"{env_id} could not be built with kwargs {kwargs}: {type(e).__name__}: {e}") from None
    _serve_asgi(app, _loopback_socket(port, "openenv_url", "http://127.0.0.1:{port}"))
