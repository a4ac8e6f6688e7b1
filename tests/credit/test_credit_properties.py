"""docs/credit.md#properties: the unit-test checklist, one test (or a few) per item."""

from __future__ import annotations

import numpy as np
import pytest
from credit_worked_example import gold_logp, trajectories

from agentgym.credit import (
    TurnBatch,
    a2tgpo,
    anchor_groups,
    broadcast_to_tokens,
    build_pipeline,
    gigpo,
    gold_token_range,
    grpo,
    igpo,
    information_gain,
    is_void_simpletir,
    tempo,
    token_turn_ids,
    turn_level_ratio,
    void_loss_mask,
    zscore,
)
from agentgym.credit.segments import IGPO_NORM, Norm


def flat(group, traj, turn, reward, state=None, **kw) -> TurnBatch:
    return TurnBatch.from_arrays(group_id=group, traj_id=traj, turn_idx=turn, reward=reward, state_key=state, **kw)


@pytest.fixture
def example() -> TurnBatch:
    return TurnBatch.from_trajectories(trajectories(), gold_logp=gold_logp())


# -- 10.1 GiGPO ------------------------------------------------------------------------------
def test_gigpo_singleton_anchor_gives_zero_step_advantage(example):
    a_s = gigpo(example, episode_weight=0.0)
    lyon = example.state_keys.tolist().index("D_lyon")
    assert a_s[example.state == lyon] == pytest.approx([0.0])
    assert gigpo(example, episode_weight=0.0, std=True)[example.state == lyon] == pytest.approx([0.0])


def test_gigpo_equal_returns_in_an_anchor_give_zero():
    b = flat([0] * 4, [0, 0, 1, 1], [0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0], ["s", "t", "s", "t"])
    assert gigpo(b, episode_weight=0.0) == pytest.approx(np.zeros(4))
    assert gigpo(b, std=True) == pytest.approx(np.zeros(4))


@pytest.mark.parametrize("std", [False, True])
def test_gigpo_omega_zero_is_grpo(example, std):
    np.testing.assert_allclose(gigpo(example, omega=0.0, std=std), grpo(example, std=std))


def test_gigpo_anchors_only_within_a_prompt_group():
    # the same state key in two prompt groups must not pool
    b = flat([0, 0, 1, 1], [0, 1, 2, 3], [0, 0, 0, 0], [1.0, 0.0, 1.0, 1.0], ["s", "s", "s", "s"])
    codes, _ = anchor_groups(b)
    assert codes[0] == codes[1] and codes[2] == codes[3] and codes[0] != codes[2]
    a_s = gigpo(b, episode_weight=0.0)
    np.testing.assert_allclose(a_s, [0.5, -0.5, 0.0, 0.0])


def test_gigpo_permuting_rollouts_changes_nothing(example):
    order = ("t3", "t1", "t4", "t2")
    other = TurnBatch.from_trajectories(trajectories(order), gold_logp=gold_logp(order))
    a = dict(zip(("t1", "t2", "t3", "t4"), example.per_trajectory(gigpo(example, std=True)), strict=True))
    b = dict(zip(order, other.per_trajectory(gigpo(other, std=True)), strict=True))
    for tid in a:
        assert a[tid] == pytest.approx(b[tid], abs=1e-12)


def test_gigpo_episode_stats_step_vs_trajectory():
    # τ0 long (3 turns, return 1), τ1 short (1 turn, return 0): per step rows the mean is 0.75
    b = flat([0] * 4, [0, 0, 0, 1], [0, 1, 2, 0], [0.0, 0.0, 1.0, 0.0], ["a", "b", "c", "a"])
    a_traj = gigpo(b, omega=0.0, episode_stats="trajectory")
    a_step = gigpo(b, omega=0.0, episode_stats="step")
    np.testing.assert_allclose(a_traj, [0.5, 0.5, 0.5, -0.5])
    np.testing.assert_allclose(a_step, [0.25, 0.25, 0.25, -0.75])


def test_gigpo_similarity_mode_pools_near_duplicate_texts():
    keys = ["You are in the kitchen. A knife is here.", "You are in the kitchen. A knife is here!",
            "You are in a garden.", "You are in the kitchen. A knife is here."]
    b = flat([0] * 4, [0, 1, 2, 3], [0] * 4, [1.0, 0.0, 1.0, 0.0], keys)
    exact, _ = anchor_groups(b)
    similar, _ = anchor_groups(b, similarity=0.9)
    assert len(set(exact.tolist())) == 3 and len(set(similar.tolist())) == 2
    assert similar[0] == similar[1] == similar[3] != similar[2]
    # only within a prompt group
    b2 = flat([0, 1], [0, 1], [0, 0], [1.0, 0.0], keys[:2])
    s2, _ = anchor_groups(b2, similarity=0.9)
    assert s2[0] != s2[1]


def test_missing_state_key_is_its_own_anchor():
    b = flat([0, 0], [0, 1], [0, 0], [1.0, 0.0], [None, None])
    codes, n = anchor_groups(b)
    assert n == 2 and gigpo(b, episode_weight=0.0) == pytest.approx([0.0, 0.0])


# -- 10.2 information gain --------------------------------------------------------------------
def test_ig_count_and_telescoping(example):
    ig = information_gain(example)
    per = example.per_trajectory(ig)
    for row, ells in zip(per, gold_logp(), strict=True):
        assert np.isfinite(row[:-1]).all() and np.isnan(row[-1])  # T turns → T−1 values
        assert sum(row[:-1]) == pytest.approx(ells[-1] - ells[0])


def test_prob_diff_in_open_interval():
    rng = np.random.default_rng(0)
    n = 200
    b = flat(np.zeros(n, int), np.repeat(np.arange(20), 10), np.tile(np.arange(10), 20), np.zeros(n),
             gold_logp=-rng.exponential(3.0, n), gold_logp0=np.repeat(-rng.exponential(3.0, 20), 10))
    ig = information_gain(b, ig_type="prob_diff")
    ig = ig[np.isfinite(ig)]
    assert ((ig > -1) & (ig < 1)).all() and ig.size == 180


def test_gold_span_excludes_prefix_and_suffix_even_when_merged_with_newline():
    # a toy tokenizer that glues "\n" onto the following word, like many BPE vocabularies
    import re

    template = "<answer>\n{gold}\n</answer>"
    text = template.format(gold="Paris France")
    offsets = [m.span() for m in re.finditer(r"\n?[^\s]+|\n", text)]
    tokens = [text[s:e] for s, e in offsets]
    start = template.index("{gold}")
    lo, hi = gold_token_range(offsets, start, start + len("Paris France"))
    assert tokens[lo:hi] == ["\nParis", "France"]  # "\nParis" overlaps the gold span: it counts
    assert "<answer>" not in tokens[lo:hi] and "\n</answer>" not in tokens[lo:hi]


# -- 10.3 IGPO separate -------------------------------------------------------------------------
def test_igpo_separate_normalised_pools_and_gamma_one_steps(example):
    ig = information_gain(example)
    is_ig = np.isfinite(ig)
    z = zscore(ig, example.group, example.n_groups, mask=is_ig, norm=IGPO_NORM)[is_ig]
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std() == pytest.approx(1.0, abs=1e-4)
    z_out = zscore(example.outcome, example.traj_group, example.n_groups, norm=IGPO_NORM)
    assert z_out.mean() == pytest.approx(0.0) and z_out.std() == pytest.approx(1.0, abs=1e-4)
    adv = igpo(example, gamma=1.0)
    rt = np.where(is_ig, zscore(ig, example.group, example.n_groups, mask=is_ig, norm=IGPO_NORM), 0.0)
    rt[example.is_last] = z_out[example.traj[example.is_last]]
    nxt = np.append(adv[1:], 0.0)
    step = np.where(example.is_last, adv, adv - nxt)  # adv_t − adv_{t+1} = r̃_t
    np.testing.assert_allclose(step, rt, atol=1e-12)


# -- 10.4 A²TGPO --------------------------------------------------------------------------------
def test_a2tgpo_turn_groups_mean_zero_last_ig_turn_and_clip(example):
    ig = information_gain(example)
    is_ig = np.isfinite(ig)
    pos = example.turn_index
    n_tilde = zscore(ig, example.group * 10 + pos, 100, mask=is_ig, norm=IGPO_NORM)
    for t in np.unique(pos[is_ig]):
        assert n_tilde[is_ig & (pos == t)].mean() == pytest.approx(0.0, abs=1e-12)
    adv, clip = a2tgpo(example, alpha=0.3)
    a_out = zscore(example.outcome, example.traj_group, 1, norm=IGPO_NORM)[example.traj]
    last_ig = np.append(example.is_last[1:], False) & is_ig  # the turn before the outcome turn
    np.testing.assert_allclose(adv[last_ig], 0.3 * n_tilde[last_ig] + a_out[last_ig])
    assert ((clip[is_ig] > 0.7) & (clip[is_ig] < 1.3)).all()
    assert (clip[example.is_last] == 1.0).all()


def test_a2tgpo_clip_strictly_inside_even_for_extreme_values():
    b = flat([0] * 4, [0, 0, 1, 1], [0, 1, 0, 1], [0.0] * 4, gold_logp=[50.0, np.nan, -50.0, np.nan],
             gold_logp0=[0.0, 0.0, 0.0, 0.0], outcome=[1, 1, 0, 0])
    _, clip = a2tgpo(b)
    assert 0.7 < clip.min() and clip.max() < 1.3


def test_ig_exactly_zero_turn_is_still_a_turn():
    # τ0: ℓ = [-1, -1, -0.5] → IG [0, 0.5]; the zero-IG turn keeps its own index and value
    b = flat([0] * 6, [0, 0, 0, 1, 1, 1], [0, 1, 2] * 2, [0.0] * 6, gold_logp=[-1.0, -0.5, np.nan, -2.0, -1.8, np.nan],
             gold_logp0=[-1.0] * 3 + [-1.0] * 3, outcome=[1.0] * 3 + [0.0] * 3)
    ig = information_gain(b)
    assert ig[0] == 0.0 and np.isfinite(ig[0])
    adv, clip = a2tgpo(b)
    assert adv.shape == (6,) and b.turn_index.tolist() == [0, 1, 2, 0, 1, 2]
    # the zero-IG turn is in its (prompt, turn 0) group: {0, -1} → ñ = [+1, -1]
    assert clip[0] == pytest.approx(1 + 0.3 * (2 / (1 + np.exp(-1.0)) - 1), abs=1e-5)
    # IGPO: pooled IG {0, .5, −1, .2}; the zero-IG turn contributes its own r̃ ≠ 0 step
    adv = igpo(b)
    assert adv[0] != adv[1] and adv[0] - adv[1] == pytest.approx((0 - (-0.075)) / (np.std([0, 0.5, -1, 0.2]) + 1e-6), abs=1e-6)


# -- 10.5 void ----------------------------------------------------------------------------------
def test_void_judge_simpletir():
    assert is_void_simpletir("```python\nprint(1)")  # no closing fence
    assert not is_void_simpletir("the answer is \\boxed{3}")
    assert not is_void_simpletir("let me run\n```python\nprint(1)\n```")
    assert not is_void_simpletir("```\nprint(1)\n```")
    assert is_void_simpletir("hmm, let me think more about")


def test_void_mask_zeroes_the_whole_trajectory_and_stats_unchanged(example):
    assert void_loss_mask(example).tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    with_filter = build_pipeline({"stages": ["gigpo", {"void_filter": {"void_in_group_stats": True}}]})(example)
    without = build_pipeline({"stages": ["gigpo"]})(example)
    np.testing.assert_array_equal(with_filter.advantages, without.advantages)  # group mean/std unchanged
    assert with_filter.per_trajectory("loss_mask")[3] == [0.0, 0.0]


# -- 10.6 turn spans -------------------------------------------------------------------------
def test_advantage_constant_within_turn_and_zero_on_observations():
    spans = [(3, 6), (8, 12), (12, 14)]  # turns 1 and 2 are adjacent (no observation between)
    values = [0.7, -0.2, -0.2]
    tok = broadcast_to_tokens(values, spans, 16)
    ids = token_turn_ids(spans, 16)
    for t, (s, e) in enumerate(spans):
        assert (tok[s:e] == values[t]).all()
    assert (tok[ids < 0] == 0).all() and (ids[[0, 1, 2, 6, 7, 14, 15]] == -1).all()
    # equal adjacent advantages: still two turns, two ratios
    assert ids[11] == 1 and ids[12] == 2
    new = np.zeros(16)
    old = np.zeros(16)
    new[8:12], new[12:14] = 0.1, -0.3
    ratio = turn_level_ratio(new, old, ids)
    assert ratio[8:12] == pytest.approx(np.exp(0.1)) and ratio[12:14] == pytest.approx(np.exp(-0.3))
    assert (ratio[ids < 0] == 1).all()


def test_pipeline_outputs_one_row_per_turn_even_when_equal(example):
    out = build_pipeline({"method": "grpo"})(example)  # GRPO: every turn of a trajectory has equal advantage
    assert [len(r) for r in out.per_trajectory()] == [2, 3, 3, 2]
    assert out.turn_index.tolist() == [0, 1, 0, 1, 2, 0, 1, 2, 0, 1]


# -- 10.7 TEMPO (turn-level) --------------------------------------------------------------------
def toy_tempo() -> TurnBatch:
    return flat([0] * 12, np.repeat([0, 1, 2, 3], 3), [0, 1, 2] * 4, np.zeros(12),
                branch_key=list("ABCABDAEFAEG"), outcome=np.repeat([1.0, 0.0, 1.0, 1.0], 3))


def test_tempo_toy_and_properties():
    b = toy_tempo()
    adv = tempo(b).reshape(4, 3)
    np.testing.assert_allclose(adv, [[0.577, 0.0, 1.732], [-1.732, -2.309, -2.887], [0.577, 1.155, 0.577],
                                     [0.577, 1.155, 0.577]], atol=1e-3)
    r = zscore(b.outcome, b.traj_group, 1, norm=Norm(ddof=0, var_eps=0.0))[b.traj]  # r̃ (population std)
    delta = (tempo(b) - r).reshape(4, 3)
    assert delta[:, 0] == pytest.approx(np.zeros(4))  # "A" has a single child path: δ = 0
    np.testing.assert_allclose(delta.sum(axis=1), r.reshape(4, 3)[:, 0] - 0.0)  # Σδ = r̃ − V(root), V(root) = 0
