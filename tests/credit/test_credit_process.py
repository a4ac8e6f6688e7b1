"""SIOP (answer-consensus information gain), MAPO (judge-score mixed advantage) and MatchTIR
(tool-call matching, dual-level advantage): hand-worked
examples, equivalence with the per-turn Python reference on random batches, degenerate inputs and
the pipeline / CLI plumbing (docs/credit.md#siop, #mapo)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from credit_worked_example import gold_logp, trajectories
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_batches import draw_rows
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.credit import (
    LookupScorer,
    TurnBatch,
    answer_clusters,
    build_pipeline,
    information_gain,
    mapo,
    match_tool_calls,
    matchtir,
    matchtir_turn_rewards,
    normalise_answer,
    optimal_assignment,
    siop,
    siop_rewards,
    tool_similarity,
)
from agentgym.credit.pipeline import Mapo, Pipeline, Siop, siop_contexts
from agentgym.credit.process import greedy_assignment, sinkhorn_plan
from agentgym.credit.reference import records, ref_mapo, ref_matchtir, ref_siop
from agentgym.store import read_jsonl

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ELLS = [-3.0, -2.0, -1.5, -1.0, -0.5, -0.25]


def flat(values):
    return np.asarray([x for row in values for x in row], dtype=np.float64)


# -- answer clusters ----------------------------------------------------------------------------
def test_answer_clusters_normalised_exact_match_frequency_and_reference():
    answers = [" Paris", "paris.", "Lyon", None, "  ", "PARIS", "lyon", "Nice"]
    groups = [0, 0, 0, 0, 0, 0, 0, 1]
    q, refs, codes = answer_clusters(answers, groups)
    # group 0: 5 answered (None and blank are not answers): Paris ×3, Lyon ×2
    assert q.tolist() == [0.6, 0.6, 0.4, 0.0, 0.0, 0.6, 0.4, 1.0]
    assert refs == ["Paris", "Paris", "Lyon", None, None, "Paris", "Lyon", "Nice"]
    assert codes[0] == codes[1] == codes[5] != codes[2] == codes[6] and codes[3] == codes[4] == -1
    assert normalise_answer("The  Eiffel-Tower!") == "the eiffel tower"


def test_answer_clusters_custom_equivalence_is_greedy_against_the_cluster_head():
    # "a" ~ "ab" and "ab" ~ "b", but "a" !~ "b": greedy against the head keeps "b" out of "a"'s cluster
    def overlaps(x, y):
        return bool(set(x) & set(y))

    q, refs, _ = answer_clusters(["a", "ab", "b"], [0, 0, 0], equivalent=overlaps)
    np.testing.assert_allclose(q, [2 / 3, 2 / 3, 1 / 3])
    assert refs == ["a", "a", "b"]


def test_answer_clusters_leave_out_excluded_trajectories():
    q, refs, _ = answer_clusters(["x", "x", "y"], [0, 0, 0], include=np.array([True, False, True]))
    assert q.tolist() == [0.5, 0.0, 0.5] and refs == ["x", None, "y"]


# -- SIOP ---------------------------------------------------------------------------------------
ANSWERS = {"t1": "Paris", "t2": "paris.", "t3": "Lyon", "t4": None}
# log-prob of each trajectory's cluster reference answer, prompt-only first, then after every turn
REF_LOGP = {"t1": [-2.0, -0.3, -0.1], "t2": [-2.0, -1.6, -0.25, -0.2], "t3": [-3.0, -2.5, -1.0, -0.5],
            "t4": [-2.0, -0.3, -0.2]}


def siop_batch():
    trajs = trajectories()
    for t in trajs:
        t["turns"][-1]["answer"] = ANSWERS[t["traj_id"]]
    return TurnBatch.from_trajectories(trajs).with_ref_logp([REF_LOGP[t] for t in ("t1", "t2", "t3", "t4")])


def test_siop_worked_example():
    b = siop_batch()
    q, refs, _ = answer_clusters(b.answers, b.traj_group)
    np.testing.assert_allclose(q, [2 / 3, 2 / 3, 1 / 3, 0.0])
    assert refs == ["Paris", "Paris", "Lyon", None]
    # r_t = q·(ℓ_t − ℓ_{t−1}), + (1 − λ)·q on the last turn; eps = 0 keeps the arithmetic exact
    r = siop_rewards(b, q, lam=0.5, eps=0.0)
    expected = [1.7 * 2 / 3, 0.2 * 2 / 3 + 1 / 3, 0.4 * 2 / 3, 1.35 * 2 / 3, 0.05 * 2 / 3 + 1 / 3,
                0.5 / 3, 1.5 / 3, 0.5 / 3 + 1 / 6, 0.0, 0.0]
    np.testing.assert_allclose(r, expected, atol=1e-12)
    # pooled over the group's 10 turn rewards: mean 0.41333, unbiased std 0.36488; γ = 1 suffix sums
    adv = b.per_trajectory(siop(b, q, eps=0.0))
    want = {0: [2.1194, 0.1462], 1: [0.8039, 1.2059, -0.1279], 2: [-0.6578, 0.0183, -0.2193],
            3: [-2.2656, -1.1328]}
    for i, row in want.items():
        np.testing.assert_allclose(adv[i], row, atol=1e-4)


def test_siop_with_the_gold_answer_and_q_one_is_igpo_information_gain():
    """SIOP's ``siop_use_gold_ref``: reference = gold, q = 1 ⇒ the non-final rewards are IGPO's IG exactly."""
    ells = gold_logp()
    ells_t = [[*e, e[-1] + 0.125] for e in ells]  # plus ℓ_T, the context after the answer turn
    b = TurnBatch.from_trajectories(trajectories(), gold_logp=ells).with_ref_logp(ells_t)
    r = siop_rewards(b, np.ones(b.n_traj), lam=1.0, eps=0.0)
    ig = information_gain(b)
    body = ~b.is_last
    np.testing.assert_array_equal(r[body], ig[body])
    np.testing.assert_allclose(r[b.is_last], 0.125, atol=1e-12)  # ℓ_T − ℓ_{T−1}; λ = 1: no consensus bonus
    # eps = 1e-8 (the released default) moves each term by under 1e-7 here
    np.testing.assert_allclose(siop_rewards(b, np.ones(b.n_traj), lam=1.0)[body], ig[body], atol=1e-7)


def test_siop_nonfinite_log_probs_give_zero_terms_and_one_turn_trajectories_only_the_bonus():
    b = TurnBatch.from_arrays(group_id=[0] * 5, traj_id=[0, 0, 0, 1, 2], turn_idx=[0, 1, 2, 0, 0],
                              reward=[0] * 5, ref_logp=[np.nan, -1.0, -0.5, -1.0, -np.inf],
                              ref_logp0=[-2.0, -2.0, -2.0, -3.0, -3.0])
    r = siop_rewards(b, np.array([1.0, 0.5, 0.25]), eps=0.0)
    # traj 0: both terms touching the NaN are 0; the last gets 0.5 + 0.5·1; traj 1/2: one turn → (1 − λ)·q only
    np.testing.assert_allclose(r, [0.0, 0.0, 0.5 + 0.5, 0.25, 0.125])
    assert np.isfinite(siop(b, np.array([1.0, 0.5, 0.25]))).all()


def test_siop_huge_and_missing_inputs_are_clear_errors():
    b = TurnBatch.from_arrays(group_id=[0, 0, 0, 0], traj_id=[0, 0, 1, 1], turn_idx=[0, 1, 0, 1], reward=[0] * 4,
                              ref_logp=[-1e300, -1.0, -1.0, -1.0], ref_logp0=[-1.0] * 4)
    with pytest.raises(ValueError, match="too large to normalise"):
        siop(b, np.ones(2), eps=0.0)
    assert np.isfinite(siop(b, np.ones(2))).all()  # eps > 0 bounds every term by log(1/eps)
    with pytest.raises(ValueError, match="ref_logp"):
        siop(TurnBatch.from_trajectories(trajectories()), np.ones(4))
    with pytest.raises(ValueError, match="one value per trajectory"):
        siop_rewards(b, np.ones(3))
    empty = TurnBatch.from_trajectories([]).with_ref_logp([])
    assert siop(empty, np.zeros(0)).shape == (0,)


def test_siop_stage_scores_each_trajectory_against_its_cluster_reference():
    trajs = trajectories()
    for t in trajs:
        t["turns"][-1]["answer"] = ANSWERS[t["traj_id"]]
    scorer = LookupScorer()
    seen = []
    orig = scorer.score

    def spy(contexts, answers):
        seen.extend(answers)
        return orig(contexts, answers)

    scorer.score = spy
    out = build_pipeline({"method": "siop"})(trajs, scorer=scorer)
    assert set(seen) == {"Paris", "Lyon"} and seen.count("Lyon") == 4  # t3: T + 1 = 4 contexts, t4: none
    # the same numbers from the batch built by hand with the scorer's values
    ells = [[orig([c], [ref])[0] for c in siop_contexts(t)] if ref else [np.nan] * 3
            for t, ref in zip(trajs, ["Paris", "Paris", "Lyon", None], strict=True)]
    b = TurnBatch.from_trajectories(trajs).with_ref_logp(ells)
    q, _, _ = answer_clusters(b.answers, b.traj_group)
    np.testing.assert_allclose(out.advantages, siop(b, q))
    assert out.metrics["credit/siop_answered_share"] == 0.75
    with pytest.raises(ValueError, match="scorer"):
        build_pipeline({"method": "siop"})(trajs)
    assert build_pipeline({"method": "siop"}).needs_model


def test_siop_contexts_end_after_the_action_or_after_the_observation():
    t = {"turns": [{"observation": "o0", "action": "a0"}, {"observation": "o1", "action": "a1"}],
         "final_observation": "end"}
    assert siop_contexts(t) == ["o0", "o0\na0", "o0\na0\no1\na1"]  # SIOP's code: before the env replies
    assert siop_contexts(t, "after_observation") == ["o0", "o0\na0\no1", "o0\na0\no1\na1\nend"]
    assert siop_contexts({"turns": []}) == []
    with pytest.raises(ValueError, match="probe"):
        siop_contexts(t, "after_thought")
    with pytest.raises(ValueError, match="probe"):
        build_pipeline({"method": "siop", "probe": "middle"})(siop_batch())


def test_siop_stage_takes_a_callable_equivalence():
    trajs = trajectories()
    for t, a in zip(trajs, ["Paris", "the city of Paris", "Lyon", None], strict=True):
        t["turns"][-1]["answer"] = a
    b = TurnBatch.from_trajectories(trajs).with_ref_logp([REF_LOGP[t] for t in ("t1", "t2", "t3", "t4")])
    out = Pipeline([Siop(equivalence=lambda x, y: x.lower() in y.lower() or y.lower() in x.lower())])(b)
    np.testing.assert_allclose(out.advantages, siop(b, np.array([2 / 3, 2 / 3, 1 / 3, 0.0])))
    with pytest.raises(ValueError, match="equivalence"):
        Pipeline([Siop(equivalence="nli")])(b)


@st.composite
def siop_batches(draw):
    trajs, refs = [], []
    for g in range(draw(st.integers(1, 3))):
        for i in range(draw(st.integers(1, 5))):
            n = draw(st.integers(1, 4))
            turns = [{"index": k, "observation": "o", "action": "a", "reward": 0.0} for k in range(n)]
            turns[-1]["answer"] = draw(st.sampled_from([None, "Paris", "paris!", "Lyon", " ", "Nice"]))
            trajs.append({"traj_id": f"{g}-{i}", "group_id": f"q{g}", "turns": turns, "outcome": 0.0,
                          "failure": draw(st.sampled_from([None, None, None, "infra"]))})
            refs.append([draw(st.sampled_from(ELLS)) if draw(st.integers(0, 14)) else float("nan")
                         for _ in range(n + 1)])
    return TurnBatch.from_trajectories(trajs).with_ref_logp(refs)


@SETTINGS
@given(siop_batches(), st.sampled_from([0.5, 0.0, 1.0]), st.sampled_from([1e-8, 0.0]),
       st.sampled_from([1.0, 0.9]), st.booleans())
def test_siop_matches_reference(b, lam, eps, gamma, std):
    q, _, _ = answer_clusters(b.answers, b.traj_group, include=~b.infra)
    got = siop(b, q, lam=lam, eps=eps, gamma=gamma, std=std)
    np.testing.assert_allclose(got, flat(ref_siop(records(b), lam=lam, eps=eps, gamma=gamma, std=std)), atol=1e-8)


# -- MAPO ---------------------------------------------------------------------------------------
SCORES = {"a": [1.0, 0.0, 1.0], "b": [0.0, 1.0], "c": [1.0, 1.0, 1.0]}


def mapo_trajs():
    return [{"traj_id": k, "group_id": "g", "outcome": 0.0, "info": {"turn_scores": v},
             "turns": [{"index": i, "observation": "o", "action": "x", "reward": 0.0} for i in range(len(v))]}
            for k, v in SCORES.items()]


def test_mapo_worked_example():
    """G: a (2, 1, 1), b (1, 1), c (3, 2, 1). Turn 0: {2, 1, 3} → (0, −1, 1); turn 1: {1, 1, 2} → ∓0.5774 / 1.1547;
    turn 2: {1, 1} → 0. Batch: mean 1.5, unbiased std √(4/7) = 0.7559 → ±0.6614, 1.9843. λ = 0.5."""
    out = build_pipeline({"method": "mapo"})(mapo_trajs())
    want = [[0.330719, -0.619394, -0.330719], [-0.830719, -0.619394], [1.492157, 0.908069, -0.330719]]
    for got, row in zip(out.per_trajectory(), want, strict=True):
        np.testing.assert_allclose(got, row, atol=1e-5)
    b = TurnBatch.from_trajectories(mapo_trajs()).with_turn_scores(list(SCORES.values()))
    np.testing.assert_allclose(mapo(b, lam=1.0)[[0, 3, 5]], [0.0, -1.0, 1.0], atol=1e-5)  # turn-level only
    g = np.array([2, 1, 1, 1, 1, 3, 2, 1.0])
    np.testing.assert_allclose(mapo(b, lam=0.0), (g - 1.5) / (np.sqrt(4 / 7) + 1e-6))  # batch-level only


def test_mapo_score_sources_judge_callable_and_info_key():
    trajs = mapo_trajs()
    by_info = build_pipeline({"method": "mapo"})(trajs).advantages
    judge = Pipeline([Mapo(judge=lambda t: t["info"]["turn_scores"])])(trajs).advantages
    np.testing.assert_array_equal(by_info, judge)
    for t in trajs:
        t["info"] = {"judge": t["info"]["turn_scores"]}
    np.testing.assert_array_equal(build_pipeline({"method": "mapo", "score_key": "judge"})(trajs).advantages, by_info)
    with pytest.raises(ValueError, match="info\\['turn_scores'\\]"):
        build_pipeline({"method": "mapo"})(trajs)
    with pytest.raises(ValueError, match="judge must be a callable"):
        build_pipeline({"method": "mapo", "judge": "gpt"})(trajs)


def test_mapo_bad_scores_are_clear_errors():
    trajs = mapo_trajs()
    trajs[1]["info"]["turn_scores"] = [0.0, float("nan")]
    with pytest.raises(ValueError, match="trajectory 'b' turn 1 has score nan"):
        build_pipeline({"method": "mapo"})(trajs)
    trajs[1]["info"]["turn_scores"] = [0.0]
    with pytest.raises(ValueError, match="1 turn scores for 2 turns"):
        build_pipeline({"method": "mapo"})(trajs)
    trajs[1]["info"]["turn_scores"] = [0.0, 1e200]
    with pytest.raises(ValueError, match="too large to normalise"):
        build_pipeline({"method": "mapo"})(trajs)
    with pytest.raises(ValueError, match="turn_score"):
        mapo(TurnBatch.from_trajectories(trajs))
    with pytest.raises(ValueError, match="lam"):
        mapo(TurnBatch.from_trajectories(trajs).with_turn_scores([[0.0] * 3, [0.0] * 2, [0.0] * 3]), lam=2.0)
    empty = TurnBatch.from_trajectories([]).with_turn_scores([])
    assert mapo(empty).shape == (0,)


def test_mapo_infra_failures_need_no_scores_and_are_left_out():
    trajs = mapo_trajs()
    bad = {**mapo_trajs()[0], "traj_id": "z", "failure": "infra", "info": {}}
    out = build_pipeline({"method": "mapo"})([*trajs, bad])
    np.testing.assert_allclose(out.advantages[:8], build_pipeline({"method": "mapo"})(trajs).advantages)
    assert out.per_trajectory("loss_mask")[3] == [0.0, 0.0, 0.0]


@st.composite
def scored_batches(draw):
    rows = draw_rows(draw, 5, score=st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0]))
    return TurnBatch.from_arrays(**{k: v for k, v in rows.items() if k != "score"}, reward=np.zeros(len(rows["score"])),
                                 turn_score=rows["score"])


@SETTINGS
@given(scored_batches(), st.sampled_from([1.0, 0.9]), st.sampled_from([0.5, 0.0, 1.0, 0.3]), st.booleans())
def test_mapo_matches_reference(b, gamma, lam, std):
    got = mapo(b, gamma=gamma, lam=lam, std=std)
    np.testing.assert_allclose(got, flat(ref_mapo(records(b), gamma=gamma, lam=lam, std=std)), atol=1e-8)


def test_cli_recomputes_mapo_and_refuses_siop(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "trajectories.jsonl").write_text("".join(json.dumps(t) + "\n" for t in mapo_trajs()))
    cfg = tmp_path / "mapo.yaml"
    cfg.write_text("stages:\n  - mapo: {gamma: 1.0, lam: 0.5}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["advantages", str(run), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    got = np.concatenate([r["advantages"] for r in read_jsonl(run / "advantages.jsonl")])
    np.testing.assert_allclose(got, build_pipeline({"method": "mapo"})(mapo_trajs()).advantages)
    cfg.write_text("method: siop\n")
    result = runner.invoke(app, ["advantages", str(run), "--config", str(cfg)])
    assert result.exit_code == 2 and "reference-answer" in result.output


# -- MatchTIR -----------------------------------------------------------------------------------
GOLD = [{"name": "find_contacts", "arguments": {"name": "Ann"}},
        {"name": "create_event", "arguments": {"title": "Sync", "when": "Mon"}}]


def call(tool, /, **arguments):
    return {"name": tool, "arguments": arguments}


def matchtir_trajs():
    a = [[call("find_contacts", name="Ann")], [call("create_event", title="Sync", when="Tue")], []]
    b = [[call("find_contacts", name="Bob"), call("create_event", title="Sync")], []]
    out = []
    for tid, calls, reward in (("A", a, 1.0), ("B", b, 0.0)):
        turns = [{"index": k, "observation": "o", "action": "x", "tool_calls": c,
                  "reward": reward if k == len(calls) - 1 else 0.0} for k, c in enumerate(calls)]
        out.append({"traj_id": tid, "group_id": "g", "turns": turns, "outcome": reward, "info": {"gold_trace": GOLD}})
    return out


def test_tool_similarity_worked_values():
    assert tool_similarity(call("find_contacts", name="Ann"), GOLD[0]) == 1.0
    assert tool_similarity(call("FIND_CONTACTS", name="Bob"), GOLD[0]) == pytest.approx(2 / 3)  # name, keys, no value
    assert tool_similarity(call("create_event", title="Sync", when="Tue"), GOLD[1]) == 0.75
    assert tool_similarity(call("create_event", title="Sync"), GOLD[1]) == 0.625  # (1 + 1/2 + 1) / 4
    assert tool_similarity({"name": "create_event", "arguments": '{"title": "Sync", "when": "Mon"}'}, GOLD[1]) == 1.0
    assert tool_similarity(call("delete_event", title="Sync"), GOLD[1]) == 0.0


def test_optimal_assignment_beats_the_released_greedy_one():
    s = np.array([[0.9, 0.8], [0.85, 0.0]])
    assert greedy_assignment(s).tolist() == [0, -1]  # takes 0.9 first, then only a 0 is left: total 0.9
    assert optimal_assignment(s).tolist() == [1, 0]  # 0.8 + 0.85 = 1.65
    assert optimal_assignment(s.T).tolist() == [1, 0]
    assert optimal_assignment(np.array([[0.2, 0.7, 0.1]])).tolist() == [1]
    assert optimal_assignment(np.array([[0.2], [0.7], [0.1]])).tolist() == [-1, 0, -1]


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_optimal_assignment_equals_brute_force(n, m, seed):
    s = np.random.default_rng(seed).integers(0, 4, (n, m)) / 3.0
    a = optimal_assignment(s)
    assert sorted(a[a >= 0].tolist()) == sorted(set(a[a >= 0].tolist())) and (a >= 0).sum() == min(n, m)
    if n <= m:
        best = max(sum(s[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    else:
        best = max(sum(s[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
    assert sum(s[i, a[i]] for i in range(n) if a[i] >= 0) == pytest.approx(best, abs=1e-12)


def test_soft_assignment_is_the_entropic_transport_plan():
    s = np.array([[1.0, 0.2], [0.1, 0.9], [0.5, 0.5]])
    plan = sinkhorn_plan(s, reg=0.1)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 3, atol=1e-9)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 2, atol=1e-9)
    # the Sinkhorn form diag(u)·exp(S/reg)·diag(v): log T − S/reg is a row term plus a column term
    resid = np.log(plan) - s / 0.1
    np.testing.assert_allclose(resid - resid[:, :1] - resid[:1, :] + resid[0, 0], 0.0, atol=1e-9)
    preds = [call("find_contacts", name="Ann"), call("create_event", title="Sync", when="Tue")]
    soft = match_tool_calls(preds, GOLD, assignment="soft")
    assert 0 < soft[1] < soft[0] <= 0.5 + 1e-9  # each call carries mass 1/P = 1/2
    assert match_tool_calls(preds, [], assignment="soft").tolist() == [0.0, 0.0]
    assert match_tool_calls([], GOLD).shape == (0,)
    with pytest.raises(ValueError, match="assignment"):
        match_tool_calls(preds, GOLD, assignment="km")
    with pytest.raises(ValueError, match="gold tool call must be a mapping"):
        match_tool_calls(preds, ["find_contacts(Ann)"])
    with pytest.raises(ValueError, match="predicted tool call must be a mapping"):
        match_tool_calls([{"arguments": {}}], GOLD)


def test_matchtir_worked_example():
    """A: calls score 1.0 and 0.75, answer reward 1 → r = (1, 0.75, 1); B: two calls in turn 0
    (2/3 and 0.625, mean 0.6458), answer reward 0 → r = (0.6458, 0). Totals 2.75 vs 0.6458 → ±1/√2;
    γ = 0.9 returns (2.485, 1.65, 1.0) vs (0.6458, 0.0): ±1/√2 per turn position, turn 2 alone → 0."""
    trajs = matchtir_trajs()
    rewards = matchtir_turn_rewards([u["tool_calls"] for u in trajs[1]["turns"]], GOLD)
    np.testing.assert_allclose(rewards, [(2 / 3 + 0.625) / 2, 0.0])
    out = build_pipeline({"method": "matchtir"})(trajs)
    h = 1 / np.sqrt(2)
    np.testing.assert_allclose(flat(out.per_trajectory()), [h, h, h / 2, -h, -h], atol=1e-5)
    assert out.metrics["credit/matchtir_match_mean"] == pytest.approx((1 + 0.75 + 0 + (2 / 3 + 0.625) / 2 + 0) / 5)
    b = TurnBatch.from_trajectories(trajs)
    np.testing.assert_allclose(matchtir(b, rewards=np.array([1, 0.75, 1, (2 / 3 + 0.625) / 2, 0])), out.advantages)


def test_matchtir_inputs_and_errors():
    trajs = matchtir_trajs()
    del trajs[0]["info"]["gold_trace"]
    with pytest.raises(ValueError, match="gold trace"):
        build_pipeline({"method": "matchtir"})(trajs)
    with pytest.raises(ValueError, match="assignment"):
        build_pipeline({"method": "matchtir", "assignment": "optimal"})(matchtir_trajs())
    b = TurnBatch.from_trajectories(matchtir_trajs())
    with pytest.raises(ValueError, match="turn_score"):
        matchtir(b)
    with pytest.raises(ValueError, match="'B' turn 1 has reward nan"):
        matchtir(b, rewards=np.array([1, 0, 0, 0, np.nan]))
    with pytest.raises(ValueError, match="too large"):
        matchtir(b, rewards=np.array([1e200, 0, 0, 0, 0]))
    bare = TurnBatch.from_arrays(group_id=[0] * 5, traj_id=[0, 0, 0, 1, 1], turn_idx=[0, 1, 2, 0, 1],
                                 reward=[0, 0, 1, 0, 0], turn_score=[1, 0.75, 0, (2 / 3 + 0.625) / 2, 0])
    np.testing.assert_allclose(build_pipeline({"method": "matchtir"})(bare).advantages,
                               build_pipeline({"method": "matchtir"})(matchtir_trajs()).advantages, atol=1e-12)
    assert matchtir(TurnBatch.from_trajectories([]), rewards=np.zeros(0)).shape == (0,)


@SETTINGS
@given(scored_batches(), st.sampled_from([0.9, 1.0]), st.sampled_from([0.5, 0.0, 1.0]), st.booleans())
def test_matchtir_matches_reference(b, gamma, mix, std):
    got = matchtir(b, gamma=gamma, mix=mix, std=std)
    np.testing.assert_allclose(got, flat(ref_matchtir(records(b), gamma=gamma, mix=mix, std=std)), atol=1e-8)


def test_toolworld_gold_trace_drives_matchtir_end_to_end(tmp_path):
    runner = CliRunner()
    run = tmp_path / "tw"
    result = runner.invoke(app, ["rollout", "--env", "agentgym/ToolWorld-Easy-v0", "--policy", "scripted",
                                 "--policy-kwarg", "epsilon=0.4", "--tasks", "2", "--group-size", "4",
                                 "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    trajs = list(read_jsonl(run / "trajectories.jsonl"))
    assert all(t["info"]["gold_trace"] and {"name", "arguments"} <= set(t["info"]["gold_trace"][0]) for t in trajs)
    for t in trajs:  # a turn whose calls follow the gold trace in order earns 1 per call
        calls = [u["tool_calls"] for u in t["turns"]]
        r = matchtir_turn_rewards(calls, t["info"]["gold_trace"])
        for k, c in enumerate(calls):
            if c and all({"name": x["name"], "arguments": x["arguments"]} in t["info"]["gold_trace"] for x in c):
                assert r[k] == pytest.approx(1.0)
    cfg = tmp_path / "m.yaml"
    cfg.write_text("stages:\n  - matchtir: {assignment: soft}\n")
    result = runner.invoke(app, ["advantages", str(run), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    got = np.concatenate([r["advantages"] for r in read_jsonl(run / "advantages.jsonl")])
    np.testing.assert_allclose(got, build_pipeline({"method": "matchtir", "assignment": "soft"})(trajs).advantages)
    assert np.abs(got).max() > 0


def test_degenerate_groups_give_zero():
    """No answer anywhere (SIOP), equal scores everywhere (MAPO, MatchTIR): no signal, advantage 0."""
    b = siop_batch()
    b.answers[:] = None
    q, _, _ = answer_clusters(b.answers, b.traj_group)
    assert not q.any() and not siop(b, q).any()
    flat_scores = TurnBatch.from_trajectories(mapo_trajs()).with_turn_scores([[0.5] * 3, [0.5] * 2, [0.5] * 3])
    assert not mapo(flat_scores, gamma=0.0).any()
    assert not matchtir(flat_scores, rewards=np.zeros(8)).any()


@SETTINGS
@given(scored_batches(), st.randoms())
def test_reordering_trajectories_reorders_the_credit(b, rnd):
    """MAPO and MatchTIR do not depend on the order in which rollouts arrive."""
    perm = list(range(b.n_traj))
    rnd.shuffle(perm)
    rows = [r for j in perm for r in range(int(b.starts[j]), int(b.ends[j]))]
    shuffled = TurnBatch.from_arrays(
        group_id=b.traj_group[b.traj][rows], traj_id=[f"{perm.index(int(b.traj[r])):04d}" for r in rows],
        turn_idx=b.turn_index[rows], reward=np.zeros(len(rows)), turn_score=b.turn_score[rows], infra=b.infra[b.traj][rows])
    for fn in (mapo, matchtir):
        np.testing.assert_allclose(fn(shuffled), fn(b)[rows], atol=1e-12)
