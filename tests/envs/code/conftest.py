"""Fixtures for the code envs: both sandbox backends, labelled envs that are always closed, and
a check that this process leaves no test container behind (other sessions' are not ours)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import agentgym
from agentgym.core import TextEnv

TEST_LABELS = {"agentgym.test": "1"}
BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), "local"]


def _engine() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 — any failure means "no engine"
        return exc


def _our_containers(client: Any) -> list[Any]:
    from agentgym.sandboxes.reaper import list_sandboxes, owner_id

    return [box for box in list_sandboxes(client, label="agentgym.test=1") if box.owner == owner_id()]


@pytest.fixture(scope="session")
def docker_client() -> Any:
    client = _engine()
    if isinstance(client, Exception):
        if os.environ.get("AGENTGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"AGENTGYM_REQUIRE_DOCKER=1 but no Docker engine is reachable: {client}")
        pytest.skip(f"no Docker engine reachable: {client}")
    from agentgym.sandboxes.images import build_offline, image_present, image_tag

    if not image_present(client, image_tag("python")):
        build_offline("python")
    return client


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers() -> Iterator[None]:
    yield
    client = _engine()
    if isinstance(client, Exception):
        return
    leaked = _our_containers(client)
    for box in leaked:
        client.api.remove_container(box.id, force=True)
    assert not leaked, f"code-env tests left containers behind: {[box.name for box in leaked]}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_client")
    return request.param


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
