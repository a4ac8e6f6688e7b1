"""bench/credit_bifurcation.py on a tiny config: credit statistics are well formed and PG learns."""

from __future__ import annotations

import numpy as np
import pytest
from support import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("credit_bifurcation") as module:
        yield module


def test_tiny_bifurcation_learns_and_localises(bench) -> None:
    results = bench.run_bifurcation(4, 0, ("grpo", "gigpo", "igpo_oracle"), seeds=2, group_size=8,
                                     iterations=25, lr=0.4, probe_iters=2)
    by = {r.estimator: r for r in results}
    for r in results:
        for loc in (r.probe, r.train):
            assert 0.0 <= loc.share <= 1.0 and np.isfinite(loc.ratio) and loc.ratio > 0
        assert r.curve[:, 0] == pytest.approx(1 / 3)  # uniform start over 3 options
        assert (r.curve[:, -1] > 0.6).all(), r.estimator  # learned the decisive choice
        assert r.turns == 2 * 8 * 4 * 25
    # GRPO gives every turn the same credit: no localisation, ratio exactly 1.
    assert by["grpo"].probe.share == 0.0 and by["grpo"].probe.ratio == pytest.approx(1.0)
    # The anchor / information-gain credit concentrates on t* = 0 in the shared uniform-policy probe.
    assert by["gigpo"].probe.ratio > 1.1 and by["igpo_oracle"].probe.ratio > 1.5


def test_tiny_sokoban_runs(bench) -> None:
    (grpo, gigpo) = bench.run_sokoban(("grpo", "gigpo"), seeds=2, group_size=4, iterations=3)
    for r in (grpo, gigpo):
        assert r.success.shape == (2, 3) and ((0 <= r.success) & (r.success <= 1)).all()
    assert gigpo.extra["mean_step_group_size"] >= 1.0
