"""Warm pool (groups, recovery, churn with random kills), reaper, CLI and images, on the real engine."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import TEST_LABEL, TEST_SESSION
from typer.testing import CliRunner

from agentgym.sandboxes import DEFAULT_IMAGE, SandboxCrashed, SandboxPool, SandboxSpec
from agentgym.sandboxes.images import IMAGES_DIR, image_tag, packages
from agentgym.sandboxes.reaper import list_sandboxes, prune

ROOT = Path(__file__).resolve().parents[2]


def kill(box, docker_client) -> None:  # noqa: ANN001
    if box.backend == "docker":
        docker_client.api.kill(box.container_id)
    else:
        box._proc.kill()
        box._proc.wait()  # unshare is gone, so its child's SIGKILL (--kill-child) is sent: no call races it


@pytest.fixture
def pool_for(backend: str, test_labels, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    client = request.getfixturevalue("docker_client") if backend == "docker" else None
    pools = []

    def make(**kwargs) -> SandboxPool:  # noqa: ANN003
        pool = SandboxPool(backend=backend, labels=test_labels, name="test", **kwargs)
        pools.append(pool)
        return pool

    yield make, client
    for pool in pools:
        pool.close()


def test_group_acquire_and_fresh_sandbox_per_user(pool_for) -> None:  # noqa: ANN001
    make, _ = pool_for
    pool = make(warm=2, max_size=6)
    group = pool.acquire_many(4)
    assert len({id(box) for box in group}) == 4
    group[0].run_shell("echo secret > note.txt")
    for box in group:
        pool.release(box)
    later = pool.acquire_many(6)  # the whole pool at once
    assert all(box.run_shell("test -e note.txt").exit_code == 1 for box in later)  # never reused
    with pytest.raises(ValueError):
        pool.acquire_many(7)
    for box in later:
        pool.release(box)


def test_max_size_is_respected(pool_for) -> None:  # noqa: ANN001
    make, _ = pool_for
    pool = make(warm=0, max_size=2)
    held = pool.acquire_many(2)
    from agentgym.sandboxes import SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match="no 1 sandboxes free"):
        pool.acquire(timeout=1.0)
    assert pool.stats()["live"] <= 2
    pool.release(held[0])
    pool.release(pool.acquire(timeout=30))
    pool.release(held[1])


def test_killed_mid_call_pool_recovers(pool_for) -> None:  # noqa: ANN001
    make, client = pool_for
    pool = make(warm=1, max_size=3)
    box = pool.acquire()
    kill(box, client)
    with pytest.raises(SandboxCrashed):
        box.run_python("print(1)")
    pool.release(box)
    with pool.sandbox() as fresh:
        assert fresh.run_python("print(1)").stdout == "1\n"


def test_churn_with_random_kills_leaks_nothing(pool_for, backend: str, no_shared_pools) -> None:  # noqa: ANN001
    make, client = pool_for
    rng = random.Random(7)
    pool = make(warm=4, max_size=8, refill_per_s=50, parallel_starts=2)
    crashed = 0
    for _ in range(200):
        box = pool.acquire(timeout=60)
        if rng.random() < 0.2:
            kill(box, client)
            try:
                box.run_python("print(1)")
            except SandboxCrashed:
                crashed += 1
        else:
            assert box.run_python("print(1)").stdout == "1\n"
        pool.release(box)
    pool.close()
    assert crashed > 20 and pool.stats()["live"] == 0
    if backend == "docker":
        assert list_sandboxes(client, label=f"{TEST_LABEL}={TEST_SESSION}") == []  # this test run's only


@pytest.mark.docker
def test_reaper_removes_expired_and_orphaned(sandbox_image, docker_client, test_labels,  # noqa: ANN001
                                            no_shared_pools) -> None:  # noqa: ANN001
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    mine = f"{TEST_LABEL}={TEST_SESSION}"  # other test runs may share the engine
    expired = DockerSandbox(SandboxSpec(ttl=1), labels={**test_labels, "case": "ttl"})
    code = ("import os\nfrom agentgym.sandboxes.docker_sandbox import DockerSandbox\n"
            f"DockerSandbox(labels={{**{test_labels!r}, 'case': 'orphan'}})\nos._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # dies without close()
    alive = DockerSandbox(labels={**test_labels, "case": "alive"})
    time.sleep(1.5)
    reasons = {box.labels["case"]: box.stale_reason() for box in list_sandboxes(docker_client, label=mine)}
    assert reasons["ttl"].startswith("ttl") and reasons["orphan"] == "owner process is gone" and reasons["alive"] is None
    result = CliRunner().invoke(_cli(), ["prune", "--label", mine, "--dry-run"])
    assert result.exit_code == 0 and "would remove 2" in result.output
    removed = {box.labels["case"] for box, _ in prune(docker_client, label=mine)}
    assert removed == {"ttl", "orphan"}
    assert alive.run_python("print(1)").ok
    with pytest.raises(SandboxCrashed):
        expired.run_python("print(1)")
    listing = CliRunner().invoke(_cli(), ["ls", "--label", mine])
    assert listing.exit_code == 0 and "1 sandbox container(s)" in listing.output
    expired.close()
    alive.close()


def _cli():  # noqa: ANN202
    from agentgym.sandboxes.cli import app

    return app


def test_cli_help_explains_every_option() -> None:
    runner = CliRunner()
    for command in ("ls", "prune", "build"):
        result = runner.invoke(_cli(), [command, "--help"])
        assert result.exit_code == 0
    assert "--dry-run" in runner.invoke(_cli(), ["prune", "--help"]).output
    assert runner.invoke(_cli(), ["build", "nope"]).exit_code != 0


def test_image_recipes_agree() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert compose["sandbox-python"]["image"] == image_tag("python") == DEFAULT_IMAGE
    assert (ROOT / compose["sandbox-python"]["build"]["context"]) == IMAGES_DIR / "python"
    assert "packages.txt" in (IMAGES_DIR / "python" / "Dockerfile").read_text()
    assert {"python3-numpy", "python3-sympy"} <= set(packages("python"))


@pytest.mark.docker
def test_offline_image_has_the_code_env_stack(sandbox_image, test_labels) -> None:  # noqa: ANN001
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    with DockerSandbox(SandboxSpec(preload=("numpy",)), labels=test_labels) as box:
        out = box.run_python("import numpy, sympy\nprint(int(numpy.arange(4).sum()), sympy.factor('x**2-1'))")
        assert out.stdout == "6 (x - 1)*(x + 1)\n", out
