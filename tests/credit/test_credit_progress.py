"""SPA-RL (progress estimator + grounding) and AEM (response-surprisal advantage modulation):
hand-worked examples, equivalence with the per-turn Python reference and with the primal
least-squares solution on random batches, NaN / empty / huge inputs, and the pipeline / CLI
plumbing (docs/credit.md#spa-rl, #aem)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_batches import draw_rows
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.credit import (
    TurnBatch,
    aem,
    aem_weights,
    build_pipeline,
    fit_progress,
    response_surprisal,
    spa,
    spa_rewards,
    text_features,
)
from agentgym.credit.reference import records, ref_aem, ref_spa
from agentgym.store import read_jsonl

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flat(values):
    return np.asarray([x for row in values for x in row], dtype=np.float64)


def traj(tid, group, outcome, turns, failure=None):
    """``turns``: (action, log-probs or None, parse_error or None) per turn; reward on the last."""
    out = []
    for k, (action, lp, err) in enumerate(turns):
        out.append({"index": k, "observation": f"obs {k}", "action": action, "parse_error": err,
                    "action_logprobs": lp, "reward": outcome if k == len(turns) - 1 else 0.0})
    return {"traj_id": tid, "group_id": group, "outcome": outcome, "turns": out, "failure": failure}


# -- the progress estimator ----------------------------------------------------------------------
def test_fit_progress_worked_example():
    """A: one turn, h = 1, R = 1; B: one turn, h = 0, R = 0. S = [[1, 1], [0, 1]], ridge 1:
    θ = Sᵀ(SSᵀ + I)⁻¹R = Sᵀ·[[3, 1], [1, 2]]⁻¹·[1, 0] = Sᵀ·[0.4, −0.2] = (w 0.4, b 0.2) → c = 0.6, 0.2."""
    b = TurnBatch.from_arrays(group_id=[0, 0], traj_id=["A", "B"], turn_idx=[0, 0], reward=[1.0, 0.0])
    c, fit = fit_progress(b, np.array([[1.0], [0.0]]), ridge=1.0)
    np.testing.assert_allclose(c, [0.6, 0.2])
    assert fit["spa_fit_rmse"] == pytest.approx(math.sqrt((0.4**2 + 0.2**2) / 2))


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 20), st.sampled_from([1e-3, 1.0, 10.0]), st.integers(0, 2**31))
def test_fit_progress_equals_the_primal_least_squares_solution(n_traj, dim, ridge, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, n_traj)
    tid = np.repeat(np.arange(n_traj), lengths)
    turn = np.concatenate([np.arange(k) for k in lengths])
    reward = rng.random(len(tid))
    b = TurnBatch.from_arrays(group_id=tid % 3, traj_id=tid, turn_idx=turn, reward=reward)
    h = rng.normal(size=(len(tid), dim))
    c, _ = fit_progress(b, h, ridge=ridge)
    x = np.concatenate([h, np.ones((len(tid), 1))], axis=1)
    s = np.stack([x[tid == i].sum(axis=0) for i in range(n_traj)])  # Σ_t [h_t, 1] per trajectory
    theta = np.linalg.solve(s.T @ s + ridge * np.eye(dim + 1), s.T @ b.outcome)  # (SᵀS + λI)⁻¹SᵀR
    np.testing.assert_allclose(c, x @ theta, atol=1e-8)


def test_fit_progress_recovers_exact_contributions_and_sums_to_the_outcome():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, 200)
    tid = np.repeat(np.arange(200), lengths)
    h = rng.normal(size=(len(tid), 4))
    true_c = h @ np.array([0.5, -1.0, 0.25, 2.0]) + 0.1
    b = TurnBatch.from_arrays(group_id=tid // 4, traj_id=tid, turn_idx=np.concatenate([np.arange(k) for k in lengths]),
                              reward=true_c)  # the outcome is the sum of the true contributions
    c, fit = fit_progress(b, h, ridge=1e-9)
    np.testing.assert_allclose(c, true_c, atol=1e-6)
    assert fit["spa_fit_rmse"] < 1e-6


def test_fit_progress_leaves_out_excluded_and_rejects_bad_inputs():
    b = TurnBatch.from_arrays(group_id=[0, 0, 0], traj_id=["A", "B", "C"], turn_idx=[0, 0, 0],
                              reward=[1.0, 0.0, 5.0], infra=[False, False, True])
    h = np.array([[1.0], [0.0], [7.0]])
    c, _ = fit_progress(b, h)
    np.testing.assert_allclose(c, [0.6, 0.2, 0.0])  # C (infra) is neither fitted nor credited
    with pytest.raises(ValueError, match="ridge must be > 0"):
        fit_progress(b, h, ridge=0.0)
    with pytest.raises(ValueError, match="shape"):
        fit_progress(b, h[:2])
    with pytest.raises(ValueError, match="trajectory 'B' turn 0 has nan"):
        fit_progress(b, np.array([[1.0], [np.nan], [0.0]]))
    with pytest.raises(ValueError, match="trajectory 'A' turn 0 has 1e\\+200"):
        fit_progress(b, np.array([[1e200], [0.0], [0.0]]))
    empty = TurnBatch.from_trajectories([])
    c, fit = fit_progress(empty, np.zeros((0, 3)))
    assert c.shape == (0,) and fit["spa_fit_rmse"] == 0.0


def test_text_features_are_stable_hashed_word_counts():
    t = traj("a", "g", 1.0, [("push left", None, None), ("", None, None)])
    f = text_features(t, dim=64)
    assert f.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), [1.0, 1.0])
    assert (f[0, 32:] > 0).sum() == 2 and (f[1, 32:] == 0).all()  # "push", "left"; an empty action
    np.testing.assert_array_equal(f, text_features(t, dim=64))
    with pytest.raises(ValueError, match="dim"):
        text_features(t, dim=1)


# -- SPA-RL advantage ----------------------------------------------------------------------------
def spa_batch():
    trajs = [traj("a", "g", 1.0, [("x", None, None), ("y", None, None)]),
             traj("b", "g", 0.0, [("x", None, "bad"), ("z", None, None)])]
    return TurnBatch.from_trajectories(trajs)


def test_spa_worked_example():
    """c: a (0.2, 0.6), b (0.1, −0.1); b's first action did not execute; grounding 0.5 → r: a (0.7, 1.1),
    b (0.1, 0.4). Pooled: mean 0.575, unbiased std √(0.5475/3) = 0.427200 → z: a (0.292603, 1.228932),
    b (−1.111890, −0.409645); returns (γ = 1): a (1.521535, 1.228932), b (−1.521535, −0.409645)."""
    b = spa_batch()
    c = np.array([0.2, 0.6, 0.1, -0.1])
    np.testing.assert_allclose(spa_rewards(b, c), [0.7, 1.1, 0.1, 0.4])
    np.testing.assert_allclose(spa(b, c), [1.521535, 1.228932, -1.521535, -0.409645], atol=1e-5)
    np.testing.assert_allclose(spa(b, c, gamma=0.5)[0], 0.292603 + 0.5 * 1.228932, atol=1e-5)
    np.testing.assert_allclose(spa(b, c, executed=[1, 1, 1, 1], grounding=0.0), spa(b, c, grounding=0.0))


@st.composite
def spa_batches(draw):
    rows = draw_rows(draw, 5, invalid=st.booleans(), contrib=st.sampled_from([0.0, 0.25, -0.5, 1.0, 0.125]))
    contrib = np.asarray(rows.pop("contrib"))
    return TurnBatch.from_arrays(**rows, reward=np.zeros(len(contrib))), contrib


@SETTINGS
@given(spa_batches(), st.sampled_from([0.5, 0.0, 1.0]), st.sampled_from([1.0, 0.9]), st.booleans())
def test_spa_matches_reference(bc, grounding, gamma, std):
    b, c = bc
    got = spa(b, c, grounding=grounding, gamma=gamma, std=std)
    rows = b.per_trajectory(c)
    executed = b.per_trajectory(~b.invalid)
    want = ref_spa(records(b), rows, [[bool(x) for x in r] for r in executed], grounding=grounding, gamma=gamma,
                   std=std)
    np.testing.assert_allclose(got, flat(want), atol=1e-8)


def test_spa_bad_inputs_are_clear_errors():
    b = spa_batch()
    with pytest.raises(ValueError, match="trajectory 'b' turn 1 has nan"):
        spa(b, np.array([0.0, 0.0, 0.0, np.nan]))
    with pytest.raises(ValueError, match="trajectory 'a' turn 0 has 1e\\+200"):
        spa(b, np.array([1e200, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="one value per turn row"):
        spa(b, np.zeros(3))
    empty = TurnBatch.from_trajectories([])
    assert spa(empty, np.zeros(0)).shape == (0,)


def test_spa_stage_fits_on_the_batch_and_grounds_on_parse_errors():
    trajs = [traj("a", "g", 1.0, [("left", None, None), ("up", None, None)]),
             traj("b", "g", 0.0, [("jump", None, "no such move"), ("left", None, None)]),
             traj("c", "g", 0.0, [("down", None, None)]),
             traj("d", "g", 0.0, [("up", None, None)], failure="infra")]
    out = build_pipeline({"method": "spa", "ridge": 0.5, "dim": 256})(trajs)
    b = out.batch
    inc = ~b.infra
    feats = np.concatenate([text_features(t, 256) for t in trajs])
    c, _ = fit_progress(b, feats, ridge=0.5, include=inc)
    np.testing.assert_allclose(out.advantages, spa(b, c, include=inc))
    assert out.per_trajectory()[3] == [0.0] and out.per_trajectory("loss_mask")[3] == [0.0]
    assert out.diagnostics["spa_executed_share"] == pytest.approx(4 / 5)
    assert out.metrics["credit/spa_fit_rmse"] >= 0.0
    with pytest.raises(ValueError, match="features must be 'text' or 'model'"):
        build_pipeline({"method": "spa", "features": "bert"})(trajs)
    model = build_pipeline({"method": "spa", "features": "model"})
    assert model.needs_model and not build_pipeline({"method": "spa"}).needs_model
    with pytest.raises(ValueError, match="turn_features"):
        model(trajs)


def test_spa_stage_takes_the_scorers_turn_features():
    trajs = [traj("a", "g", 1.0, [("x", None, None), ("y", None, None)]),
             traj("b", "g", 0.0, [("x", None, None)])]

    class Features:
        def turn_features(self, ts):
            return [np.arange(2 * len(t["turns"]), dtype=float).reshape(-1, 2) for t in ts]

    out = build_pipeline({"method": "spa", "features": "model"})(trajs, scorer=Features())
    b = out.batch
    c, _ = fit_progress(b, np.array([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0]]))
    np.testing.assert_allclose(out.advantages, spa(b, c))

    class Wrong:
        def turn_features(self, ts):
            return [np.zeros((1, 2)) for _ in ts]

    with pytest.raises(ValueError, match="trajectory 0 has 2 turns but features of shape"):
        build_pipeline({"method": "spa", "features": "model"})(trajs, scorer=Wrong())


# -- AEM -----------------------------------------------------------------------------------------
def aem_trajs():
    return [traj("a", "g", 1.0, [("x", [-1.0, -1.0], None)]),
            traj("b", "g", 0.0, [("y", [-2.0], None)]),
            traj("c", "g", 0.0, [("z", [-3.0, -3.0, -3.0], None)])]


def test_response_surprisal_is_the_mean_token_surprisal():
    np.testing.assert_allclose(response_surprisal([[-1.0, -3.0], [-0.5], None, [], [-1.0, float("nan")], [np.inf]]),
                               [2.0, 0.5, np.nan, np.nan, np.inf, np.inf])


def test_aem_worked_example():
    """Surprisal 1, 2, 3 (mean token −log p) → z = −1, 0, 1 (unbiased std 1). β = 0.5:
    w = e^0.5, 1, e^−0.5 = 1.648721, 1, 0.606531. GRPO on outcomes (1, 0, 0): 1.154700, −0.577350,
    −0.577350 → AEM: 1.903775, −0.577350, −0.350180 (the confident success gains, the unsure failure
    loses weight)."""
    out = build_pipeline({"stages": ["grpo", {"aem": {"beta": 0.5}}]})(aem_trajs())
    np.testing.assert_allclose(out.advantages, [1.903775, -0.577350, -0.350180], atol=1e-5)
    np.testing.assert_allclose(out.components["grpo"] + out.components["aem"], out.advantages)
    assert out.diagnostics["aem_weight_max"] == pytest.approx(math.exp(0.5), rel=1e-5)
    b = out.batch
    np.testing.assert_allclose(aem_weights(b, np.array([1.0, 2.0, 3.0]), beta=0.5, clip=0.5),
                               np.exp([0.25, 0.0, -0.25]), rtol=1e-5)  # z clipped to ±0.5


def test_aem_unknown_log_probs_weigh_one_and_bad_ones_are_errors():
    trajs = aem_trajs()
    trajs[2]["turns"][0]["action_logprobs"] = None  # a re-tokenised turn: surprisal unknown
    out = build_pipeline({"stages": ["grpo", "aem"]})(trajs)
    grpo_only = build_pipeline({"method": "grpo"})(trajs).advantages
    # a, b: surprisal 1, 2 → z = ∓0.707107 (unbiased std 0.707107); c keeps its GRPO advantage
    np.testing.assert_allclose(out.advantages, grpo_only * np.exp(-0.2 * np.array([-0.707106, 0.707106, 0.0])),
                               rtol=1e-5)
    assert out.diagnostics["aem_known_share"] == pytest.approx(2 / 3)
    trajs[1]["turns"][0]["action_logprobs"] = [-1.0, float("-inf")]
    with pytest.raises(ValueError, match="trajectory 'b' turn 0 has inf"):
        build_pipeline({"stages": ["grpo", "aem"]})(trajs)
    trajs[1]["turns"][0]["action_logprobs"] = [float("nan")]
    with pytest.raises(ValueError, match="trajectory 'b' turn 0 has inf"):
        build_pipeline({"stages": ["grpo", "aem"]})(trajs)
    trajs[1]["turns"][0]["action_logprobs"] = [-1e200]
    with pytest.raises(ValueError, match="trajectory 'b' turn 0 has 1e\\+200"):
        build_pipeline({"stages": ["grpo", "aem"]})(trajs)
    with pytest.raises(ValueError, match="after an estimator"):
        build_pipeline({"stages": ["aem", "grpo"]})(aem_trajs())
    with pytest.raises(ValueError, match="at least one estimator"):
        build_pipeline({"method": "aem"})
    with pytest.raises(ValueError, match="beta"):
        aem_weights(TurnBatch.from_trajectories([]), np.zeros(0), beta=-1.0)
    empty = TurnBatch.from_trajectories([])
    assert aem(empty, np.zeros(0), np.zeros(0)).shape == (0,)


@st.composite
def aem_batches(draw):
    rows = draw_rows(draw, 4, u=st.sampled_from([0.1, 0.5, 1.0, 2.5, 7.0, float("nan")]),
                     adv=st.sampled_from([-1.0, 0.0, 0.5, 2.0]))
    u, adv = np.asarray(rows.pop("u")), np.asarray(rows.pop("adv"))
    return TurnBatch.from_arrays(**rows, reward=np.zeros(len(u))), u, adv


@SETTINGS
@given(aem_batches(), st.sampled_from([0.0, 0.2, 1.0]), st.sampled_from([3.0, 0.5]))
def test_aem_matches_reference(bua, beta, clip):
    b, u, adv = bua
    got = aem(b, adv, u, beta=beta, clip=clip)
    want = ref_aem(records(b), b.per_trajectory(adv), b.per_trajectory(u), beta=beta, clip=clip)
    np.testing.assert_allclose(got, flat(want), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(aem_batches(), st.sampled_from([0.2, 1.0]), st.sampled_from([3.0, 0.5]))
def test_aem_keeps_every_sign_and_bounds_the_weights(bua, beta, clip):
    b, u, adv = bua
    w = aem_weights(b, u, beta=beta, clip=clip)
    assert (w >= math.exp(-beta * clip) * (1 - 1e-12)).all() and (w <= math.exp(beta * clip) * (1 + 1e-12)).all()
    assert (np.sign(aem(b, adv, u, beta=beta, clip=clip)) == np.sign(adv)).all()
    assert (w[np.isnan(u) | b.infra[b.traj]] == 1.0).all()  # unknown surprisal, infra: untouched


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_recomputes_aem_and_text_spa_and_refuses_model_spa(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    trajs = [*aem_trajs(), traj("d", "g", 0.0, [("w", [-0.5], "bad"), ("x", [-0.1], None)])]
    (run / "trajectories.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trajs))
    runner = CliRunner()
    for cfg_text, cfg in (("stages:\n  - rloo: {}\n  - aem: {beta: 0.3}\n",
                           {"stages": ["rloo", {"aem": {"beta": 0.3}}]}),
                          ("method: spa\ngrounding: 0.5\n", {"method": "spa", "grounding": 0.5})):
        path = tmp_path / "credit.yaml"
        path.write_text(cfg_text)
        result = runner.invoke(app, ["advantages", str(run), "--config", str(path)])
        assert result.exit_code == 0, result.output
        got = np.concatenate([r["advantages"] for r in read_jsonl(run / "advantages.jsonl")])
        np.testing.assert_allclose(got, build_pipeline(cfg)(trajs).advantages)
        assert ("spa fit rmse" if "spa" in cfg_text else "aem known share") in result.output
    path.write_text("method: spa\nfeatures: model\n")
    result = runner.invoke(app, ["advantages", str(run), "--config", str(path)])
    assert result.exit_code == 2 and "features: model" in result.output
