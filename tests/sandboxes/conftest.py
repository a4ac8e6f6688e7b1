"""Sandbox test fixtures: labelled sandboxes of each backend (``backend``, the Docker engine,
the image and the leak check are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support import TEST_LABELS

from agentgym.sandboxes import BaseSandbox, SandboxSpec


@pytest.fixture
def test_labels() -> dict[str, str]:
    return dict(TEST_LABELS)


@pytest.fixture
def make_box(backend: str) -> Iterator[Callable[..., BaseSandbox]]:
    """Factory for sandboxes of the parametrised backend; closes them all afterwards."""
    made: list[BaseSandbox] = []

    def make(spec: SandboxSpec | None = None, **changes) -> BaseSandbox:  # noqa: ANN003
        spec = (spec or SandboxSpec()).replace(**changes)
        if backend == "docker":
            from agentgym.sandboxes.docker_sandbox import DockerSandbox

            box: BaseSandbox = DockerSandbox(spec, labels=TEST_LABELS, pool="test")
        else:
            from agentgym.sandboxes.local_sandbox import LocalSandbox

            box = LocalSandbox(spec)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture
def box(make_box: Callable[..., BaseSandbox]) -> BaseSandbox:
    return make_box(memory_mb=256, pids=64, workdir_mb=32, tmp_mb=16)


@pytest.fixture
def no_shared_pools() -> None:
    """Close the process-wide warm pools first: the code-env tests earlier in a session leave idle
    sandboxes with this run's label in them, which tests that count this run's containers would see."""
    from agentgym.sandboxes.pool import close_shared_pools

    close_shared_pools()
