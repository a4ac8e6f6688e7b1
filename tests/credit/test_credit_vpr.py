"""VPR (verifiable process rewards, state-group advantage): a hand-worked example, equivalence with
the per-candidate Python reference (a re-derivation of the released code's loop) on random batches,
and hostile inputs: NaN rewards, K = 1, all-equal groups, empty and huge inputs (docs/credit.md#vpr)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.credit import TurnBatch, build_pipeline, vpr
from agentgym.credit.reference import records, ref_vpr

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def candidates(groups: dict[str, list[float]]) -> list[dict]:
    """State-group records: one one-turn trajectory per candidate, its turn reward the oracle's."""
    out = []
    for g, rewards in groups.items():
        for j, r in enumerate(rewards):
            out.append({"traj_id": f"{g}-c{j}", "group_id": g, "outcome": r,
                        "turns": [{"observation": g, "action": f"a{j}", "reward": r}]})
    return out


def flat(values):
    return np.asarray([x for row in values for x in row], dtype=np.float64)


# A: mixed rewards (an optimal move 2, a legal move 0, an invalid reply -2, another optimal 2);
# B: all equal (masked); C: one candidate (masked); D: two candidates 1 and 3.
GROUPS = {"A": [2.0, 0.0, -2.0, 2.0], "B": [0.0, 0.0, 0.0], "C": [2.0], "D": [1.0, 3.0]}


def test_hand_worked_group_whiten():
    out = build_pipeline({"method": "vpr"})(candidates(GROUPS))
    # A: mean 0.5; population variance (1.5² + 0.5² + 2.5² + 1.5²)/4 = 2.75, σ = √2.75
    s = math.sqrt(2.75)
    expected = [1.5 / s, -0.5 / s, -2.5 / s, 1.5 / s, 0, 0, 0, 0, -1 / (1 + 1e-8), 1 / (1 + 1e-8)]
    np.testing.assert_allclose(out.advantages, expected, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(out.advantages[:4], [0.9045340, -0.3015113, -1.5075567, 0.9045340], atol=1e-7)
    assert out.loss_mask.tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    assert out.diagnostics["vpr_state_groups"] == 4
    assert out.diagnostics["vpr_masked_group_share"] == 0.5
    assert out.diagnostics["vpr_candidates_per_group"] == 2.5


def test_hand_worked_mean_then_batch_whiten():
    out = build_pipeline({"method": "vpr", "mode": "mean_then_batch_whiten"})(candidates(GROUPS))
    centred = np.array([1.5, -0.5, -2.5, 1.5, -1.0, 1.0])  # A and D centred on their own means
    s = math.sqrt((centred**2).mean())  # their mean is 0; population std over the trained rows: √(13/6)
    assert s == pytest.approx(math.sqrt(13 / 6))
    np.testing.assert_allclose(out.advantages[[0, 1, 2, 3, 8, 9]], centred / (s + 1e-8), rtol=1e-12)
    assert not out.advantages[4:8].any()


def random_batch(rng: np.random.Generator, n_groups: int, k_max: int) -> tuple[TurnBatch, np.ndarray]:
    sizes = rng.integers(1, k_max + 1, n_groups)
    n = int(sizes.sum())
    group = np.repeat(np.arange(n_groups), sizes)
    reward = rng.choice([-2.0, 0.0, 2.0, 3.0], n)  # oracle tiers, + a solving bonus: ties are common
    reward = np.where(rng.random(n) < 0.2, rng.normal(0, 5, n), reward)
    infra = rng.random(n) < 0.05
    batch = TurnBatch.from_arrays(group_id=group, traj_id=np.arange(n), turn_idx=np.zeros(n), reward=reward,
                                  infra=infra)
    include = rng.random(n) < 0.9
    return batch, include


@pytest.mark.parametrize("mode", ["group_whiten", "mean_then_batch_whiten"])
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_groups=st.integers(1, 30), k_max=st.integers(1, 9))
def test_matches_per_candidate_reference(mode, seed, n_groups, k_max):
    batch, include = random_batch(np.random.default_rng(seed), n_groups, k_max)
    adv, train = vpr(batch, mode=mode, include=include)
    ref_adv, ref_train = ref_vpr(records(batch, include), mode=mode)
    np.testing.assert_allclose(adv, flat(ref_adv), rtol=1e-9, atol=1e-9)
    assert np.array_equal(train.astype(float), flat(ref_train))
    assert not adv[~train].any()


def test_advantages_sum_to_zero_within_each_trained_group():
    batch, _ = random_batch(np.random.default_rng(7), 200, 8)
    adv, train = vpr(batch)
    sums = np.bincount(batch.group, weights=adv, minlength=batch.n_groups)
    np.testing.assert_allclose(sums, 0.0, atol=1e-9)
    assert train.any() and (~train).any()


def test_k1_and_all_equal_groups_are_masked_never_nan():
    out = build_pipeline({"method": "vpr"})(candidates({"s0": [2.0], "s1": [-2.0, -2.0, -2.0, -2.0]}))
    assert out.advantages.tolist() == [0.0] * 5 and out.loss_mask.tolist() == [0.0] * 5
    assert out.diagnostics["vpr_masked_group_share"] == 1.0


def test_nan_reward_raises_by_default_and_masks_its_group_on_request():
    recs = candidates({"s0": [2.0, float("nan"), 0.0], "s1": [2.0, 0.0]})
    with pytest.raises(ValueError, match="non-finite"):
        build_pipeline({"method": "vpr"})(recs)
    out = build_pipeline({"method": "vpr", "on_nonfinite": "mask_group"})(recs)
    assert out.loss_mask.tolist() == [0, 0, 0, 1, 1]
    assert out.advantages[:3].tolist() == [0, 0, 0] and np.isfinite(out.advantages).all()
    assert out.advantages[3] > 0 > out.advantages[4]


def test_empty_batch_infra_records_and_huge_rewards():
    out = build_pipeline({"method": "vpr"})([])
    assert out.advantages.size == 0 and out.diagnostics["vpr_state_groups"] == 0
    failed = [{"traj_id": "e-s002-failed", "group_id": "e-s002", "failure": "infra", "turns": []}]
    out = build_pipeline({"method": "vpr"})(candidates({"s0": [2.0, 0.0]}) + failed)
    assert out.per_trajectory() == [[1.0 / (1 + 1e-8)], [-1.0 / (1 + 1e-8)], []]
    with pytest.raises(ValueError, match="too large"):
        build_pipeline({"method": "vpr"})(candidates({"s0": [1e200, 0.0]}))


def test_refuses_multi_turn_episodes_and_bad_config():
    episode = [{"traj_id": "t", "group_id": "g", "turns": [{"reward": 0.0}, {"reward": 1.0}]}]
    with pytest.raises(ValueError, match="one candidate action per record"):
        build_pipeline({"method": "vpr"})(episode)
    with pytest.raises(ValueError, match="mode"):
        build_pipeline({"method": "vpr", "mode": "whiten"})(candidates(GROUPS))
    with pytest.raises(ValueError, match="eps"):
        build_pipeline({"method": "vpr", "eps": 0})(candidates(GROUPS))
    with pytest.raises(ValueError, match="unknown keys"):
        build_pipeline({"method": "vpr", "gamma": 0.9})


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 100), shift=st.floats(-50, 50))
def test_group_whiten_is_invariant_to_an_affine_change_of_the_oracle_scale(seed, scale, shift):
    """Scores 2 / 0 / −2 or 20 / 0 / −20 teach the same: only the order within a state matters (up to ε)."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(12), rng.integers(1, 7, 12))
    reward = rng.choice([-2.0, 0.0, 2.0, 3.0], group.size)  # the oracle's tiers (+ a solving bonus)
    batch = TurnBatch.from_arrays(group_id=group, traj_id=np.arange(group.size), turn_idx=np.zeros(group.size),
                                  reward=reward)
    adv, train = vpr(batch)
    moved, train2 = vpr(batch.replace(reward=reward * scale + shift))
    assert np.array_equal(train, train2)  # ties stay ties
    np.testing.assert_allclose(moved, adv, atol=1e-6)
    for g in np.unique(batch.group[train]):  # within a state, a higher reward never gets a lower advantage
        rows = np.flatnonzero((batch.group == g) & train)
        order = np.argsort(batch.reward[rows], kind="stable")
        assert (np.diff(adv[rows][order]) >= -1e-12).all()
