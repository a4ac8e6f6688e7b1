"""bench/scaling_sim.py: the simulation reaches the closed form's throughput, whichever resource binds."""

from __future__ import annotations

import pytest
from support import bench_module


@pytest.fixture(scope="module")
def sim():
    with bench_module("scaling_sim") as module:
        yield module


# 400 episodes on 2 hosts; each case makes one resource the bottleneck (the latency bound is 78 steps/s).
CASES = {
    "latency": {},
    "Docker engines": {"container_starts_per_s": 1.0, "seconds": 400.0, "warmup": 300.0},
    "host CPUs": {"cores": 1, "sandbox_cpu_ms": 50.0},
    "driver": {"driver_us": 20_000.0},
    "inference fleet": {"gpu_tokens_per_s": 10_000.0},
}


@pytest.mark.parametrize("bound", list(CASES))
def test_simulation_matches_the_closed_form(sim, bound: str) -> None:
    config = sim.Config(**{"episodes": 400, "hosts": 2, "container_starts_per_s": 1000.0, "seconds": 80.0,
                           "warmup": 30.0, **CASES[bound]})
    result = sim.simulate(config)
    assert result.bound == bound
    assert result.steps_per_s == pytest.approx(result.estimate, rel=0.06)
    unqueued_turn = config.gen_tokens / config.decode_tps + config.sandbox_cpu_ms / 1e3
    if bound == "latency":  # nothing queues: a turn takes its generation and its step
        assert result.turn_s == pytest.approx(unqueued_turn, rel=0.01)
        return
    utilisation = {"Docker engines": result.docker, "host CPUs": result.cpu, "driver": result.driver,
                   "inference fleet": result.gpu}
    assert utilisation[bound] > 0.95  # the binding resource is saturated
    assert result.steps_per_s < 0.9 * config.episodes / unqueued_turn
