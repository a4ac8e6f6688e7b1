"""Issue 13 items 2–5: non-finite inputs are loud (or masked by request), verl-agent's invalid-
action penalty with its worked case, the documented conventions (autojunk, 0-turn trajectories,
void rules), and IGPO's filler-turn offset with the zero-variance filter the recipes pair it with."""

from __future__ import annotations

import math
import random
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
import yaml
from credit_worked_example import gold_logp, trajectories

from agentgym.credit import (
    TurnBatch,
    a2tgpo,
    anchor_groups,
    build_pipeline,
    gigpo,
    grpo,
    igpo,
    invalid_action_penalty,
    invalid_turn_penalty,
    is_void_simpletir,
    rloo,
    tempo,
)

ROOT = Path(__file__).resolve().parents[2]


# -- item 2: non-finite rewards and outcomes --------------------------------------------------
def _two_groups(bad: float, where: str = "reward") -> list[dict]:
    trajs = trajectories()  # group "france" (the worked example), plus a clean group "p"
    trajs += [{"traj_id": f"p{i}", "group_id": "p", "outcome": float(i % 2),
               "turns": [{"reward": 0.0, "state_key": "s"}, {"reward": float(i % 2), "state_key": f"e{i}"}]}
              for i in range(4)]
    if where == "reward":
        trajs[2]["turns"][1]["reward"] = bad  # t3, turn 1
    else:
        trajs[2]["outcome"] = bad
    return trajs


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_reward_is_rejected_by_every_estimator(bad: float) -> None:
    b = TurnBatch.from_trajectories(_two_groups(bad), gold_logp=[*gold_logp(), *[[-1.0, -0.5]] * 4])
    for fn in (grpo, rloo, gigpo, igpo, tempo, lambda x: a2tgpo(x)[0], anchor_groups):
        with pytest.raises(ValueError, match=r"trajectory 't3' \(group 'france'\) turn 1 has reward"):
            fn(b)
    with pytest.raises(ValueError, match="turn 1 has reward"):
        build_pipeline({"method": "gigpo"})(b)


def test_nonfinite_outcome_is_rejected_naming_the_trajectory() -> None:
    b = TurnBatch.from_trajectories(_two_groups(math.nan, "outcome"), gold_logp=[*gold_logp(), *[[-1.0, -0.5]] * 4])
    for fn in (grpo, igpo, tempo, lambda x: a2tgpo(x)[0]):
        with pytest.raises(ValueError, match="trajectory 't3' .* has outcome nan"):
            fn(b)


@pytest.mark.parametrize("method", ["grpo", "gigpo", "igpo", "a2tgpo", "tempo"])
def test_mask_group_drops_only_the_bad_group_and_counts_it(method: str) -> None:
    ells = [*gold_logp(), *[[-1.0, -0.5]] * 4]
    dirty = TurnBatch.from_trajectories(_two_groups(math.nan), gold_logp=ells)
    clean = TurnBatch.from_trajectories(_two_groups(0.0)[4:], gold_logp=ells[4:])
    out = build_pipeline({"method": method, "on_nonfinite": "mask_group"})(dirty)
    assert np.isfinite(out.advantages).all()
    q = dirty.group[np.arange(dirty.n_rows)] == dirty.traj_group[0]
    assert (out.advantages[q] == 0).all() and (out.loss_mask[q] == 0).all() and (out.loss_mask[~q] == 1).all()
    ref = build_pipeline({"method": method})(clean)
    np.testing.assert_allclose(out.advantages[~q], ref.advantages)
    assert out.diagnostics["nonfinite_groups"] == 1 and out.diagnostics["nonfinite_trajectories"] == 1
    assert out.metrics["credit/nonfinite_groups"] == 1.0
    with pytest.raises(ValueError, match="on_nonfinite"):
        build_pipeline({"method": method, "on_nonfinite": "ignore"})


# -- item 3: invalid-action penalty ---------------------------------------------------------
def _penalty_case() -> TurnBatch:
    """T1: S0 → A → (last step invalid) reward 1; T2: S0 → B, reward 0."""
    return TurnBatch.from_arrays(group_id=["g"] * 4, traj_id=["T1", "T1", "T2", "T2"], turn_idx=[0, 1, 0, 1],
                                 reward=[0.0, 1.0, 0.0, 0.0], state_key=["S0", "A", "S0", "B"],
                                 invalid=[False, True, False, False])


def test_invalid_action_penalty_is_verl_agents() -> None:
    b = invalid_action_penalty(_penalty_case(), 0.1)
    adv = gigpo(b, gamma=0.95, std=False, episode_stats="step")
    np.testing.assert_allclose(b.per_trajectory(adv), [[1.000, 0.425], [-0.950, -0.475]], atol=1e-12)
    assert b.outcome.tolist() == [1.0, 0.0] and b.reward.tolist() == [0.0, 1.0, 0.0, 0.0]  # rewards untouched
    out = build_pipeline({"stages": [{"invalid_action_penalty": {"penalty": 0.1}},
                                     {"gigpo": {"episode_stats": "step"}}]})(_penalty_case())
    np.testing.assert_allclose(out.advantages, adv)
    with pytest.raises(ValueError, match="undefined for it"):
        build_pipeline({"method": "rloo", "invalid_action_penalty": 0.1})(_penalty_case())


def test_invalid_turn_penalty_is_ours_and_discounts_back() -> None:
    b = invalid_turn_penalty(_penalty_case(), 0.1)
    adv = gigpo(b, gamma=0.95, std=False)
    np.testing.assert_allclose(b.per_trajectory(adv), [[0.8775, 0.450], [-0.8775, -0.450]], atol=1e-12)
    out = build_pipeline({"method": "gigpo", "invalid_turn_penalty": 0.1})(_penalty_case())
    np.testing.assert_allclose(out.advantages, adv)
    assert out.batch.outcome.tolist() == [0.9, 0.0]


def test_grpo_takes_the_penalty_on_the_invalid_row_only() -> None:
    b = invalid_action_penalty(_penalty_case(), 0.1)
    np.testing.assert_allclose(grpo(b, std=False), [0.5, 0.4, -0.5, -0.5])
    sd = np.std([1.0, 0.0], ddof=1) + 1e-6
    np.testing.assert_allclose(grpo(b), [0.5 / sd, (0.5 - 0.1) / sd, -0.5 / sd, -0.5 / sd])


# -- item 4: documented conventions -----------------------------------------------------------
def test_similarity_anchors_do_not_autojunk() -> None:
    rng = random.Random(0)
    grid = "\n".join("".join(rng.choice("#_.$") for _ in range(20)) for _ in range(13))[:260]
    obs = grid[:100] + "@" + grid[101:200] + "+" + grid[201:] + "ok!"
    copy = obs[:100] + "_" + obs[101:150] + ("#" if obs[150] != "#" else "_") + obs[151:]
    assert len(obs) == 263 and sum(a != b for a, b in zip(obs, copy, strict=True)) == 2
    assert SequenceMatcher(None, obs, copy).ratio() < 0.9 < SequenceMatcher(None, obs, copy, autojunk=False).ratio()
    b = TurnBatch.from_arrays(group_id=["g"] * 2, traj_id=["a", "b"], turn_idx=[0, 0], reward=[1.0, 0.0],
                              state_key=[obs, copy])
    codes, _ = anchor_groups(b, similarity=0.9)
    assert codes[0] == codes[1]


def test_zero_turn_trajectories_count_in_outcome_statistics() -> None:
    trajs = [{"traj_id": "a", "group_id": "g", "outcome": 1.0, "turns": [{"reward": 1.0}]},
             {"traj_id": "b", "group_id": "g", "outcome": 0.0, "turns": [{"reward": 0.0}]},
             {"traj_id": "c", "group_id": "g", "outcome": 0.0, "turns": []}]
    b = TurnBatch.from_trajectories(trajs)
    np.testing.assert_allclose(grpo(b, std=False), [2 / 3, -1 / 3])
    np.testing.assert_allclose(gigpo(b, episode_stats="trajectory", omega=0.0), [2 / 3, -1 / 3])
    np.testing.assert_allclose(gigpo(b, episode_stats="step", omega=0.0), [0.5, -0.5])  # rows only


VOID_CASES = {  # text: (SimpleTIR regex, PythonTIR's flag) — the table in agentgym/credit/void.py
    "```python\n\n```": (False, True),
    "The answer is \\boxed{42": (False, True),
    "The answer is \\boxed{}": (False, True),
    "<think>```python\nprint(1)\n```</think> so": (False, True),
    "```Python\nprint(1)\n```": (True, False),
    "The answer is \\fbox{42}": (True, False),
    "```python\nprint(1)\n```": (False, False),
    "```python\nprint(1)": (True, True),
}


@pytest.mark.parametrize("rule", ["agentgym", "simpletir"])
def test_python_tir_void_flag_and_simpletir_rule(rule: str) -> None:
    import agentgym

    env = agentgym.make("agentgym/PythonTIR-v0", source="builtin", backend="local", void_rule=rule)
    try:
        for text, (simpletir, ours) in VOID_CASES.items():
            assert is_void_simpletir(text) is simpletir, text
            env.reset(seed=0)
            assert env.step(text)[4]["void"] is (ours if rule == "agentgym" else simpletir), text
    finally:
        env.close()
    with pytest.raises(ValueError, match="void_rule"):
        agentgym.make("agentgym/PythonTIR-v0", source="builtin", void_rule="regex")


# -- item 5: IGPO's filler offset and the zero-variance filter ----------------------------------
def _all_succeed(horizon: int) -> TurnBatch:
    """G = 4 rollouts that all succeed; IG 1.0 on turn 0, 0 on the other H−2 IG turns."""
    n = horizon
    ells = [-2.0, -1.0] + [-1.0] * (n - 1)  # ℓ_0 … ℓ_{H−1}, ℓ_H
    return TurnBatch.from_arrays(
        group_id=["g"] * 4 * n, traj_id=np.repeat(np.arange(4), n), turn_idx=np.tile(np.arange(n), 4),
        reward=np.tile([0.0] * (n - 1) + [1.0], 4), outcome=np.ones(4 * n),
        gold_logp=np.tile(ells[1:n + 1], 4), gold_logp0=np.full(4 * n, ells[0]))


@pytest.mark.parametrize("horizon", [4, 6])
def test_igpo_separate_offsets_filler_turns_and_the_filter_masks_it(horizon: int) -> None:
    b = _all_succeed(horizon)
    adv = igpo(b, norm="separate")
    assert adv.min() == pytest.approx(-math.sqrt(horizon - 2), rel=1e-5)  # nothing to learn, yet not 0
    np.testing.assert_allclose(a2tgpo(b)[0], 0.0, atol=1e-6)  # per-position groups: no offset
    out = build_pipeline({"method": "igpo", "group_filter": {"zero_variance": True}})(b)
    assert (out.loss_mask == 0).all() and out.diagnostics["filtered_groups"] == ["g"]


def test_igpo_recipes_pair_it_with_the_zero_variance_filter() -> None:
    found = 0
    for path in sorted((ROOT / "trainers" / "recipes").glob("*.yaml")):
        credit = (yaml.safe_load(path.read_text()) or {}).get("credit", {})
        if credit.get("method") == "igpo":
            found += 1
            stages = [type(s).name for s in build_pipeline(credit).stages]
            assert "group_filter" in stages, path.name
            assert credit["group_filter"].get("zero_variance", True), path.name
    assert found


def test_a_stages_mapping_is_a_config_error_not_silently_the_defaults():
    from agentgym.credit import build_pipeline
    from agentgym.errors import ConfigError

    with pytest.raises(ConfigError, match="'stages' must be a list"):
        build_pipeline({"stages": {"gigpo": {"gamma": 0.5, "omega": 7.0}}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        build_pipeline({"stages": [{"gigpo": [0.5, 7.0]}]})
    assert build_pipeline({"stages": [{"gigpo": {"gamma": 0.5, "omega": 7.0}}]})  # the list form is fine
