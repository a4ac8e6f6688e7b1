"""Fixtures shared across the suite: the support envs, labelled envs closed after each test
(``make_env``), and a real Docker engine with the offline
sandbox image and a leak check.

The python image is built once with the offline builder when its tag is missing (debootstrap +
docker import: about 60 s here) and then reused by tag. Every container a test makes carries
TEST_LABELS; the session ends by asserting that none of them is left.
"""

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make tests/support.py importable everywhere

from support import TEST_LABEL, TEST_LABELS, TEST_SESSION  # noqa: E402

import agentgym  # noqa: E402
from agentgym import registry  # noqa: E402
from agentgym.core import TextEnv  # noqa: E402


@pytest.fixture
def test_envs() -> Iterator[None]:
    """Register the support envs for one test, then remove them (so registry-wide loops
    such as the env checker and the fuzz test never see the deliberately broken ones)."""
    ids = {"tests/Echo-v0": "support:EchoEnv", "tests/Flaky-v0": "support:FlakyEnv",
           "tests/Slow-v0": "support:SlowEnv"}
    for env_id, entry_point in ids.items():
        agentgym.register(env_id, entry_point, max_turns=4, force=True)
    yield
    for env_id in ids:
        registry.unregister(env_id)


def _engine() -> Any:
    """A pinged docker client, or the exception that says why there is none."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 — any failure means "no engine"
        return exc


@pytest.fixture(scope="session")
def docker_client() -> Any:
    client = _engine()
    if isinstance(client, Exception):
        if os.environ.get("AGENTGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"AGENTGYM_REQUIRE_DOCKER=1 but no Docker engine is reachable: {client}")
        pytest.skip(f"no Docker engine reachable: {client}")
    return client


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> str:
    from agentgym.sandboxes.images import build_offline, image_present, image_tag

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
    from agentgym.sandboxes.pool import close_shared_pools
    from agentgym.sandboxes.reaper import list_sandboxes, prune

    close_shared_pools()  # the code envs' warm pools hold idle sandboxes until then
    mine = f"{TEST_LABEL}={TEST_SESSION}"
    leaked = [box.name for box in list_sandboxes(client, label=mine)]
    prune(client, everything=True, label=mine)
    assert not leaked, f"sandbox containers left behind by the tests: {leaked}"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster for one test module (the ray extra)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each sandbox backend in turn; the Docker one needs the engine and the image."""
    if request.param == "docker":
        request.getfixturevalue("sandbox_image")
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
