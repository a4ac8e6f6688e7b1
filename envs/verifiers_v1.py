"""verifiers 0.4 ``verifiers.v1`` environments as agentgym envs: :class:`VerifiersV1Env` or the id
``verifiers-v1/<taskset module>-v0``.

A v1 environment is a taskset (``Taskset.load()`` yields typed ``Task``\\ s: prompt, setup, tool
servers, ``@vf.reward``/``@vf.metric`` scoring, ``@vf.stop``\\ s) played by a harness (the agent
program: ``null``, ``bash``, ... or the taskset module's own). verifiers runs it for real here:
its ``Agent`` opens a ``Rollout`` (runtime, task setup, interception server, tool servers), the
harness runs, and every model call the harness makes reaches the interception server, whose
model client is agentgym's: that client hands the request out as the observation and answers
with the step's action. So one agentgym step is one model turn, whatever the harness does
between turns (run tools, compact), and scoring, stops and limits are verifiers' own.

* **Tasks.** The taskset's tasks (a bounded taskset: read once when the env is built) are the
  pool: ``reset(seed)`` plays task ``pool_index(len(tasks))``. ``task_id`` is
  ``<taskset>-<idx>`` (the task's ``id`` when it has one).
* **Observations.** The first is the request's conversation without its system message (that,
  with a listing of the request's tools, is ``env.system_prompt``); later ones are the messages
  the harness added since the last reply (``role="tool"`` when they are all tool results).
* **Actions.** The action is the assistant message; when the request offers tools, the tool
  calls written in it (any format :class:`~agentgym.parsers.ToolCallParser` reads) become the
  message's ``tool_calls``, which the harness executes.
* **Reward.** When the rollout ends (the harness stops asking, a ``@stop`` or ``max_turns``
  refuses a turn), verifiers scores the trace: ``trace.reward`` (weighted ``@reward``\\ s and
  judges) is the last step's reward, ``info["metrics"]`` its rewards and metrics.
  ``info["success"]`` is ``reward >= pass_threshold`` (default 1.0: v1 has no pass rule of its
  own; 1.0 is the "solved" threshold of its best-of-n env).
* **Whose fault.** A rollout error verifiers records on the trace raises here: the task's
  or harness's code (``TaskError``, ``HarnessError``, ``ToolsetError``, scoring that raises) is
  an :class:`~agentgym.errors.EnvCodeError`, never a reward of 0; the runtime, tunnel or
  interception failing is an :class:`~agentgym.core.InfraError`.

Supported: harnesses that speak the OpenAI chat-completions dialect (tested: verifiers' ``null``
harness, with an MCP toolset, and an in-process harness; ``bash`` speaks it too); the subprocess
runtime (default; the only one tested) or a ``runtime`` config the harness needs. Not supported: multi-agent envs (``Env`` subclasses other than the single-agent one),
user-simulated exchanges (``agent.interaction``), the Responses and Anthropic dialects, group
scoring across rollouts. Needs the ``verifiers-v1`` extra (``pip install
'agentgym-rl[verifiers-v1]'``), in a venv without the ``verifiers`` (0.1) or ``mcp`` extras.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from agentgym.core import InfraError, StepResult, TextEnv
from agentgym.envs.verifiers import TOOL_PROMPT, _Loop, _text, assistant_message
from agentgym.errors import ConfigError, EnvCodeError
from agentgym.parsers import ToolCallParser

__all__ = ["VerifiersV1Env", "load"]

# verifiers' rollout errors that are infrastructure failing (retry elsewhere), by type name as the
# trace records them; every other recorded error is the env's code failing.
_INFRA_ERRORS = frozenset({"SandboxError", "InterceptionError", "TunnelError", "ProviderError",
                           "TimeoutError", "OSError", "ConnectionError"})


def require_verifiers_v1() -> Any:
    """Import ``verifiers.v1`` or say which extra installs it."""
    try:
        import verifiers.v1 as vf
    except ImportError as e:
        raise ImportError("verifiers v1 environments need verifiers 0.4: "
                          "pip install 'agentgym-rl[verifiers-v1]'") from e
    return vf


def _policy_interception(vf: Any, env: VerifiersV1Env, runtime: Any) -> Any:
    """An interception server whose model client is ``env``: each model call the harness makes
    is handed to the agentgym policy and answered with its action. Tunnelled, as verifiers' own
    agent sizes it, when ``runtime`` is remote."""
    from verifiers.v1.clients.train import serialize_completion
    from verifiers.v1.dialects.chat import ChatDialect
    from verifiers.v1.interception import InterceptionServer
    from verifiers.v1.runtimes import runtime_is_local

    class PolicyClient(vf.Client):
        async def get_response(self, dialect: Any, body: dict, sampling: Any, session_id: str | None = None,
                               turn: Any = None, headers: Any = None) -> Any:
            if not isinstance(dialect, ChatDialect):
                env._refused = ConfigError(f"{env.name}: the harness speaks the {type(dialect).__name__}; "
                                           "agentgym plays verifiers v1 harnesses over chat completions only")
                raise vf.ProviderError(str(env._refused), status_code=400)
            message = await env._turn(dialect.parse_request(body))
            response = vf.Response(id=f"agentgym-{env.turn}", created=int(time.time()), model=str(body.get("model")),
                                   message=message, finish_reason="tool_calls" if message.tool_calls else "stop")
            response.raw = serialize_completion(response, response.model)
            return response

    client = PolicyClient()

    class PolicyInterception(InterceptionServer):
        def _client(self, config: Any) -> Any:
            return client

    return PolicyInterception(requires_tunnel=not runtime_is_local(runtime))


class VerifiersV1Env(TextEnv):
    """A verifiers v1 taskset + harness played one model turn per step (see the module docstring).

    ``taskset``: a ``vf.Taskset`` or a taskset id (an importable module exporting one, built with
    ``taskset_args``). ``harness``: a harness id or ``vf.HarnessConfig``; by default the taskset
    module's own harness, else ``null`` (a mapping: the config's fields, ``id`` included). ``runtime``: a ``vf.RuntimeConfig`` (default
    subprocess). ``timeout``: seconds the env may take between two model turns (setup, tools,
    scoring) before it counts as infrastructure failure. ``max_turns`` also caps verifiers'
    rollout (its ``max_turns`` limit).
    """

    def __init__(
        self,
        taskset: Any,
        *,
        taskset_args: Mapping[str, Any] | None = None,
        harness: Any = None,
        runtime: Any = None,
        pass_threshold: float = 1.0,
        timeout: float = 300.0,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        vf = require_verifiers_v1()
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if isinstance(taskset, str):
            config = vf.taskset_config_type(taskset)(id=taskset, **dict(taskset_args or {}))
            taskset_id, taskset = taskset, vf.load_taskset(config)
        elif taskset_args:
            raise ValueError("taskset_args are for a taskset given by id, not a Taskset object")
        elif not isinstance(taskset, vf.Taskset):
            raise TypeError(f"expected a verifiers v1 Taskset or a taskset id, got {type(taskset).__name__}")
        else:
            taskset_id = taskset.config.id or type(taskset).__name__
        if not taskset.bounded:
            raise ConfigError(f"{taskset_id}: an infinite taskset; bound it first (taskset.take(n))")
        self.vf = vf
        self.name = taskset_id.rpartition("/")[2] or type(taskset).__name__
        self.tasks = list(taskset)
        self.num_tasks = len(self.tasks)
        if not self.num_tasks:
            raise ValueError(f"{self.name}: the taskset has no tasks")
        if harness is None:
            own = vf.default_harness_id(taskset_id) if taskset.config.id else "bash"
            harness = own if own != "bash" else "null"
        if isinstance(harness, str):
            harness = {"id": harness}
        if isinstance(harness, Mapping):  # plain data, as a spec's kwargs carry it
            harness = vf.harness_config_type(harness["id"])(**harness)
        self.pass_threshold = pass_threshold
        self.timeout = timeout
        self._loop = _Loop()
        runtime = runtime or vf.SubprocessConfig()
        self._agent = vf.Agent(
            # a train client's config: the interception then serves a streaming request from
            # get_response (as it does for a renderer) instead of relaying a provider's stream
            vf.AgentConfig(model="agentgym-policy", harness=harness, runtime=runtime,
                           client=vf.TrainClientConfig(), max_turns=max_turns, network_notice=False),
            interception=_policy_interception(vf, self, runtime))
        self._server = self._agent.interception
        self._loop.run(self._server.__aenter__(), timeout, "starting the interception server")
        self._episode: asyncio.Task | None = None  # the running rollout, on the loop
        self._event: concurrent.futures.Future = concurrent.futures.Future()  # its next turn or end
        self._reply: asyncio.Future | None = None  # the turn waiting for the action
        self._refused: ConfigError | None = None
        self._seen = 0  # messages of the conversation the policy has seen (its replies included)
        self._tool_defs: list[dict[str, Any]] = []
        self._parser: ToolCallParser | None = None
        self._key = ""

    # -- the loop side: verifiers' rollout calls these -------------------------------------------------
    async def _turn(self, request: Any) -> Any:
        """One model call of the harness: hand the request out, wait for the action's message."""
        reply = asyncio.get_running_loop().create_future()
        self._reply = reply
        self._event.set_result(("turn", request))
        return await reply

    async def _start(self, task: Any) -> asyncio.Task:
        return asyncio.create_task(self._play(task))

    async def _play(self, task: Any) -> Any:
        try:
            trace = await self._agent.run(task)
        except BaseException as e:
            if not self._event.done():
                self._event.set_exception(e)
            raise
        if not self._event.done():
            self._event.set_result(("end", trace))
        return trace

    # -- the sync side ----------------------------------------------------------------------------------
    def _wait(self, what: str) -> tuple[str, Any]:
        try:
            return self._event.result(self.timeout)
        except concurrent.futures.TimeoutError:
            self._release()
            raise InfraError(f"{self.name}: {what} took longer than {self.timeout:g}s") from None
        except Exception as e:  # noqa: BLE001 — verifiers raised past its own error capture: the env's code
            self._episode = None
            raise EnvCodeError(f"{self.name}: {what} raised {type(e).__name__}: {e}") from e

    def _release(self) -> None:
        """Cancel a rollout left unfinished and wait for verifiers to abort it (harness, tool
        servers, runtime freed)."""
        episode, self._episode = self._episode, None
        if episode is not None and not episode.done():
            self._loop.loop.call_soon_threadsafe(episode.cancel)
            self._loop.run(asyncio.wait({episode}), 60, "aborting the unfinished rollout")

    def _render(self, messages: list[Any]) -> str:
        if len(messages) == 1:
            return _text(messages[0].content)
        return "\n\n".join(f"[{m.role}] {_text(m.content)}" for m in messages)

    def _state_key(self, messages: list[Any]) -> str:
        text = json.dumps([m.model_dump(mode="json", exclude_none=True) for m in messages], sort_keys=True)
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def _tools(self, request: Any) -> None:
        """The request's tools: the parser for the action's calls and the system prompt's listing."""
        tools = [t.model_dump(mode="json", exclude_none=True) for t in request.tools or []]
        schemas = {t["name"]: t.get("parameters", {}) for t in tools}
        self._parser = (ToolCallParser(ignore_think=False, answer_tag=None, answer_key=None, schemas=schemas)
                        if tools else None)
        self._tool_defs = tools

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The current request's tools in OpenAI format: what a policy sends as ``tools=[...]``."""
        return [{"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
                for t in self._tool_defs]

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._release()
        task = self.tasks[self.pool_index(self.num_tasks)]
        self._refused = None
        self._event = concurrent.futures.Future()
        self._episode = self._loop.run(self._start(task), self.timeout, "starting the rollout")
        kind, payload = self._wait("setting up the rollout")
        task_id = f"{self.name}-{task.data.id if task.data.id is not None else task.data.idx}"
        if kind == "end":
            self._episode = None
            self._raise_for(payload)
            raise EnvCodeError(f"{self.name}: the rollout of {task_id} ended before the first model turn "
                               f"({payload.stop_condition})")
        messages = list(payload.messages)
        system = [_text(m.content) for m in messages if m.role == "system"]
        self._tools(payload)
        listing = "\n".join(json.dumps(t, ensure_ascii=False, sort_keys=True) for t in self._tool_defs)
        parts = [*system, TOOL_PROMPT.format(tools=listing) if self._tool_defs else None]
        self.system_prompt = "\n\n".join(p for p in parts if p) or None
        self._seen = len(messages)
        self._key = self._state_key(messages)
        shown = [m for m in messages if m.role != "system"]
        return self._render(shown), {"task_id": task_id, "state_key": self._key, "task_idx": task.data.idx}

    def _step(self, action: str) -> StepResult:
        if self._episode is None or self._reply is None:
            raise EnvCodeError(f"{self.name}: step() without a running rollout")
        message, info = assistant_message(self.vf, action, self._parser, self.turn)
        reply, self._reply = self._reply, None
        self._event = concurrent.futures.Future()
        self._loop.loop.call_soon_threadsafe(reply.set_result, message)
        kind, payload = self._wait("the env's turn")
        if message.tool_calls:
            info["tool_calls"] = [{"name": c.name, "arguments": json.loads(c.arguments)} for c in message.tool_calls]
        if kind == "end":
            self._episode = None
            return self._finish(payload, info)
        messages = list(payload.messages)
        new = messages[self._seen + 1:] if len(messages) > self._seen + 1 else messages[-1:]
        self._seen = len(messages)
        self._tools(payload)
        results = {m.tool_call_id: _text(m.content) for m in new if m.role == "tool"}
        for call, shown in zip(message.tool_calls or [], info.get("tool_calls", []), strict=True):
            if call.id in results:
                shown["result"] = results[call.id]
        info["role"] = "tool" if new and all(m.role == "tool" for m in new) else "user"
        self._key = self._state_key(messages)
        info["state_key"] = self._key
        return self._render(new), 0.0, False, False, info

    def _raise_for(self, trace: Any) -> None:
        """The trace's recorded failure as agentgym's typed error."""
        if self._refused is not None:
            raise self._refused
        if trace.ok or trace.last_error is None:
            return
        error = trace.last_error
        detail = f"{self.name}: {error.type}: {error.message}"
        if error.type in _INFRA_ERRORS:
            raise InfraError(detail)
        raise EnvCodeError(detail)

    def _finish(self, trace: Any, info: dict[str, Any]) -> StepResult:
        self._raise_for(trace)
        reward = float(trace.reward)
        metrics = {**{k: v for k, v in trace.metrics.items() if v is not None},
                   **{k: r.score for k, r in trace.rewards.items() if r is not None}}
        stop = trace.stop_condition
        truncated = bool(trace.is_timeout or trace.is_truncated)
        info.update(success=reward >= self.pass_threshold, metrics=metrics, stop_condition=stop,
                    state_key=f"end|{self._key}")
        return f"The episode is over ({stop}).", reward, not truncated, truncated, info

    def close(self) -> None:
        try:
            self._release()
            if not self._loop.loop.is_closed():
                self._loop.run(self._server.__aexit__(None, None, None), 30, "stopping the interception server")
        finally:
            self._loop.close()
            super().close()


def load(taskset: Any, **kwargs: Any) -> VerifiersV1Env:
    """A verifiers v1 taskset (object or id) as an agentgym env; ``kwargs`` as :class:`VerifiersV1Env`'s."""
    return VerifiersV1Env(taskset, **kwargs)
