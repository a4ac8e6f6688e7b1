"""Policies: who acts in an episode (a model server, the env's scripted expert, or chance)."""

from __future__ import annotations

from typing import Any

from agentgym.policies.base import Completion, ContextLengthExceeded, Message, Policy
from agentgym.policies.openai_chat import (
    OpenAIChatPolicy,
    PromptTooLongError,
    RequestRejectedError,
    parse_chat_completion,
)
from agentgym.policies.simple import RandomPolicy, ScriptedPolicy

__all__ = [
    "POLICIES",
    "Completion",
    "ContextLengthExceeded",
    "Message",
    "OpenAIChatPolicy",
    "Policy",
    "PromptTooLongError",
    "RandomPolicy",
    "RequestRejectedError",
    "ScriptedPolicy",
    "make_policy",
    "parse_chat_completion",
]

# The names the CLI's --policy accepts.
POLICIES: dict[str, type[Policy]] = {
    "random": RandomPolicy,
    "scripted": ScriptedPolicy,
    "openai": OpenAIChatPolicy,
}


def make_policy(name: str, /, **kwargs: Any) -> Policy:
    """Build a policy by CLI name; ``kwargs`` go to its constructor (``TypeError`` if unknown).
    ``"transformers"`` is a local model (``path=``, see ``agentgym.trainers.generation.load_local_policy``).

    ``name`` is positional-only so a policy's own ``name=`` option passes through.
    """
    if name == "transformers":  # a local model: torch loads only when asked for
        try:
            from agentgym.trainers.generation import load_local_policy
        except ImportError as e:
            raise ValueError(f"policy 'transformers' needs the train extra (pip install 'agentgym-rl[train]'): {e}") from None
        return load_local_policy(**kwargs)
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join([*POLICIES, 'transformers'])}") from None
    return cls(**kwargs)
