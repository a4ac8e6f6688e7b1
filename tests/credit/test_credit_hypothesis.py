"""Property-based tests: the vectorised estimators equal the per-turn Python reference on random
batches, are invariant to row/trajectory order, and handle degenerate groups."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.credit import TurnBatch, a2tgpo, build_pipeline, gigpo, grpo, igpo, information_gain, rloo
from agentgym.credit.reference import records, ref_a2tgpo, ref_gigpo, ref_grpo, ref_igpo, ref_void_mask

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ELLS = [-3.0, -2.0, -1.5, -1.0, -0.5, -0.25]  # a small set: equal values make IG exactly 0


@st.composite
def trajectory_batches(draw, max_groups=3, max_group_size=5, max_turns=5):
    trajs, ells = [], []
    for g in range(draw(st.integers(1, max_groups))):
        states = [f"g{g}s{k}" for k in range(draw(st.integers(1, 4)))]
        for i in range(draw(st.integers(1, max_group_size))):
            n = draw(st.integers(1, max_turns))
            turns = [{
                "index": k, "observation": "o", "action": draw(st.sampled_from(["a", "b"])),
                "reward": draw(st.sampled_from([0.0, 0.0, 0.5, 1.0])),
                "state_key": draw(st.sampled_from([*states, None])),
                "void": draw(st.booleans()) and k == n - 1 and draw(st.booleans()),
                "parse_error": None,
            } for k in range(n)]
            failure = draw(st.sampled_from([None, None, None, None, "agent", "infra"]))
            trajs.append({"traj_id": f"{g}-{i}", "group_id": f"q{g}", "turns": turns, "failure": failure,
                          "outcome": sum(t["reward"] for t in turns)})
            ells.append([draw(st.sampled_from(ELLS)) if draw(st.integers(0, 19)) else float("nan") for _ in range(n)])
    return trajs, ells


def batch_of(data) -> TurnBatch:
    trajs, ells = data
    return TurnBatch.from_trajectories(trajs, gold_logp=ells)


def flat(values: list[list[float]]) -> np.ndarray:
    return np.asarray([x for row in values for x in row], dtype=np.float64)


@SETTINGS
@given(trajectory_batches(), st.booleans(), st.sampled_from([1.0, 0.95, 0.5]), st.sampled_from(["trajectory", "step"]))
def test_gigpo_matches_reference(data, std, gamma, episode_stats):
    b = batch_of(data)
    got = gigpo(b, gamma=gamma, std=std, episode_stats=episode_stats)
    np.testing.assert_allclose(got, flat(ref_gigpo(records(b), gamma=gamma, std=std, episode_stats=episode_stats)),
                               atol=1e-8)


@SETTINGS
@given(trajectory_batches(), st.sampled_from(["log_prob_diff", "prob_diff"]),
       st.sampled_from(["separate", "joint", "turn_group"]), st.sampled_from([1.0, 0.9]), st.booleans())
def test_igpo_matches_reference(data, ig_type, norm, gamma, outcome):
    b = batch_of(data)
    got = igpo(b, ig_type=ig_type, norm=norm, gamma=gamma, outcome=outcome)
    exp = flat(ref_igpo(records(b), ig_type=ig_type, norm=norm, gamma=gamma, outcome=outcome))
    np.testing.assert_allclose(got, exp, atol=1e-7)


@SETTINGS
@given(trajectory_batches(), st.sampled_from([1.0, 0.8]))
def test_a2tgpo_matches_reference(data, gamma):
    b = batch_of(data)
    adv, clip = a2tgpo(b, gamma=gamma)
    ref_adv, ref_clip = ref_a2tgpo(records(b), gamma=gamma)
    np.testing.assert_allclose(adv, flat(ref_adv), atol=1e-7)
    np.testing.assert_allclose(clip, flat(ref_clip), atol=1e-9)
    assert ((clip > 0.7) & (clip < 1.3)).all()


@SETTINGS
@given(trajectory_batches(), st.booleans())
def test_grpo_and_void_mask_match_reference(data, std):
    b = batch_of(data)
    np.testing.assert_allclose(grpo(b, std=std), flat(ref_grpo(records(b), std=std)), atol=1e-9)
    out = build_pipeline({"stages": ["grpo", "void_filter"]})(b)
    live = flat([[0.0 if t["failure"] == "infra" else 1.0] * len(t["turns"]) for t in data[0]])
    np.testing.assert_array_equal(out.loss_mask, flat(ref_void_mask(records(b))) * live)


FULL = {"stages": [
    {"gigpo": {"gamma": 0.95, "std": True}},
    {"info_gain": {"outcome": False, "weight": 0.5}},
    {"a2tgpo": {"outcome": False, "weight": 0.5}},
    {"rloo": {"weight": 0.1}},
    {"group_filter": {"zero_variance": True}},
    {"void_filter": {"void_in_group_stats": False}},
]}


@SETTINGS
@given(trajectory_batches(), st.randoms(use_true_random=False))
def test_permutation_invariance(data, rnd):
    """Shuffling trajectories (and the rows of a flat batch) permutes the outputs and nothing else."""
    trajs, ells = data
    out = build_pipeline(FULL)(TurnBatch.from_trajectories(trajs, gold_logp=ells))
    by_id = dict(zip((t["traj_id"] for t in trajs), zip(out.per_trajectory(), out.per_trajectory("loss_mask"),
                                                       out.per_trajectory("clip_scale"), strict=True), strict=True))
    perm = list(range(len(trajs)))
    rnd.shuffle(perm)
    out2 = build_pipeline(FULL)(TurnBatch.from_trajectories([trajs[i] for i in perm], gold_logp=[ells[i] for i in perm]))
    for i, adv, mask, clip in zip(perm, out2.per_trajectory(), out2.per_trajectory("loss_mask"),
                                  out2.per_trajectory("clip_scale"), strict=True):
        a, m, c = by_id[trajs[i]["traj_id"]]
        assert adv == pytest.approx(a, abs=1e-9) and mask == m and clip == pytest.approx(c, abs=1e-12)
    # flat arrays in a shuffled row order give the same per-row values back in that order
    b = TurnBatch.from_trajectories(trajs, gold_logp=ells)
    rows = np.arange(b.n_rows)
    rnd.shuffle(rows_list := rows.tolist())
    rows = np.asarray(rows_list, dtype=np.int64)
    fb = TurnBatch.from_arrays(
        group_id=b.group_ids[b.group][rows], traj_id=b.traj_ids[b.traj][rows], turn_idx=b.turn_idx[rows],
        reward=b.reward[rows], state_key=np.asarray([None if s < 0 else b.state_keys[s] for s in b.state], dtype=object)[rows],
        void=b.void[rows], outcome=b.outcome[b.traj][rows], infra=b.infra[b.traj][rows],
        gold_logp=b.gold_logp[rows], gold_logp0=b.gold_logp0[b.traj][rows])
    res = build_pipeline(FULL)(fb)
    np.testing.assert_allclose(fb.to_input_order(res.advantages), out.advantages[rows], atol=1e-9)
    np.testing.assert_array_equal(fb.to_input_order(res.loss_mask), out.loss_mask[rows])


@SETTINGS
@given(trajectory_batches(max_groups=2), st.sampled_from([0.0, 1.0, 0.5]))
def test_zero_variance_groups_give_zero_outcome_advantage_and_are_filtered(data, value):
    trajs, ells = data
    for t in trajs:  # every rollout gets the same outcome
        for u in t["turns"]:
            u["reward"] = 0.0
        t["turns"][-1]["reward"] = value
        t["outcome"] = value
    b = TurnBatch.from_trajectories(trajs, gold_logp=ells)
    for adv in (grpo(b), grpo(b, std=False), rloo(b), gigpo(b, omega=0.0, std=True)):
        assert np.abs(adv).max() < 1e-9
    out = build_pipeline({"stages": ["grpo", "group_filter"]})(b)
    assert (out.loss_mask == 0).all() and len(out.diagnostics["filtered_groups"]) == b.n_groups


@SETTINGS
@given(trajectory_batches(max_groups=3, max_group_size=1))
def test_singleton_groups_give_zero(data):
    b = batch_of(data)
    for adv in (grpo(b), rloo(b), gigpo(b, omega=0.0, std=True), gigpo(b, omega=0.0)):
        assert np.abs(adv).max() < 1e-9
    # the step term is 0 unless the lone rollout revisits a state (pooled within the trajectory)
    revisits = np.bincount(b.group * 100 + np.maximum(b.state, 0), weights=b.state >= 0)
    if (revisits <= 1).all():
        assert np.abs(gigpo(b, std=True)).max() < 1e-9
    # IG still ranks turns of a lone rollout along its trajectory; the outcome part is 0
    a_out = igpo(b, ig_weight=0.0)
    assert np.abs(a_out).max() < 1e-9


@SETTINGS
@given(trajectory_batches(), st.integers(0, 10_000))
def test_zero_ig_turns_stay_indexed(data, seed):
    """Force some IG values to exactly 0: rows, turn indices and group counts do not change."""
    trajs, ells = data
    rng = np.random.default_rng(seed)
    flat_ells = [[-1.0 if np.isnan(x) else x for x in e] for e in ells]
    for e in flat_ells:
        for k in range(1, len(e)):
            if rng.random() < 0.5:
                e[k] = e[k - 1]
    b = TurnBatch.from_trajectories(trajs, gold_logp=flat_ells)
    ig = information_gain(b)
    assert b.n_rows == sum(len(t["turns"]) for t in trajs)
    assert np.isfinite(ig[~b.is_last]).all()  # a zero IG is a value, not a missing turn
    adv = igpo(b)
    np.testing.assert_allclose(adv, flat(ref_igpo(records(b))), atol=1e-7)
    assert [len(r) for r in b.per_trajectory(adv)] == [len(t["turns"]) for t in trajs]


@SETTINGS
@given(st.integers(2, 8), st.integers(1, 4))
def test_adjacent_turns_with_equal_advantage_stay_separate(n_turns, n_traj):
    """GRPO gives every turn of a trajectory the same advantage: turns stay distinct rows."""
    trajs = [{"traj_id": str(i), "group_id": "g", "outcome": float(i % 2),
              "turns": [{"reward": 0.0, "state_key": f"s{k}"} for k in range(n_turns)]} for i in range(n_traj)]
    out = build_pipeline({"method": "grpo"})(trajs)
    per = out.per_trajectory()
    assert [len(r) for r in per] == [n_turns] * n_traj
    assert out.turn_index.tolist() == list(range(n_turns)) * n_traj
    assert all(len(set(r)) == 1 for r in per)
