"""Any MCP server as an env: :class:`MCPToolEnv`, and :class:`MCPClient`, a blocking MCP client.

An MCP server (a stdio command or a streamable-HTTP URL) brings the tools; the user brings the
tasks (a JSONL file or a list) and the verifier (a Python function named ``"module:function"``
or ``"path/to/file.py:function"``). The tools the server lists become the env's tools, so the
agent calls them exactly like in-process :class:`~agentgym.tools.ToolEnv` tools (Hermes text or
OpenAI ``tool_calls``), with the same argument validation, limits and error messages.

Whose fault a failure is (see :mod:`agentgym.tools` for the rest):

* the server answers a call with an error result (``isError``) or rejects the arguments
  (JSON-RPC ``invalid params``): the agent's mistake, a tool observation, the episode goes on;
* the server dies, hangs past ``timeout``, drops the connection or answers with any other
  JSON-RPC error: :class:`~agentgym.core.InfraError`, the engine records ``failure="infra"``
  and rebuilds the env (never a reward of 0);
* the verifier raises (a bug in the user's code): :class:`~agentgym.errors.EnvCodeError`, the
  engine records ``failure="error"``, the rollout summary counts it and ``agentgym rollout``
  exits non-zero; it is neither scored 0 nor masked as infra. A verifier's ``InfraError`` (the
  server died while it read the final state) stays infra.

The MCP SDK is async (anyio) while a Gymnasium env is sync and may be stepped from any thread, so
:class:`MCPClient` runs the session on an event loop in a thread it owns: one long-lived task
holds the transport and session open (anyio scopes must be left by the task that entered
them) and each call is submitted to that loop and waited for. ``close()`` is idempotent.

Needs the ``mcp`` extra (``pip install 'agentgym-rl[mcp]'``); it is imported only when a client
is created.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import inspect
import json
import shlex
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentgym.core import InfraError
from agentgym.errors import EnvCodeError
from agentgym.records import read_rows
from agentgym.tools import Tool, ToolEnv, ToolError, format_tool_calls

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult

__all__ = ["MCPClient", "MCPToolEnv", "load_function", "load_tasks", "result_text", "structured"]

_INVALID_PARAMS = -32602  # JSON-RPC: the server refused the call's arguments (the agent's fault)


def require_mcp() -> None:
    """Import the SDK or say which extra installs it."""
    try:
        import mcp  # noqa: F401
    except ImportError as e:
        raise ImportError("MCP support needs the official SDK: pip install 'agentgym-rl[mcp]'") from e


class MCPClient:
    """A blocking client for one MCP server, usable from any thread.

    ``server`` is an ``http(s)://`` URL (streamable HTTP), a command line string (split like a
    shell would) or an argv list (stdio: the client starts the process and owns it). ``env`` and
    ``cwd`` apply to a stdio server. Every request waits at most ``timeout`` seconds; a server
    that does not answer in time, dies, drops the connection or answers with a JSON-RPC error
    other than ``invalid params`` raises :class:`~agentgym.core.InfraError`. Call
    :meth:`close` (or use ``with``): the loop thread keeps the client alive until then.
    """

    def __init__(
        self,
        server: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 30.0,
    ):
        require_mcp()
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.server = server
        self.timeout = timeout
        # A stdio server's stderr goes to a file of ours, not the console (where it would cut through a
        # rollout's progress); its tail is quoted in the InfraError that ends a failed episode.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self._stderr_at_close = ""
        self._transport = _transport(server, env, cwd, self._stderr)
        self.session: ClientSession | None = None
        self.instructions: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._closed = False
        self._lost_error: str | None = None  # set once a request finds the connection gone
        self._stop: asyncio.Event | None = None
        self._lost: asyncio.Event | None = None
        self._finished = threading.Event()  # the connection task has left the session and transport
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._main = asyncio.run_coroutine_threadsafe(self._hold(opened), self._loop)
        try:
            opened.result(timeout)
        except BaseException as e:
            self.close()
            if isinstance(e, concurrent.futures.TimeoutError):
                raise InfraError(f"MCP server {self.describe()} did not start within {timeout:g}s"
                                 + self._stderr_note()) from None
            raise InfraError(f"could not connect to MCP server {self.describe()}: {_describe(e)}"
                             + self._stderr_note()) from e

    def describe(self) -> str:
        return self.server if isinstance(self.server, str) else shlex.join(self.server)

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters a stdio server wrote to stderr ('' for an HTTP server)."""
        if self._stderr.closed:
            return self._stderr_at_close[-limit:]
        size = self._stderr.seek(0, 2)
        self._stderr.seek(max(0, size - limit))
        return self._stderr.read().strip()

    def _stderr_note(self) -> str:
        tail = self.stderr_tail()
        return f" (server stderr: {tail})" if tail else ""

    async def _hold(self, opened: concurrent.futures.Future[None]) -> None:
        """The task that owns the connection: open it, wait for close(), leave it."""
        from mcp import ClientSession

        self._stop, self._lost = asyncio.Event(), asyncio.Event()
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                init = await session.initialize()
                self.session, self.instructions = session, init.instructions
                opened.set_result(None)
                await self._stop.wait()
        except BaseException as e:  # noqa: BLE001 — reported to the caller, or through _lost
            if not opened.done():
                opened.set_exception(e)
        finally:
            self._lost.set()
            self._finished.set()

    @property
    def alive(self) -> bool:
        """False once closed, or once the server went away (a request found the connection
        gone, or the task holding it ended)."""
        return not self._closed and self._lost_error is None and not self._main.done()

    def _run(self, coro: Any, what: str) -> Any:
        if self._closed:
            coro.close()
            raise InfraError(f"MCP client for {self.describe()} is closed")
        future = asyncio.run_coroutine_threadsafe(self._guard(coro), self._loop)
        try:
            return future.result()
        except InfraError as e:
            self._lost_error = str(e) + self._stderr_note()
            raise InfraError(self._lost_error) from e
        except Exception as e:
            if _is_infra(e):
                self._lost_error = f"MCP server {self.describe()}: {what}: {_describe(e)}" + self._stderr_note()
                raise InfraError(self._lost_error) from e
            raise

    async def _guard(self, coro: Any) -> Any:
        """Await ``coro`` unless the connection is lost or ``timeout`` passes first."""
        call = asyncio.ensure_future(coro)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({call, lost}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if call in done:
            return call.result()
        call.cancel()
        if lost in done:
            raise InfraError(f"MCP server {self.describe()}: connection lost")
        raise InfraError(f"MCP server {self.describe()}: no answer within {self.timeout:g}s")

    def list_tools(self) -> list[Any]:
        """The server's tools (``mcp.types.Tool``), every page."""
        async def all_pages() -> list[Any]:
            tools, cursor = [], None
            while True:
                page = await self.session.list_tools(cursor=cursor) if cursor else await self.session.list_tools()
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

        return self._run(all_pages(), "list_tools")

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> CallToolResult:
        """One ``tools/call``; the raw result (errors the server reports are in ``is_error``)."""
        return self._run(self.session.call_tool(name, dict(arguments or {})), f"call {name}")

    def close(self) -> None:
        """Leave the session, stop (and for stdio, end) the server, stop the loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.session is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)  # leave the session and transport in order
            self._finished.wait(10)
        if not self._finished.is_set():  # still connecting, or a shutdown that hangs: cancel it
            self._main.cancel()
            self._finished.wait(10)  # the SDK escalates: stdin closed, SIGTERM, SIGKILL
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
        self._stderr_at_close = self.stderr_tail()
        self._stderr.close()

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _transport(server: str | Sequence[str], env: Mapping[str, str] | None, cwd: str | Path | None,
               errlog: Any) -> Callable[[], Any]:
    """A factory of the SDK's transport context manager for ``server``."""
    if isinstance(server, str) and server.startswith(("http://", "https://")):
        from mcp.client.streamable_http import streamable_http_client

        return lambda: streamable_http_client(server)
    from mcp.client.stdio import StdioServerParameters, stdio_client

    argv = shlex.split(server) if isinstance(server, str) else [str(a) for a in server]
    if not argv:
        raise ValueError("server: an empty command")
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env) if env else None,
                                   cwd=str(cwd) if cwd is not None else None)
    return lambda: stdio_client(params, errlog=errlog)


def _leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, which anyio task groups raise."""
    inner = getattr(e, "exceptions", None)  # BaseExceptionGroup (a builtin only from Python 3.11)
    if isinstance(inner, (list, tuple)):
        return [leaf for sub in inner for leaf in _leaves(sub)]
    return [e]


def _describe(e: BaseException) -> str:
    return "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(e))


def _is_infra(e: BaseException) -> bool:
    """Not the agent's doing: a transport failure, or any JSON-RPC error but ``invalid params``
    (the SDK also reports a closed connection, a timeout, an HTTP error status or a terminated
    session as JSON-RPC errors; the call itself was already checked against the tool's schema)."""
    import anyio
    import httpx2
    from mcp import MCPError

    transport = (OSError, EOFError, anyio.ClosedResourceError, anyio.BrokenResourceError,
                 anyio.EndOfStream, httpx2.TransportError)
    return any(isinstance(leaf, transport) or (isinstance(leaf, MCPError) and leaf.code != _INVALID_PARAMS)
               for leaf in _leaves(e))


def structured(result: CallToolResult) -> Any:
    """A result's structured content, unwrapped from ``{"result": …}`` (how SDK servers wrap a
    return value that is not an object, such as a list); None when the server sent none."""
    content = result.structured_content
    if isinstance(content, dict) and list(content) == ["result"]:
        return content["result"]
    return content


def result_text(result: CallToolResult) -> str:
    """A call result as the text the agent (and a verifier) reads, always one document: a
    returned list (an SDK server sends one text block per item, none for an empty list, and
    ``{"result": [...]}`` as structured content) and any other result of several text blocks is
    ONE JSON document (the structured content when the server sent it, else a JSON array of the
    blocks, each parsed where it is JSON); one text block as it is; other content named;
    structured content as JSON when there is no text."""
    texts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
    only_text = len(texts) == len(result.content)
    wrapped_list = isinstance(result.structured_content, dict) and list(result.structured_content) == ["result"] \
        and isinstance(result.structured_content["result"], list)
    if only_text and (wrapped_list or (len(texts) > 1 and result.structured_content is not None)):
        return json.dumps(structured(result), ensure_ascii=False)
    if only_text and len(texts) > 1:
        return json.dumps([_maybe_json(t) for t in texts], ensure_ascii=False)
    parts = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}, {len(block.data)} base64 characters]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        elif kind == "resource":
            text = getattr(block.resource, "text", None)
            parts.append(text if text is not None else f"[resource {block.resource.uri}]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_function(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """``"package.module:function"`` or ``"path/to/file.py:function"`` (or a callable) → the function."""
    if callable(ref):
        return ref
    module_name, sep, attr = str(ref).rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:function' or 'file.py:function', got {ref!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"verifier file not found: {path}")
        spec = importlib.util.spec_from_file_location(f"agentgym_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{ref!r}: {attr!r} is not a function of {module_name}")
    return fn


def load_tasks(tasks: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tasks from a JSONL file (one object per line) or a list; each needs a ``prompt`` and gets
    an ``id`` (its index unless given)."""
    if isinstance(tasks, (str, Path)):
        items = [row for _, row in read_rows(tasks)]
    else:
        items = [dict(t) for t in tasks]
    if not items:
        raise ValueError("no tasks")
    for i, task in enumerate(items):
        if not isinstance(task, dict) or not isinstance(task.get("prompt"), str):
            raise ValueError(f"task {i}: needs a string 'prompt', got {str(task)[:200]}")
        task.setdefault("id", str(i))
    return items


class MCPToolEnv(ToolEnv):
    """An env whose tools are an MCP server's tools; tasks and the verifier come from the user.

    Args:
        server: ``http(s)://…/mcp`` (streamable HTTP) or a command (string or argv) started over stdio.
        tasks: a JSONL path or a list of task objects: ``prompt`` (the first observation), and
            optionally ``id``, ``reset_arguments`` (for ``reset_tool``), ``solution`` (a list of
            calls ``{"name", "arguments"}`` and, last, an ``answer``: the scripted policy replays
            it) and whatever the verifier needs.
        reward: ``"module:function"`` or ``"file.py:function"``, called as
            ``reward(task, answer, env)`` when the agent answers; it may inspect the server's
            final state with ``env.call_tool(name, arguments)`` (text) or
            ``env.call_tool_structured(name, arguments)`` (the structured content). It returns
            the verdict: a number (the reward; success when it is at least 1), a bool (reward
            1 or 0), or a mapping ``{"reward": float, "success": bool}`` (other keys go to
            ``info``). ``info["success"]`` is that verdict.
        reset_tool: a server tool called at every reset with the task's ``reset_arguments`` (so
            each episode starts from a fresh server state); hidden from the agent. ``{reset}`` in
            the prompt is replaced by its result. Without it, the server's state carries over
            between episodes.
        hidden_tools: server tools the agent does not see (e.g. ones only the verifier uses).
        server_env, server_cwd: environment and working directory of a stdio server.
        timeout: seconds each MCP request may take before it counts as an infra failure.
        restart_per_episode: start a fresh server process at every reset (stdio only), for a
            server that keeps global state and has no reset tool: without it such a server's
            state carries over, so scores depend on which episodes shared a process (i.e. on
            ``--concurrency``).

    The rest (``max_calls_per_turn``, ``max_turns``, ...) goes to :class:`~agentgym.tools.ToolEnv`.
    The server's tools are :class:`~agentgym.tools.Tool` objects whose function forwards the call
    (:meth:`call_tool` keeps the base's lookup, validation and limits). A lost server is
    reconnected at the next ``reset``.
    """

    threaded_async: ClassVar[bool] = True  # every call waits on a server

    def __init__(
        self,
        server: str | Sequence[str],
        *,
        tasks: str | Path | Sequence[Mapping[str, Any]],
        reward: str | Callable[..., Any],
        reset_tool: str | None = None,
        hidden_tools: Sequence[str] = (),
        server_env: Mapping[str, str] | None = None,
        server_cwd: str | None = None,
        timeout: float = 30.0,
        restart_per_episode: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if restart_per_episode and isinstance(server, str) and server.startswith(("http://", "https://")):
            raise ValueError("restart_per_episode needs a stdio server (a command): an HTTP server is not "
                             "started by the env, so it cannot restart it")
        self.restart_per_episode = restart_per_episode
        self._fresh = False  # the server has played no episode since it started
        self.tasks = load_tasks(tasks)
        self.num_tasks = len(self.tasks)
        self.reward_fn = load_function(reward)
        self.reset_tool = reset_tool
        self.hidden_tools = frozenset(hidden_tools) | ({reset_tool} if reset_tool else set())
        self._connect_args = (server, {"env": server_env, "cwd": server_cwd, "timeout": timeout})
        self.client: MCPClient | None = None
        self.task: dict[str, Any] = {}
        self._last_structured: Any = None
        self._connect()

    def _connect(self) -> None:
        if self.client is not None:
            self.client.close()
        server, options = self._connect_args
        self.client = MCPClient(server, **options)
        self._fresh = True
        listed = {t.name: t for t in self.client.list_tools()}
        missing = self.hidden_tools - set(listed)
        if missing:
            raise ValueError(f"MCP server {self.client.describe()} has no tool(s) {sorted(missing)}")
        self.tools = {}
        for t in listed.values():
            if t.name not in self.hidden_tools:
                forward = _Forward(self, t.name)
                # cleandoc: servers built from Python functions send docstrings with their indentation
                self.add_tool(Tool(t.name, inspect.cleandoc(t.description or ""), dict(t.input_schema), forward))

    def remote_call(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Call a server tool (visible or hidden) and return its text. An error result, or
        arguments the server rejects, raise :class:`~agentgym.tools.ToolError`."""
        try:
            result = self.client.call_tool(name, arguments)
        except InfraError:
            raise
        except Exception as e:
            from mcp import MCPError

            if isinstance(e, MCPError) and e.code == _INVALID_PARAMS:
                raise ToolError(f"the server rejected the call: {e.message}") from e
            raise
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or f"{name} failed")
        self._last_structured = structured(result)
        return text

    def call_tool_structured(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call a server tool (visible or hidden) and return its structured content (unwrapped
        from ``{"result": …}``), or its text parsed as JSON when the server sent none: for
        verifiers that read the final state."""
        text = self.remote_call(name, dict(arguments or {}))
        return self._last_structured if self._last_structured is not None else _maybe_json(text)

    def run_call(self, name: str, arguments: Any) -> dict[str, Any]:
        """The base's entry, plus the call's ``structured_content`` when the server sent one."""
        self._last_structured = None
        entry = super().run_call(name, arguments)
        if "result" in entry and self._last_structured is not None:
            entry["structured_content"] = self._last_structured
        return entry

    @property
    def system_prompt(self) -> str:  # type: ignore[override]
        """The server's own instructions (when it gives any), then how to call its tools."""
        base = ToolEnv.system_prompt.fget(self)
        instructions = self.client.instructions if self.client is not None else None
        return f"{instructions}\n\n{base}" if instructions else base

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.client is None or not self.client.alive or (self.restart_per_episode and not self._fresh):
            self._connect()
        self._fresh = False
        chosen = options.get("task")
        if chosen is None:
            task = self.tasks[self.pool_index(len(self.tasks))]
        else:
            matches = [t for i, t in enumerate(self.tasks) if chosen in (i, t["id"])]
            if not matches:
                raise ValueError(f"no task {chosen!r}")
            task = matches[0]
        self.task = task
        prompt = task["prompt"]
        if self.reset_tool:
            try:
                reset_text = self.remote_call(self.reset_tool, task.get("reset_arguments", {}))
            except ToolError as e:  # the episode cannot start from a known state
                raise InfraError(f"reset tool {self.reset_tool} failed: {e}") from e
            prompt = prompt.replace("{reset}", reset_text)
        return prompt, {"task_id": task["id"]}

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        name = getattr(self.reward_fn, "__qualname__", repr(self.reward_fn))
        try:
            verdict = self.reward_fn(self.task, answer, self)
        except InfraError:  # the server went away while the verifier read it
            raise
        except Exception as e:  # a bug in the user's verifier: loud, never a 0 or a masked infra failure
            raise EnvCodeError(f"the verifier {name} raised {type(e).__name__}: {e}") from e
        reward, success, extra = _verdict(verdict, name)
        return f"Episode finished. Reward: {reward:g}", reward, True, {**extra, "success": success}

    def expert_action(self) -> str:
        """The task's ``solution``, one call per turn, then its ``answer`` (for the scripted policy)."""
        solution = self.task.get("solution")
        if not solution:
            raise NotImplementedError("this task has no 'solution' to replay")
        steps = [s for s in solution if "name" in s]
        if self.turn < len(steps):
            return format_tool_calls([steps[self.turn]])
        answer = next((s["answer"] for s in solution if "answer" in s), "")
        return f"<answer>{answer}</answer>"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        super().close()


def _verdict(verdict: Any, name: str) -> tuple[float, bool, dict[str, Any]]:
    """(reward, success, extra info) from what a verifier returned."""
    if isinstance(verdict, bool):
        return float(verdict), verdict, {}
    if isinstance(verdict, (int, float)):
        return float(verdict), float(verdict) >= 1.0, {}
    if isinstance(verdict, Mapping) and isinstance(verdict.get("reward"), (int, float)) \
            and isinstance(verdict.get("success"), bool):
        extra = {k: v for k, v in verdict.items() if k not in ("reward", "success")}
        return float(verdict["reward"]), verdict["success"], extra
    raise EnvCodeError(f"the verifier {name} returned {str(verdict)[:200]!r}: expected a number, a bool or "
                       "{'reward': float, 'success': bool}")


class _Forward:
    """A remote tool's ``fn``: ``Tool`` calls it with keyword arguments after validating them."""

    def __init__(self, env: MCPToolEnv, name: str):
        self.env, self.name = env, name

    def __call__(self, **arguments: Any) -> str:
        return self.env.remote_call(self.name, arguments)
