"""Fixtures for the code envs: the reference policy (``make_env``, ``backend`` and the container
leak check are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentgym.core import TextEnv


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
