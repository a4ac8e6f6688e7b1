"""The env contract: a ``gymnasium.Env`` whose observations and actions are strings.

Subclasses implement :meth:`TextEnv._reset` and :meth:`TextEnv._step`; the public
``reset``/``step`` wrap them so every env gets the same guarantees for free:

* seeding through Gymnasium (``self.np_random``), so the same seed picks the same task and
  initial state (groups of rollouts depend on it);
* turn counting and ``max_turns`` truncation;
* the documented ``info`` keys always present (see :data:`INFO_DEFAULTS`), and ``info["success"]``
  a bool on the step that ends the episode (the env's own verdict; see :meth:`TextEnv.step`);
* finite task pools covered without repeats by consecutive seeds (:meth:`TextEnv.pool_index`);
* a non-string action becomes a readable parse-error observation, never a crash.

Async twins ``areset``/``astep`` run the sync methods in a worker thread unless the env says
it steps in microseconds (``threaded_async = False``), where a thread hop would cost more than
the step.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import string
from enum import Enum
from typing import Any, ClassVar

import gymnasium
from gymnasium import spaces

from agentgym.errors import InfraError

__all__ = [
    "INFO_DEFAULTS",
    "Failure",
    "InfraError",
    "StepResult",
    "Text",
    "TextEnv",
    "TruncationReason",
]


class _StrEnum(str, Enum):
    """Compares, hashes, prints and serialises (JSON) as its plain string value."""

    def __str__(self) -> str:
        return str.__str__(self)

    __format__ = str.__format__


class Failure(_StrEnum):
    """Why a trajectory failed (``Trajectory.failure``, ``info["failure"]``). Infra failures are
    masked in training, never scored as 0; errors are never scored either, and stop training and
    make ``agentgym rollout`` exit non-zero."""

    INFRA = "infra"  # infrastructure: sandbox, server, timeout, a broken env
    AGENT = "agent"  # the env ended the episode for the agent's own fault
    ERROR = "error"  # a bug in the env's or its user's code (EnvCodeError, e.g. a verifier raised): loud


class TruncationReason(_StrEnum):
    """Why an episode was cut short (``Trajectory.truncation_reason``)."""

    MAX_TURNS = "max_turns"  # the env's turn limit
    ENV = "env"  # the env truncated on its own
    TOKEN_BUDGET = "token_budget"  # the rollout's max_tokens budget
    CONTEXT_LENGTH = "context_length"  # the conversation no longer fits the model (ContextLengthExceeded)


# The info keys every env returns from reset() and step(); defaults fill what an env omits.
INFO_DEFAULTS: dict[str, Any] = {
    "state_key": None,  # GiGPO anchor, "the same decision situation"; compared by content (canonical_key)
    "parse_error": None,  # str: why the action could not be parsed (the agent reads it in obs)
    "void": False,  # no tool call and no final answer (SimpleTIR)
    "failure": None,  # None | Failure.INFRA | Failure.AGENT
    "tool_calls": (),  # parsed tool calls of this action: [{"name": ..., "arguments": {...}}]
    "answer": None,  # the final answer extracted from the action, if any
    "role": "user",  # role of the observation in a chat: "user" or "tool"
    "success": None,  # bool on the step that ends the episode: did it reach the env's goal? None before
}

log = logging.getLogger("agentgym")
_WARNED_NO_SUCCESS: set[str] = set()

StepResult = tuple[str, float, bool, bool, dict[str, Any]]


def permute(index: int, size: int, key: bytes = b"agentgym-pool") -> int:
    """A fixed pseudo-random permutation of ``range(size)``, O(1) memory: a 4-round Feistel
    network over the smallest even number of bits that holds ``size``, cycle-walked back into
    range (each walk is a bijection, so the whole is one)."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in range({size})")
    if size == 1:
        return 0
    half = max(1, ((size - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    value = index
    while True:
        left, right = value >> half, value & mask
        for round_ in range(4):
            digest = hashlib.blake2b(f"{size}:{round_}:{right}".encode(), key=key, digest_size=8).digest()
            left, right = right, left ^ (int.from_bytes(digest, "big") & mask)
        value = (left << half) | right
        if value < size:
            return value


class Text(spaces.Text):
    """A Text space that contains any string up to ``max_length`` characters.

    Gymnasium's ``Text`` only contains strings over its charset; model text is arbitrary
    Unicode, so membership here checks type and length only. Sampling stays over printable
    ASCII, which is what ``check_env`` and random policies need.
    """

    def __init__(self, max_length: int = 1 << 16, *, min_length: int = 0, seed: int | None = None):
        super().__init__(
            max_length=max_length, min_length=min_length, charset=string.printable, seed=seed
        )

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"Text({self.min_length}, {self.max_length}, any unicode)"


class TextEnv(gymnasium.Env[str, str]):
    """Base class of every agentgym environment (text in, text out).

    Subclasses set ``system_prompt`` (optional) and implement ``_reset`` and ``_step``.
    They may implement ``expert_action()`` (used by the scripted policy) and
    ``legal_actions()`` (used by the random policy).

    ``stop_sequences``: generation of an action should stop right after the first of these
    strings, which stays in the action (e.g. the closing fence of the code block a tool env
    runs, so the model is not trained on text the env ignores). Policies that can stop pass
    them to their backend; an env must still accept actions that run past them.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    system_prompt: str | None = None
    stop_sequences: tuple[str, ...] = ()
    threaded_async: ClassVar[bool] = True
    num_tasks: int | None = None
    """Size of the env's finite task pool (``agentgym rollout --all-tasks`` plays each once), or
    None for an env that makes its tasks (procedural: every seed is a new task)."""

    def __init__(self, *, max_turns: int | None = None, render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_turns = max_turns
        self.observation_space = Text()
        self.action_space = Text()
        self.turn = 0
        self.done = True
        self.last_observation = ""
        self.episode_return = 0.0
        self.task_seed: int | None = None

    # -- to implement ---------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Pick a task with ``self.np_random`` (or ``options["task"]``); return (obs, info)."""
        raise NotImplementedError

    def _step(self, action: str) -> StepResult:
        """Apply one action; return (obs, reward, terminated, truncated, info)."""
        raise NotImplementedError

    # -- the contract -------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.task_seed = seed
        elif self.task_seed is not None:  # unseeded resets carry on through the pool
            self.task_seed += 1
        else:
            self.task_seed = int(self.np_random.integers(1 << 62))
        self.turn = 0
        self.done = False
        self.episode_return = 0.0
        obs, info = self._reset(dict(options or {}))
        self.last_observation = obs
        return obs, {**INFO_DEFAULTS, **info}

    def step(self, action: str) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        self.turn += 1
        if not isinstance(action, str):
            error = f"action must be a string, got {type(action).__name__}"
            obs, reward, terminated, truncated, info = (
                f"Invalid action: {error}.", 0.0, False, False, {"parse_error": error}
            )
        else:
            obs, reward, terminated, truncated, info = self._step(action)
        if not terminated and self.max_turns is not None and self.turn >= self.max_turns:
            truncated = True
        self.done = terminated or truncated
        self.last_observation = obs
        self.episode_return += float(reward)
        info = {**INFO_DEFAULTS, **info}
        if self.done:
            info["success"] = self._success(info.get("success"), bool(terminated))
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _success(self, said: Any, terminated: bool) -> bool:
        """The final step's ``info["success"]``: what the env said; an env that says nothing gets
        the old rule (ended by the env with a positive return), with a warning once per class."""
        if said is not None:
            return bool(said)
        if terminated:
            name = type(self).__qualname__
            if name not in _WARNED_NO_SUCCESS:
                _WARNED_NO_SUCCESS.add(name)
                log.warning("%s does not set info['success'] on its final step: success is taken to be a "
                            "positive return (set it to what your env counts as success)", name)
        return terminated and self.episode_return > 0

    def pool_index(self, size: int) -> int:
        """The index in ``[0, size)`` of this episode's task in a finite pool of ``size`` tasks.

        Seed ``s`` plays task ``perm[s mod size]`` for one fixed pseudo-random permutation
        ``perm`` of the pool (keyed by its size), so ``reset(seed=s)`` is deterministic, any
        ``size`` consecutive seeds play every task exactly once (drawing with replacement
        played 55 of 100 games for 100 seeds), and the pool is not played in file order. An
        unseeded reset continues from the last seed. Call it from ``_reset``.
        """
        if size < 1:
            raise ValueError("a task pool needs at least one task")
        assert self.task_seed is not None, "pool_index() is for _reset(), after reset() took the seed"
        return permute(self.task_seed % size, size)

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        if not self.threaded_async:
            return self.reset(seed=seed, options=options)
        return await asyncio.to_thread(self.reset, seed=seed, options=options)

    async def astep(self, action: str) -> StepResult:
        if not self.threaded_async:
            return self.step(action)
        return await asyncio.to_thread(self.step, action)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def render(self) -> str | None:
        return self.last_observation if self.render_mode == "ansi" else None
