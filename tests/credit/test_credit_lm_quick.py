"""bench/credit_lm.py --quick (issue 24): the pool of every cell is perceivable and balanced, and the
oracle-credit method keeps GRPO's advantage on the decisive turn only. Seconds, no model."""

from __future__ import annotations

import pytest
from support import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("credit_lm") as module:
        yield module


def test_quick_mode_asserts_balanced_pools_and_the_oracle_mechanics(bench, capsys) -> None:
    assert bench.main(["--quick"]) == 0  # raises AssertionError on an unbalanced pool or a leaking oracle
    out = capsys.readouterr().out
    for h, t_star in ((4, 0), (4, 3), (8, 0), (8, 7)):
        assert f"pool H={h} t*={t_star}:" in out and f"oracle H={h} t*={t_star}: valid-turn |A| mass on t* 1.00" in out
    assert "NOT balanced" not in out


def test_the_old_default_pool_is_flagged_as_aliased(bench) -> None:
    # seed_start 0, H = 4, t* = 0: two "Gates" tasks with different good labels (the 0.75 plateau).
    pool = bench.pool_tasks(4, 0, 0, 4)
    assert any("Gates" in p for p in bench.pool_problems(pool))
    start = bench.balanced_seed_start(4, 0, 4)
    pool = bench.pool_tasks(4, 0, start, 4)
    assert not bench.pool_problems(pool)
    assert len({scene for _, scene, _ in pool}) == 4
    with pytest.raises(ValueError, match="distinct decisive scenes"):
        bench.balanced_seed_start(4, 0, 5)


def test_oracle_zeroes_valid_filler_turns_only(bench) -> None:
    import asyncio

    from agentgym.credit import TurnBatch, build_pipeline
    from agentgym.registry import spec
    from agentgym.rollout import plan, rollout

    items = plan("t", seeds=range(4), group_size=8)
    trajs = asyncio.run(rollout(spec(bench.ENV_ID), bench._MixedPolicy(1), items, env_kwargs=bench.env_kwargs(4, 2),
                                threads=False))
    grpo = build_pipeline(bench.METHODS["grpo"][0])(TurnBatch.from_trajectories(trajs)).per_trajectory("advantages")
    hook = bench._Credit(2, None, decisive_only=True)
    oracle = hook(trajs, build_pipeline(bench.METHODS["oracle"][0]), None).advantages
    kinds = {"decisive": 0, "filler": 0, "invalid": 0}
    for t, g_row, o_row in zip(trajs, grpo, oracle, strict=True):
        for turn, g, o in zip(t.turns, g_row, o_row, strict=True):
            kind = "invalid" if turn.parse_error else "decisive" if hook.stage(turn) == 2 else "filler"
            kinds[kind] += 1
            assert o == (0.0 if kind == "filler" else g)
    assert all(kinds.values()), kinds  # every kind of turn was exercised
    assert 0 < hook.summary()["mass"] < 1  # invalid turns off t* keep their format credit
