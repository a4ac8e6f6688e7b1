"""Fixtures for the code envs: labelled envs that are always closed, and the reference policy
(``backend`` and the container leak check are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import TEST_LABELS

import agentgym
from agentgym.core import TextEnv


@pytest.fixture
def make_env() -> Iterator[Callable[..., TextEnv]]:
    """``make_env(env_id, **kwargs)``: a test-labelled env, closed after the test."""
    made: list[TextEnv] = []

    def make(env_id: str, **kwargs: Any) -> TextEnv:
        env = agentgym.make(env_id, sandbox_labels=TEST_LABELS, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def _run_expert(env: TextEnv, seed: int | None = None, task: Any = None) -> float:
    env.reset(seed=seed, options=None if task is None else {"task": task})
    total = 0.0
    while True:
        _, reward, terminated, truncated, _ = env.step(env.expert_action())
        total += reward
        if terminated or truncated:
            return total


@pytest.fixture
def run_expert() -> Callable[..., float]:
    """``run_expert(env, seed=None, task=None)``: one reference-policy episode; its summed reward."""
    return _run_expert
