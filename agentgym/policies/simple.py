"""Policies that need no model: uniform random actions and the env's scripted expert.

They exist for smoke tests, baselines and warm starts: ``ScriptedPolicy(epsilon=...)`` is the
deliberately imperfect (ε-greedy) expert that trainers imitate so RL still has room to improve.
With a ``seed``, each call's randomness is derived from the seed, the episode (task seed, its place in
the run, group member) and the turn (:func:`agentgym.policies.base.episode_rng`), so a rollout is reproducible at any
concurrency; without one they draw from an unseeded stream.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentgym.policies.base import Completion, Message, Policy, episode_rng

if TYPE_CHECKING:
    from agentgym.core import TextEnv

__all__ = ["RandomPolicy", "ScriptedPolicy"]

# Visible characters and the space: random text stays readable in trajectories and logs.
_TEXT_CHARS = string.ascii_letters + string.digits + string.punctuation + " "
_MAX_TEXT_LENGTH = 32


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choices(_TEXT_CHARS, k=rng.randint(1, _MAX_TEXT_LENGTH)))


def _env_method(env: TextEnv, name: str) -> Callable[[], Any] | None:
    """``env.<name>`` if callable, looking through Gymnasium wrappers (which hide env methods)."""
    method = getattr(env, name, None) or getattr(getattr(env, "unwrapped", None), name, None)
    return method if callable(method) else None


def _random_action(env: TextEnv, rng: random.Random, valid_only: bool = True) -> str:
    """A uniformly random legal action when the env lists them, else random printable text."""
    legal_actions = _env_method(env, "legal_actions")
    if valid_only and legal_actions is not None:
        actions = list(legal_actions())
        if actions:
            return str(rng.choice(actions))
    return _random_text(rng)


class RandomPolicy(Policy):
    """Uniform over ``env.legal_actions()`` (when the env has it and ``valid_only``), else random
    printable text — the floor any learned policy must beat, and a fuzzer for env parsers."""

    def __init__(self, seed: int | None = None, valid_only: bool = True):
        self.seed, self.rng = seed, random.Random(seed)
        self.valid_only = valid_only
        self.name = "random" if valid_only else "random-text"

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        return self.act_sync(messages, env)

    def act_sync(self, messages: list[Message], env: TextEnv) -> Completion:
        return Completion(text=_random_action(env, episode_rng(self.seed, messages, self.rng), self.valid_only))


class ScriptedPolicy(Policy):
    """The env's ``expert_action()``; with probability ``epsilon`` a random action instead.

    The random action is a legal one when the env lists them, else random text (as in
    :class:`RandomPolicy`). An env without ``expert_action`` raises ``TypeError``: silently
    acting randomly would pass off noise as expert demonstrations.
    """

    def __init__(self, epsilon: float = 0.0, seed: int | None = None):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        self.seed, self.rng = seed, random.Random(seed)
        self.name = f"scripted-eps{self.epsilon:g}" if self.epsilon else "scripted"
        self.explored = False  # whether the last action was not the expert's (SFT need not imitate it)

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        return self.act_sync(messages, env)

    def act_sync(self, messages: list[Message], env: TextEnv) -> Completion:
        expert_action = _env_method(env, "expert_action")
        if expert_action is None:
            raise TypeError(
                f"{type(env).__name__} has no expert_action(): ScriptedPolicy needs an env with a "
                "scripted expert (use RandomPolicy or a model policy instead)"
            )
        expert = str(expert_action())
        rng = episode_rng(self.seed, messages, self.rng)
        explore = bool(self.epsilon) and rng.random() < self.epsilon
        text = _random_action(env, rng) if explore else expert
        self.explored = text != expert
        return Completion(text=text)
