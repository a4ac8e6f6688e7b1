"""The policy contract: chat messages in, a completion (text, optionally tokens) out."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgym.errors import ContextLengthExceeded

if TYPE_CHECKING:
    from agentgym.core import TextEnv

__all__ = ["Completion", "ContextLengthExceeded", "Episode", "Message", "Policy", "current_episode", "episode_rng",
           "running_episode", "turn_messages"]

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant" | "tool", "content": str}


@dataclass
class Completion:
    """What a policy produced for one turn.

    ``token_ids`` and ``logprobs`` are the sampled completion tokens and their log-probs when the
    backend returns them (vLLM does); ``prompt_token_ids`` is the full prompt as the server
    tokenised it. ``num_tokens`` counts completion tokens for token budgets (from the server's
    usage, else ``len(token_ids)``, else ``None``).

    ``message``: the assistant message to keep in the chat history instead of
    ``{"role": "assistant", "content": text}``, when the backend answered with structured
    OpenAI ``tool_calls`` (``text`` then holds those calls as Hermes text, which the env parses).
    """

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None
    finish_reason: str | None = None
    num_tokens: int | None = None
    message: Message | None = None


@dataclass(frozen=True)
class Episode:
    """Which episode a policy call belongs to: its task seed, its member of the task's group and
    the task's position in the run (``task``: a trainer cycling a small task pool runs one seed
    several times, and each run must explore differently).

    The rollout engine sets it (a context variable, so each concurrent episode sees its own) for
    the duration of an episode; seeded policies derive their randomness from it, which makes a
    run reproducible whatever the concurrency or the order in which episodes happen to finish."""

    seed: int
    member: int
    task: int = 0
    traj_id: str = ""  # unique per episode of a run (an env may key per-episode randomness on it)


_EPISODE: contextvars.ContextVar[Episode | None] = contextvars.ContextVar("agentgym_episode", default=None)


@contextlib.contextmanager
def running_episode(episode: Episode) -> Iterator[None]:
    """Make ``episode`` the :func:`current_episode` of this task or thread until the block ends."""
    token = _EPISODE.set(episode)
    try:
        yield
    finally:
        _EPISODE.reset(token)


def current_episode() -> Episode | None:
    """The episode being run in this task or thread (``None`` outside the rollout engine)."""
    return _EPISODE.get()


def episode_rng(seed: int | None, messages: list[Message], fallback: random.Random) -> random.Random:
    """The RNG for one policy call: derived from ``seed``, the current episode and its turn (the
    number of assistant messages so far) when all are known, else ``fallback`` (one shared stream,
    reproducible only for a fixed order of calls)."""
    episode = current_episode()
    if seed is None or episode is None:
        return fallback
    turn = sum(m.get("role") == "assistant" for m in messages)
    return random.Random(f"{seed}/{episode.seed}/{episode.task}/{episode.member}/{turn}")  # str seeds hash with SHA-512


class Policy:
    """Base class: implement ``act``; ``act_sync`` and ``aclose`` come for free.

    ``env`` is the live environment; text policies ignore it, the scripted and random policies
    ask it for ``expert_action()`` / ``legal_actions()``.
    """

    name: str = "policy"

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        raise NotImplementedError

    def act_sync(self, messages: list[Message], env: TextEnv) -> Completion:
        return asyncio.run(self.act(messages, env))

    async def aclose(self) -> None:
        """Release connections; idempotent."""


def turn_messages(completion: Completion, observation: str, info: dict[str, Any], env: Any = None) -> list[Message]:
    """The chat messages one finished turn adds to the history: the assistant's, then the env's.

    The one place that decides how a turn is written back for the next request. A completion
    with structured ``tool_calls`` keeps them on its assistant message, and each call's result
    comes back as its own ``role="tool"`` message with the call's ``tool_call_id`` (what
    OpenAI-compatible servers require), its text as the env renders one call's result
    (``env.format_results``) taken from ``info["tool_calls"]``. When the env's entries do not
    match the calls one to one, the whole observation answers the first call. Otherwise: the
    action text, then the observation in the role the env gives it.
    """
    calls = (completion.message or {}).get("tool_calls")
    if not calls:
        assistant = completion.message or {"role": "assistant", "content": completion.text}
        return [assistant, {"role": info["role"], "content": observation}]
    entries = list(info.get("tool_calls") or ())
    format_results = getattr(env, "format_results", None)
    if format_results is not None and len(entries) == len(calls):
        texts = [format_results([entry]) for entry in entries]
    else:
        texts = [observation] + ["(see the previous tool message)"] * (len(calls) - 1)
    return [completion.message] + [
        {"role": "tool", "tool_call_id": call["id"], "content": text} for call, text in zip(calls, texts, strict=True)
    ]
