"""Sandbox test fixtures: a real Docker engine, the offline-built image, and a leak check.

The python image is built once with the offline builder when its tag is missing (debootstrap +
docker import: about 60 s here) and then reused by tag. Every container a test makes carries
TEST_LABELS; the session ends by asserting that none of them is left.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from agentgym.sandboxes import BaseSandbox, SandboxSpec
from agentgym.sandboxes.images import build_offline, image_present, image_tag

TEST_LABEL = "agentgym.test"
TEST_LABELS = {TEST_LABEL: "1"}
BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), "local"]


def _engine():  # noqa: ANN202
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:
        return exc


@pytest.fixture(scope="session")
def docker_client():  # noqa: ANN201
    client = _engine()
    if isinstance(client, Exception):
        if os.environ.get("AGENTGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"AGENTGYM_REQUIRE_DOCKER=1 but no Docker engine is reachable: {client}")
        pytest.skip(f"no Docker engine reachable: {client}")
    return client


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:  # noqa: ANN001
    tag = image_tag("python")
    if not image_present(docker_client, tag):
        build_offline("python")
    return tag


@pytest.fixture(scope="session", autouse=True)
def no_leaked_test_containers() -> Iterator[None]:
    yield
    client = _engine()
    if isinstance(client, Exception):
        return
    from agentgym.sandboxes.reaper import list_sandboxes, prune

    leaked = [box.name for box in list_sandboxes(client, label=TEST_LABEL)]
    prune(client, everything=True, label=TEST_LABEL)
    assert not leaked, f"sandbox containers left behind by the tests: {leaked}"


@pytest.fixture
def test_labels() -> dict[str, str]:
    return dict(TEST_LABELS)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("sandbox_image")
    return request.param


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
