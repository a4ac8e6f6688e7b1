"""``agentgym serve-mcp ENV_ID``: a registered tool env served as an MCP server.

An outside agent (any MCP client: an IDE assistant, another framework, a test) acts in the env
through MCP tools:

* every tool of the env, with its JSON schema: a call is one env step (the call as the env's
  own Hermes text), so the env's validation, limits, rewards and turn count apply; the result is
  the observation, with ``structuredContent`` ``{"reward", "return", "terminated",
  "truncated", "turn", "failure"}`` (``failure`` ``"infra"``: the env itself failed, do not
  score the episode); a call the env reports as failed comes back with ``isError``;
* ``answer(answer)``: the final answer (``<answer>…</answer>``), which usually ends the episode
  and gives the reward;
* ``reset(seed=None)``: a new episode, returning the task. Without a seed, episodes use
  ``--seed``, ``--seed + 1``, … in order. The first call of a session starts an episode by
  itself (seed ``--seed``), so an agent may skip ``reset``; after the episode ends every env
  tool answers with an error until ``reset``.

Each MCP session has its own env: a stdio server has one client; over HTTP the
``mcp-session-id`` names the episode (at most :data:`MAX_SESSIONS` are kept; a stateless client
without a session id shares one). Needs the ``mcp`` extra.
"""

from __future__ import annotations

import threading
from typing import Any

import typer

from agentgym.core import InfraError
from agentgym.tools import ToolEnv, format_tool_calls

__all__ = ["CONTROL_TOOLS", "Episode", "build_server", "serve_mcp"]

CONTROL_TOOLS = ("reset", "answer")
MAX_SESSIONS = 256  # envs kept for HTTP sessions; the oldest is closed beyond this
_RESET_SCHEMA = {"type": "object", "properties": {"seed": {
    "type": ["integer", "null"], "description": "Seed of the episode's task (default: the next one)."}},
    "additionalProperties": False}
_ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "description": "The final answer."}},
                  "required": ["answer"], "additionalProperties": False}


class Episode:
    """One session's env and where its episode stands; every method is blocking and serialised."""

    def __init__(self, env: ToolEnv, first_seed: int):
        self.env = env
        self.next_seed = first_seed
        self.started = False
        self.done = False
        self.episode_return = 0.0
        self._lock = threading.Lock()

    def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        with self._lock:
            return self._reset(seed)

    def _reset(self, seed: int | None) -> tuple[str, dict[str, Any]]:
        seed = self.next_seed if seed is None else seed
        self.next_seed = seed + 1
        obs, info = self.env.reset(seed=seed)
        self.started, self.done, self.episode_return = True, False, 0.0
        return obs, {"seed": seed, "task_id": info.get("task_id"), "turn": 0}

    def act(self, action: str) -> tuple[str, dict[str, Any], bool]:
        """One step with ``action`` (env text): (observation, structured result, is_error)."""
        with self._lock:
            prefix = ""
            if not self.started:
                obs, meta = self._reset(None)
                prefix = f"[A new episode started (seed {meta['seed']}). Task: {obs}]\n\n"
            if self.done:
                return (f"The episode is over (return {self.episode_return:g}); call reset to start a new one.",
                        self._status(0.0, False, False, None), True)
            try:
                obs, reward, terminated, truncated, info = self.env.step(action)
            except InfraError as e:
                self.done = True
                return (f"The environment failed (infrastructure): {e}", self._status(0.0, False, True, "infra"),
                        True)
            self.episode_return += reward
            self.done = terminated or truncated
            failed = any("error" in call for call in info["tool_calls"]) or (
                info["parse_error"] is not None and info["answer"] is None)
            if truncated and not terminated:
                obs += "\n\n[The episode hit its turn limit.]"
            return prefix + obs, self._status(reward, terminated, truncated, info["failure"]), failed

    def _status(self, reward: float, terminated: bool, truncated: bool, failure: str | None) -> dict[str, Any]:
        """``failure``: the env's verdict (``"infra"``: do not score this episode as the agent's)."""
        return {"reward": reward, "return": self.episode_return, "terminated": terminated,
                "truncated": truncated, "turn": self.env.turn, "failure": failure}

    def close(self) -> None:
        self.env.close()


def build_server(make_env: Any, *, name: str, first_seed: int = 0) -> Any:
    """An MCP low-level ``Server`` exposing the tools of the envs ``make_env()`` builds (one per
    session) plus ``reset`` and ``answer``."""
    import anyio
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    probe = make_env()
    try:
        if not isinstance(probe, ToolEnv):
            raise TypeError(f"{name} is a {type(probe).__name__}, not a ToolEnv: it has no tools to serve")
        clash = sorted(set(probe.tools) & set(CONTROL_TOOLS))
        if clash:
            raise ValueError(f"{name} has tools named {clash}, which serve-mcp uses for episode control")
        tools = [Tool(name=t.name, description=t.description, input_schema=t.parameters)
                 for t in probe.tools.values()]
    finally:
        probe.close()
    tools += [
        Tool(name="reset", description="Start a new episode and return its task. Without a seed, the next "
             "seed in order.", input_schema=_RESET_SCHEMA),
        Tool(name="answer", description="Give the final answer; this usually ends the episode and scores it.",
             input_schema=_ANSWER_SCHEMA),
    ]
    tool_names = {t.name for t in tools}
    episodes: dict[str | None, Episode] = {}
    episodes_lock = threading.Lock()

    def episode_for(session_id: str | None) -> Episode:
        with episodes_lock:
            if session_id not in episodes:
                if len(episodes) >= MAX_SESSIONS:  # forget the oldest session's env
                    episodes.pop(next(iter(episodes))).close()
                episodes[session_id] = Episode(make_env(), first_seed)
            return episodes[session_id]

    def handle(session_id: str | None, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        episode = episode_for(session_id)
        if tool == "reset":
            seed = arguments.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                return _result(f"reset: seed must be an integer, got {seed!r}", None, True)
            obs, meta = episode.reset(seed)
            return _result(obs, meta, False)
        if tool == "answer":
            answer = arguments.get("answer")
            if not isinstance(answer, str):
                return _result("answer: needs a string 'answer'", None, True)
            return _result(*episode.act(f"<answer>{answer}</answer>"))
        return _result(*episode.act(format_tool_calls([{"name": tool, "arguments": arguments}])))

    def _result(text: str, structured: dict[str, Any] | None, is_error: bool) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured,
                              is_error=is_error)

    async def on_list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def on_call_tool(ctx: Any, params: Any) -> CallToolResult:
        if params.name not in tool_names:
            return _result(f"unknown tool {params.name!r}; available: {', '.join(sorted(tool_names))}", None, True)
        # Over HTTP the client's MCP session id names its episode; a stdio server has one client.
        session_id = ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None
        return await anyio.to_thread.run_sync(handle, session_id, params.name, dict(params.arguments or {}))

    instructions = (f"agentgym env {name}. Each tool call is one step of an episode. Call reset(seed) to "
                    "start an episode (the first call starts one by itself) and answer(answer) to finish it; "
                    "results carry the reward in structuredContent.")
    return Server(name, instructions=instructions, on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def _serve_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_mcp(
    env_id: str = typer.Argument(..., help="A registered tool env, e.g. agentgym/ToolWorld-v0."),
    http: int = typer.Option(None, "--http", help="Serve streamable HTTP on 127.0.0.1:PORT (0: any free "
                             "port) at /mcp, instead of stdio.", min=0, max=65535),
    seed: int = typer.Option(0, help="Seed of the first episode; later ones without a seed count up from it."),
    env_kwarg: list[str] = typer.Option([], "--env-kwarg", help="Env kwarg override key=value (repeatable)."),
) -> None:
    """Serve a registered tool env's tools as an MCP server, so outside agents can act in it.

    Besides the env's tools: reset(seed) starts an episode (the first call starts one by itself)
    and answer(answer) gives the final answer. Each MCP session has its own env. Over HTTP the
    endpoint is http://127.0.0.1:PORT/mcp (the address is printed on stderr).
    """
    import anyio

    from agentgym.cli import _fail, _loopback_socket, _serve_asgi, _served_env
    from agentgym.mcp_env import require_mcp

    require_mcp()
    make_env, kwargs = _served_env(env_id, env_kwarg)
    try:
        server = build_server(make_env, name=env_id, first_seed=seed)
    except (TypeError, ValueError) as e:
        raise _fail(str(e)) from None
    if http is None:
        anyio.run(_serve_stdio, server)
        return
    _serve_asgi(server.streamable_http_app(host="127.0.0.1"), _loopback_socket(http, "mcp_url",
                                                                                "http://127.0.0.1:{port}/mcp"))
