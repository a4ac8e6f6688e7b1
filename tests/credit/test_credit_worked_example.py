"""docs/credit.md#worked-example to 4 decimals, through the estimators and through pipeline configs."""

from __future__ import annotations

import credit_worked_example as we
import numpy as np
import pytest

from agentgym.credit import (
    LookupScorer,
    TurnBatch,
    a2tgpo,
    build_pipeline,
    gigpo,
    igpo,
    information_gain,
    text_contexts,
)

ORDER = ("t1", "t2", "t3", "t4")


@pytest.fixture
def batch() -> TurnBatch:
    return TurnBatch.from_trajectories(we.trajectories(), gold_logp=we.gold_logp())


def check(batch: TurnBatch, values: np.ndarray, expected: dict[str, list[float]]) -> None:
    got = dict(zip(ORDER, batch.per_trajectory(values), strict=True))
    for tid, exp in expected.items():
        np.testing.assert_allclose(np.round(got[tid], 4), exp, atol=1.01e-4, err_msg=tid)


def test_gigpo_mean_norm(batch):
    check(batch, gigpo(batch, gamma=0.95, omega=1.0, std=False), we.GIGPO)
    check(batch, gigpo(batch, episode_weight=0.0), we.GIGPO_STEP)  # A^S alone


def test_gigpo_mean_std_norm(batch):
    check(batch, gigpo(batch, std=True), we.GIGPO_STD)


def test_gigpo_returns_and_anchor_means(batch):
    np.testing.assert_allclose(batch.per_trajectory(batch.suffix_sum(batch.reward, 0.95))[1], [0.9025, 0.95, 1.0])


def test_igpo_v2_log_prob_separate(batch):
    check(batch, igpo(batch, ig_type="log_prob_diff", norm="separate", gamma=1.0), we.IGPO_V2)
    ig = information_gain(batch)
    pooled = ig[np.isfinite(ig)]
    assert pooled.mean() == pytest.approx(0.775) and pooled.std() == pytest.approx(0.9246, abs=1e-4)
    # with γ = 1 the advantage steps down by r̃_t: recover r̃ from the advantages
    adv = batch.per_trajectory(igpo(batch))
    rt = {tid: [a - b for a, b in zip(row, [*row[1:], 0.0], strict=True)] for tid, row in zip(ORDER, adv, strict=True)}
    for tid, exp in we.IGPO_V2_RTILDE.items():
        np.testing.assert_allclose(rt[tid], exp, atol=1.01e-4)


def test_igpo_v1_prob_joint(batch):
    ig = information_gain(batch, ig_type="prob_diff")
    check(batch, np.nan_to_num(ig), {k: [*v, 0.0] for k, v in we.IG_PROB.items()})
    check(batch, igpo(batch, ig_type="prob_diff", norm="joint"), we.IGPO_V1)


def test_a2tgpo_advantage_and_clip(batch):
    adv, clip = a2tgpo(batch, alpha=0.3, beta=0.3, gamma=1.0)
    check(batch, adv, we.A2TGPO)
    check(batch, clip, we.A2TGPO_CLIP)
    # illustration: ε = (0.2, 0.28), A > 0, ρ = 1.5 → upper bound 1 + 0.28·c
    assert 1 + 0.28 * 1.1386 == pytest.approx(1.3188, abs=1e-4)
    assert 1 + 0.28 * 0.8614 == pytest.approx(1.2412, abs=1e-4)


@pytest.mark.parametrize(
    ("stage", "expected", "clip"),
    [({"gigpo": {}}, we.GIGPO, None), ({"info_gain": {}}, we.IGPO_V2, None), ({"a2tgpo": {}}, we.A2TGPO, we.A2TGPO_CLIP)],
)
def test_void_filter_kept_in_stats(batch, stage, expected, clip):
    out = build_pipeline({"stages": [stage, {"void_filter": {"void_in_group_stats": True}}]})(batch)
    check(batch, out.advantages, expected)  # τ4 still in every statistic
    np.testing.assert_array_equal([min(m) for m in out.per_trajectory("loss_mask")], [1, 1, 1, 0])
    assert out.per_trajectory("loss_mask")[3] == [0.0, 0.0]
    if clip:
        check(batch, out.clip_scale, clip)
    assert out.metrics["credit/void_ratio"] == 0.25


@pytest.mark.parametrize(
    ("stage", "expected"),
    [({"gigpo": {}}, we.GIGPO_NOVOID), ({"igpo": {}}, we.IGPO_NOVOID), ({"a2tgpo": {}}, we.A2TGPO_NOVOID)],
)
def test_void_filter_dropped_from_stats(batch, stage, expected):
    out = build_pipeline({"stages": [{"void_filter": {"void_in_group_stats": False}}, stage]})(batch)
    check(batch, out.advantages, expected)
    assert out.per_trajectory("loss_mask")[3] == [0.0, 0.0]


def test_recipe_shorthand_reproduces_the_example(batch):
    check(batch, build_pipeline({"method": "gigpo", "gamma": 0.95, "omega": 1.0})(batch).advantages, we.GIGPO)
    out = build_pipeline({"method": "igpo", "ig_type": "log_prob_diff", "norm": "separate", "gamma": 1.0})(batch)
    check(batch, out.advantages, we.IGPO_V2)
    out = build_pipeline({"method": "a2tgpo", "alpha": 0.3, "beta": 0.3, "gamma": 1.0})(batch)
    check(batch, out.advantages, we.A2TGPO)


def test_yaml_config(batch, tmp_path):
    path = tmp_path / "credit.yaml"
    path.write_text("stages:\n  - gigpo: {gamma: 0.95, omega: 1.0, std: true}\n  - void_filter: {void_in_group_stats: true}\n")
    check(batch, build_pipeline(path)(batch).advantages, we.GIGPO_STD)


def test_gold_logprobs_through_a_scorer():
    trajs = we.trajectories()
    table = {}
    for traj, ells in zip(trajs, we.gold_logp(), strict=True):
        for ctx, ell in zip(text_contexts(traj), ells, strict=True):
            table[(ctx, "Paris")] = ell
    scorer = LookupScorer(table)
    out = build_pipeline({"method": "igpo"})(trajs, scorer=scorer)
    check(out.batch, out.advantages, we.IGPO_V2)
    assert scorer.calls == 1  # one batched call for the whole batch
