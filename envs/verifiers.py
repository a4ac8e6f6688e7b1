"""Prime Intellect's ``verifiers`` environments as agentgym envs: :func:`load` or the id ``verifiers/<module>-v0``.

A verifiers environment (``vf.SingleTurnEnv``, ``vf.MultiTurnEnv``, ``vf.ToolEnv`` and their
subclasses) brings its dataset, its multi-turn protocol and its rubric; :class:`VerifiersEnv`
plays that protocol one assistant turn per agentgym step, with no model client: verifiers' own
``rollout`` asks a client for each reply, here the reply is the step's action.

* **Tasks.** The rows of the env's dataset (``split="train"``; ``"eval"`` for its eval dataset)
  are the task pool: ``reset(seed)`` plays row ``pool_index(len(rows))``, so consecutive seeds
  cover the rows once each. ``task_id`` is ``<name>-<example_id>``.
* **One step = one assistant turn.** The action becomes the assistant message (for an env with
  tools, the tool calls written in it, in any format :class:`~agentgym.parsers.ToolCallParser`
  reads, become the message's ``tool_calls``), is appended to ``state["trajectory"]`` through the
  env's ``add_trajectory_step``, then the env's stop conditions run (``is_completed``) and, if none
  fired, ``get_prompt_messages`` calls ``env_response``: the new messages are the next observation
  (``role="tool"`` when they are all tool results).
* **Reward.** When a stop condition fires (or agentgym's ``max_turns`` is reached) the env's
  cleanup handlers run and every reward function of its rubric scores the state, weighted as
  verifiers weighs them: that sum is the final step's reward (earlier steps get 0) and
  ``info["metrics"]`` has each function's value. ``info["success"]`` is the env's own pass rule,
  ``reward >= env.pass_threshold`` (verifiers' pass@k threshold, 0.5 by default).
* **Whose fault.** verifiers' ``Rubric`` logs a reward function that raises and scores it 0;
  here it raises :class:`~agentgym.errors.EnvCodeError` (a bug in the env, never a reward of 0),
  as does any other exception from the env's code. A ``vf.InfraError`` (sandbox, tunnel) or a
  network error (an unreachable judge model) is an :class:`~agentgym.core.InfraError`. A ``vf.ToolError`` the env raises on purpose (its
  ``stop_errors``) ends the episode as the agent's fault (``failure="agent"``), scored as usual.
  A rubric with group reward functions (they score a group of rollouts together) is refused
  when the env is built: an agentgym episode is scored alone; so is an env that is not a
  ``MultiTurnEnv`` or overrides its ``rollout`` (its turns would not go through ``env_response``).
* **Cleanup.** The env's cleanup handlers run once per episode: before scoring, or when an
  unfinished episode is left (the next reset, ``close``).

verifiers is async; the env runs its coroutines on an event loop in a thread it owns, so the
sync ``step`` works from any thread. Needs the ``verifiers`` extra (``pip install
'agentgym-rl[verifiers]'``): the classic API (``vf.MultiTurnEnv``, ``env_response``, ``Rubric``)
of verifiers 0.1.x; 0.4 replaced it with tasksets and harnesses (:mod:`agentgym.envs.verifiers_v1`
plays those).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import importlib
import inspect
import json
import math
import signal
import threading
from collections.abc import Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from agentgym.core import Failure, InfraError, StepResult, TextEnv
from agentgym.errors import ConfigError, EnvCodeError
from agentgym.parsers import ToolCallParser, extract_action

if TYPE_CHECKING:
    import verifiers as vf

__all__ = ["VerifiersEnv", "load", "load_environment"]

T = TypeVar("T")
TOOL_PROMPT = (
    "You can call tools. To call one, write <tool_call>{{\"name\": NAME, \"arguments\": {{...}}}}</tool_call> "
    "(several blocks per turn are allowed). Each result comes back in the next message. Reply without a "
    "tool call when you are done.\n\nTools:\n{tools}"
)


def require_verifiers() -> Any:
    """Import verifiers or say which extra installs it."""
    try:
        import verifiers as vf
    except ImportError as e:
        raise ImportError("verifiers environments need the verifiers package: "
                          "pip install 'agentgym-rl[verifiers]'") from e
    return vf


_BUILD_LOCK = threading.Lock()


class _KeepSignalHandlers:
    """Stands in for the ``signal`` module while a verifiers env is built: its constructor installs
    SIGINT/SIGTERM handlers, which raises off the main thread (agentgym builds envs in worker
    threads) and would replace agentgym's own Ctrl-C handling. Its teardown still runs at exit."""

    def __getattr__(self, name: str) -> Any:
        return getattr(signal, name)

    @staticmethod
    def signal(signum: int, handler: Any) -> Any:
        return signal.getsignal(signum)


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    module = importlib.import_module("verifiers.envs.environment")
    with _BUILD_LOCK:  # one build at a time: the stand-in is a module attribute
        if getattr(module, "signal", None) is not signal:
            yield
            return
        module.signal = _KeepSignalHandlers()
        try:
            yield
        finally:
            module.signal = signal


def load_environment(ref: str, env_args: Mapping[str, Any] | None = None) -> vf.Environment:
    """Build a verifiers env from ``"module"`` (calls its ``load_environment(**env_args)``, the
    convention of verifiers' env packages), ``"module:factory"`` or ``"path/to/file.py:factory"``."""
    from agentgym.mcp_env import load_function

    vf = require_verifiers()
    if ":" not in ref:
        ref = f"{ref.replace('-', '_')}:load_environment"
    factory = load_function(ref)
    with _keep_signal_handlers():
        env = factory(**dict(env_args or {}))
    if not isinstance(env, vf.Environment):
        raise TypeError(f"{ref} returned {type(env).__name__}, not a verifiers Environment")
    return env


# Exceptions of network clients (a judge rubric's model, a sandbox API) that mean "not reachable now".
_INFRA_NAMES = frozenset({"APIConnectionError", "APITimeoutError", "RateLimitError", "InternalServerError",
                          "ConnectError", "ConnectTimeout", "ReadTimeout", "ClientConnectionError"})


def _is_infra(e: BaseException, vf: Any) -> bool:
    """Whether an exception from the env's code is infrastructure failing, not a bug."""
    return (isinstance(e, (vf.InfraError, OSError, TimeoutError))
            or any(c.__name__ in _INFRA_NAMES for c in type(e).__mro__))


class _Loop:
    """An event loop in a daemon thread: coroutines submitted from any thread, waited for with a timeout."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentgym-verifiers", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float, what: str) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise InfraError(f"verifiers env: {what} took longer than {timeout:g}s") from None

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def _no_model_client(vf: Any) -> Any:
    """A verifiers ``Client`` that refuses every call: ``init_state`` wants one, and agentgym's
    policy, not verifiers, writes the assistant turns."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise RuntimeError("agentgym plays verifiers envs turn by turn: the model is agentgym's policy")

    abstract = getattr(vf.Client, "__abstractmethods__", ())
    cls = type("AgentGymPolicyClient", (vf.Client,), {name: refuse for name in abstract})
    return cls(None)


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(part, 'type', 'non-text part')}]")
    return "\n".join(parts)


def _field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, Mapping) else getattr(message, name, None)


def _dump(message: Any) -> Any:
    return message.model_dump(exclude_none=True) if hasattr(message, "model_dump") else message


def assistant_message(vf: Any, action: str, parser: ToolCallParser | None, turn: int) -> tuple[Any, dict[str, Any]]:
    """The action as verifiers' assistant message (0.1's and v1's have the same shape), with the
    tool calls written in it when ``parser`` (the env's tools) is given; and the step's info."""
    info: dict[str, Any] = {}
    calls = []
    if parser is not None:
        extracted = extract_action(action)
        parsed = parser.parse(extracted.text) if extracted.error is None else None
        error = extracted.error if parsed is None else parsed.error
        if error is not None:
            info["parse_error"] = str(error)
        elif parsed is not None and parsed.kind == "tool_call":
            calls = [vf.ToolCall(id=f"call_{turn}_{i}", name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False))
                     for i, c in enumerate(parsed.tool_calls)]
    info["void"] = not calls and not action.strip()
    return vf.AssistantMessage(content=action, tool_calls=calls or None), info


class VerifiersEnv(TextEnv):
    """A verifiers ``Environment`` played one assistant turn per step (see the module docstring).

    ``environment``: the env object, or a reference :func:`load_environment` builds with
    ``env_args`` (a string keeps the spec plain data, so ``agentgym rollout`` workers can rebuild
    it). ``split``: ``"train"`` (the env's dataset) or ``"eval"`` (its eval dataset). ``timeout``:
    seconds one call into the env (setup, env_response, scoring) may take before it counts as
    infrastructure failure. ``max_turns`` defaults to the env's own (None when it has none).
    """

    def __init__(
        self,
        environment: vf.Environment | str,
        *,
        env_args: Mapping[str, Any] | None = None,
        split: str = "train",
        timeout: float = 120.0,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        vf = require_verifiers()
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if isinstance(environment, str):
            name = environment.rpartition(":")[0] or environment
            name = name.rpartition("/")[2].removesuffix(".py")  # a file's name, not its path: task ids travel
            environment = load_environment(environment, env_args)
        elif env_args:
            raise ValueError("env_args are for an environment given by reference, not an env object")
        elif not isinstance(environment, vf.Environment):
            raise TypeError(f"expected a verifiers Environment or a reference to one, got {type(environment).__name__}")
        else:
            name = environment.env_id or type(environment).__name__
        self.name = name
        if not isinstance(environment, vf.MultiTurnEnv) or type(environment).rollout is not vf.MultiTurnEnv.rollout:
            raise ConfigError(f"{name}: a {type(environment).__name__} does not play its turns through env_response "
                              "(only MultiTurnEnv subclasses that keep its rollout loop run turn by turn)")
        if environment.rubric.has_group_rewards:
            raise ConfigError(f"{self.name}: its rubric has group reward functions (they score a group of "
                              "rollouts together); an agentgym episode is scored alone")
        own_limit = getattr(environment, "max_turns", -1)
        if max_turns is None and isinstance(own_limit, int) and own_limit > 0:
            max_turns = own_limit
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.vf = vf
        self.environment = environment
        self.timeout = timeout
        rows = environment.get_dataset() if split == "train" else environment.get_eval_dataset()
        self.rows = rows
        self.num_tasks = len(rows)
        if not self.num_tasks:
            raise ValueError(f"{self.name}: the {split} dataset has no rows")
        self._loop = _Loop()
        self._client = _no_model_client(vf)
        tools = [_dump(t) for t in environment.tool_defs or []]
        self._tool_defs = tools
        self._parser = ToolCallParser(ignore_think=False, answer_tag=None, answer_key=None,
                                      schemas={t["name"]: t.get("parameters", {}) for t in tools})
        listing = "\n".join(json.dumps(t, ensure_ascii=False, sort_keys=True) for t in tools)
        parts = [environment.system_prompt, TOOL_PROMPT.format(tools=listing) if tools else None]
        self.system_prompt = "\n\n".join(p for p in parts if p) or None
        self.state: Any = None
        self._messages: list[Any] = []  # the conversation so far (the prompt, without a leading system message)

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, coro: Awaitable[T], what: str) -> T:
        """Run one of the env's coroutines; its exceptions become agentgym's typed errors."""
        try:
            return self._loop.run(coro, self.timeout, what)
        except (InfraError, EnvCodeError):
            raise
        except Exception as e:  # noqa: BLE001 — infrastructure, else a bug in the env's code (not the agent's)
            if _is_infra(e, self.vf):
                raise InfraError(f"{self.name}: {what}: {type(e).__name__}: {e}") from e
            raise EnvCodeError(f"{self.name}: {what} raised {type(e).__name__}: {e}") from e

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The env's tools in OpenAI format: what a policy sends as ``tools=[...]``."""
        return [{"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
                for t in self._tool_defs]

    def _render(self, messages: list[Any]) -> str:
        """Messages as one observation: a lone message's text, else one labelled block each."""
        if len(messages) == 1:
            return _text(_field(messages[0], "content"))
        return "\n\n".join(f"[{_field(m, 'role')}] {_text(_field(m, 'content'))}" for m in messages)

    def _state_key(self) -> str:
        text = json.dumps([_dump(m) for m in self._messages], sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    # -- the contract --------------------------------------------------------------------------
    def _release(self) -> None:
        """Run the env's cleanup handlers for an episode left unfinished (a reset mid-episode, close,
        the engine's token budget): they free what ``setup_state`` took, e.g. a sandbox."""
        state, self.state = self.state, None
        if state is not None:
            self._call(self.environment.cleanup(state), "cleanup")

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._release()
        index = self.pool_index(self.num_tasks)
        row = dict(self.rows[index])
        row.setdefault("example_id", index)
        state = self._call(self.environment.init_state(row, self._client, "agentgym-policy", None), "init_state")
        self.state = state
        error = None
        try:
            self._call(self.environment.setup_state(state), "setup_state")
        except EnvCodeError as e:
            if not isinstance(e.__cause__, self.vf.Error):
                raise
            error = e  # verifiers records an env's own error in the state and stops at once
        if error is not None or self._call(self.environment.is_completed(state), "is_completed"):
            self._release()
            raise EnvCodeError(f"{self.name}: the rollout ended before the first turn "
                               f"({state.get('stop_condition')}: {state.get('error') or error})")
        prompt = list(state["prompt"])
        if prompt and _field(prompt[0], "role") == "system":
            prompt = prompt[1:]  # the env's system prompt: agentgym sends it as the chat's system message
        self._messages = list(state["prompt"])
        task_id = f"{self.name}-{row['example_id']}"
        return self._render(prompt), {"task_id": task_id, "state_key": self._state_key(), "example_id": row["example_id"]}

    def _step(self, action: str) -> StepResult:
        state = self.state
        message, info = assistant_message(self.vf, action, self._parser if self._tool_defs else None, self.turn)
        step = {"prompt": list(self._messages), "completion": [message], "response": None, "tokens": None,
                "reward": None, "advantage": None, "is_truncated": False,
                "trajectory_id": state["trajectory_id"], "extras": {}}
        self._call(self.environment.add_trajectory_step(state, step), "add_trajectory_step")
        self._messages.append(message)
        new: list[Any] = []
        completed = self._call(self.environment.is_completed(state), "is_completed")
        if not completed and not (self.max_turns is not None and self.turn >= self.max_turns):
            try:
                prompt = self._call(self.environment.get_prompt_messages(state), "env_response")
            except EnvCodeError as e:
                if not isinstance(e.__cause__, self.vf.Error):
                    raise
                state["error"] = e.__cause__  # as verifiers' rollout loop does: has_error stops it next
            else:
                new = list(prompt)[len(self._messages):]
                self._messages = list(prompt)
            completed = self._call(self.environment.is_completed(state), "is_completed")
        if isinstance(state.get("error"), self.vf.ToolError):
            info.update(failure=Failure.AGENT, failure_detail=f"{type(state['error']).__name__}: {state['error']}")
        elif state.get("error") is not None:
            raise EnvCodeError(f"{self.name}: the env stopped on its own error: {state['error']!r}")
        tool_results = {_field(m, "tool_call_id"): _text(_field(m, "content")) for m in new
                        if _field(m, "role") == "tool"}
        if message.tool_calls:
            info["tool_calls"] = [{"name": c.name, "arguments": json.loads(c.arguments),
                                   **({"result": tool_results[c.id]} if c.id in tool_results else {})}
                                  for c in message.tool_calls]
        info["role"] = "tool" if new and all(_field(m, "role") == "tool" for m in new) else "user"
        if not completed and not (self.max_turns is not None and self.turn >= self.max_turns):
            info["state_key"] = self._state_key()
            return self._render(new), 0.0, False, False, info
        return self._finish(info)

    def _finish(self, info: dict[str, Any]) -> StepResult:
        state, self.state = self.state, None  # finished: no cleanup left for _release
        final = state.get("final_env_response")
        self._call(self.environment.cleanup(state), "cleanup")  # renders state["completion"]
        reward, metrics = self._score(state)
        self._call(self.environment.rubric.cleanup(state), "rubric cleanup")
        stop = state.get("stop_condition")
        success = reward >= self.environment.pass_threshold and info.get("failure") is None
        # a SingleTurnEnv's limit of one turn is its design, not a cut
        cut = stop == "max_turns_reached" and not isinstance(self.environment, self.vf.SingleTurnEnv)
        truncated = stop is None or cut or bool(state.get("is_truncated"))
        text = self._render(list(final)) if final else f"The episode is over ({stop or 'turn limit'})."
        info.update(state_key=f"end|{self._state_key()}", success=success, metrics=metrics, stop_condition=stop)
        return text, reward, not truncated, truncated, info

    def _score(self, state: Any) -> tuple[float, dict[str, float]]:
        """Every reward function of the rubric on ``state``, called as verifiers calls them but
        raising instead of scoring an exception 0: (weighted sum, each function's value)."""
        metrics: dict[str, float] = {}
        total = 0.0
        pending = [self.environment.rubric]
        while pending:
            rubric = pending.pop(0)
            if hasattr(rubric, "rubrics"):  # a RubricGroup: its rubrics' rewards add up
                pending[:0] = list(rubric.rubrics)
                continue
            objects = rubric.score_objects(state)
            for func, weight in zip(rubric.funcs, rubric.weights, strict=True):
                name = getattr(func, "__name__", repr(func))
                params = inspect.signature(func).parameters
                takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
                kwargs = objects if takes_all else {k: v for k, v in objects.items() if k in params}
                try:
                    value = func(**kwargs)
                    if inspect.isawaitable(value):
                        value = self._loop.run(value, self.timeout, f"reward function {name}")
                    value = float(value)
                except InfraError:
                    raise
                except Exception as e:  # noqa: BLE001 — the env's reward code is broken: loud, never 0
                    if _is_infra(e, self.vf):  # e.g. a judge model that cannot be reached
                        raise InfraError(f"{self.name}: reward function {name}: {type(e).__name__}: {e}") from e
                    raise EnvCodeError(f"{self.name}: reward function {name} raised {type(e).__name__}: {e}") from e
                if not math.isfinite(value):
                    raise EnvCodeError(f"{self.name}: reward function {name} returned {value}")
                metrics[name] = metrics.get(name, 0.0) + value
                total += weight * value
        state["reward"], state["metrics"] = total, metrics
        return total, metrics

    def close(self) -> None:
        try:
            self._release()
        finally:
            self._loop.close()
            super().close()


def load(environment: vf.Environment | str, **kwargs: Any) -> VerifiersEnv:
    """A verifiers env (object or reference) as an agentgym env; ``kwargs`` as :class:`VerifiersEnv`'s."""
    return VerifiersEnv(environment, **kwargs)
