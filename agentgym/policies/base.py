"""The policy contract: chat messages in, a completion (text, optionally tokens) out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentgym.core import TextEnv

__all__ = ["Completion", "ContextLengthExceeded", "Message", "Policy"]

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant" | "tool", "content": str}


class ContextLengthExceeded(Exception):
    """The conversation no longer fits the model's context window.

    Not a failure of the agent or of the infrastructure: the rollout engine ends the episode as
    truncated (``truncation_reason="context_length"``) and keeps the turns so far.
    """


@dataclass
class Completion:
    """What a policy produced for one turn.

    ``token_ids`` and ``logprobs`` are the sampled completion tokens and their log-probs when the
    backend returns them (vLLM does); ``prompt_token_ids`` is the full prompt as the server
    tokenised it. ``num_tokens`` counts completion tokens for token budgets (from the server's
    usage, else ``len(token_ids)``, else ``None``).
    """

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None
    finish_reason: str | None = None
    num_tokens: int | None = None


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
