"""The process-wide pools the code envs draw from: demand sizes them, the sync and async acquire
share one health check, and a code env gets a fresh sandbox per episode from its pool."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import time
from collections.abc import Callable

import pytest
from support import TEST_LABELS

import agentgym
from agentgym.sandboxes import SandboxSpec
from agentgym.sandboxes.pool import close_shared_pools, shared_pool

SPEC = SandboxSpec(memory_mb=256, workdir_mb=16, tmp_mb=16)


def settle(condition: Callable[[], bool], within: float = 60.0) -> bool:
    """Wait for the pool's background threads to reach ``condition`` (not a timing check)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def pool_name(request: pytest.FixtureRequest) -> str:
    yield f"t-{request.node.name}"[:40]
    close_shared_pools()


def test_demand_sizes_the_shared_pool_and_lowering_it_trims_idle(backend: str, pool_name: str) -> None:
    pool = shared_pool(backend=backend, name=pool_name, labels=TEST_LABELS)
    assert shared_pool(backend=backend, name=pool_name, labels=TEST_LABELS) is pool  # one per key
    assert pool.stats()["live"] == 0  # nothing warm until someone declares demand
    pool.demand(SPEC, 3)
    assert settle(lambda: pool.stats()["idle"] == 3)
    box = pool.acquire(SPEC)
    assert settle(lambda: pool.stats()["idle"] == 3)  # the one taken is replaced in the background
    pool.release(box)
    pool.demand(SPEC, -2)
    assert settle(lambda: pool.stats()["live"] == 1)
    close_shared_pools()
    assert pool.closed and shared_pool(backend=backend, name=pool_name, labels=TEST_LABELS) is not pool


def kill(box) -> None:  # noqa: ANN001
    """Kill the sandbox and wait until it is dead (so no health check can still see it alive)."""
    if box.backend == "docker":
        box.client.api.kill(box.container_id)
        box.client.api.wait(box.container_id, timeout=60)
    else:
        os.killpg(box._proc.pid, signal.SIGKILL)  # unshare and the executor under it
        box._proc.wait()
        poller = select.poll()  # not select(): a long test session holds fds ≥ 1024
        poller.register(box._proc.stdout, select.POLLIN)
        poller.poll(60_000)  # the executor's end of the pipe is closed


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_both_twins_hand_out_only_healthy_sandboxes(backend: str, pool_name: str, twin: str) -> None:
    pool = shared_pool(backend=backend, name=pool_name, labels=TEST_LABELS)
    pool.warm_up(SPEC, 2)
    assert settle(lambda: pool.stats()["idle"] == 2)
    for _, idle in pool._idle.items():
        for box, _, _ in idle:
            kill(box)  # both idle sandboxes die behind the pool's back
    if twin == "sync":
        got = pool.acquire_many(2, SPEC, timeout=120)
    else:
        got = asyncio.run(pool.aacquire_many(2, SPEC, timeout=120))
    assert all(box.run_python("print(1)").stdout == "1\n" for box in got)
    assert pool.stats()["leased"] == 2
    for box in got:
        pool.release(box)


def test_a_code_env_draws_a_fresh_pooled_sandbox_per_episode(backend: str, pool_name: str) -> None:
    env = agentgym.make("agentgym/PythonTIR-v0", source="builtin", backend=backend, sandbox_labels=TEST_LABELS)
    try:
        env.reset(seed=0)
        env.step("```python\nopen('/tmp/mark', 'w').write('x')\nsecret = 1\nprint(secret)\n```")
        first = env.sandbox.current
        pool = env.sandbox._held.pool
        assert first is not None and pool is not None and pool.stats()["leased"] == 1
        env.reset(seed=1)
        assert env.sandbox.current is None  # given back at reset ...
        obs = env.step("```python\nimport os\nprint(os.path.exists('/tmp/mark'), 'secret' in dir())\n```")[0]
        assert "False False" in obs and env.sandbox.current is not first  # ... and never reused
        assert settle(lambda: pool.stats()["idle"] >= 1)  # one env in flight: one kept warm
    finally:
        env.close()
    assert settle(lambda: pool.stats()["live"] == 0)  # closing the env withdrew its demand
