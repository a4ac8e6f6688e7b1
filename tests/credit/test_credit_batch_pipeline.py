"""TurnBatch builders (dicts, Trajectory objects, flat arrays), infra exclusion, pipeline config
forms and validation, filters, penalty, scorer plumbing, trainer recipes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from credit_worked_example import gold_logp, trajectories

from agentgym import Trajectory
from agentgym.credit import (
    STAGES,
    GoldAnswerScorer,
    LookupScorer,
    TurnBatch,
    assign_credit,
    build_pipeline,
    gigpo,
    gold_logprobs,
    grpo,
    igpo,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_from_trajectory_objects_equals_dicts():
    dicts = trajectories()
    objs = [Trajectory.from_dict({"env_id": "x", "seed": 0, "policy": "p", **d}) for d in dicts]
    a = TurnBatch.from_trajectories(dicts, gold_logp=gold_logp())
    b = TurnBatch.from_trajectories(objs, gold_logp=gold_logp())
    for col in ("traj", "turn_idx", "reward", "state", "void", "traj_group", "outcome", "gold_logp", "gold_logp0"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
    assert b.traj_index.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert b.turn_index.tolist() == [0, 1, 0, 1, 2, 0, 1, 2, 0, 1]


def infra_copy(outcome: float = 0.0):
    bad = trajectories(("t1",))[0]
    bad.update(traj_id="t5", failure="infra", outcome=outcome)
    for u in bad["turns"]:
        u["reward"] = outcome
    return bad


@pytest.mark.parametrize("config", [{"method": "grpo"}, {"method": "rloo"}, {"method": "gigpo", "std": True},
                                    {"method": "igpo"}, {"method": "a2tgpo"}, {"method": "tempo"}])
def test_infra_failures_are_excluded_and_masked_never_scored_as_zero(config):
    clean = trajectories()
    mixed = [*clean[:2], infra_copy(0.0), *clean[2:]]
    ells = gold_logp()
    ells_mixed = [*ells[:2], [-9.0, -9.0], *ells[2:]]
    a = build_pipeline(config)(TurnBatch.from_trajectories(clean, gold_logp=ells))
    b = build_pipeline(config)(TurnBatch.from_trajectories(mixed, gold_logp=ells_mixed))
    pa, pb = a.per_trajectory(), b.per_trajectory()
    assert pb[2] == [0.0, 0.0] and b.per_trajectory("loss_mask")[2] == [0.0, 0.0]
    for x, y in zip(pa, pb[:2] + pb[3:], strict=True):
        assert x == pytest.approx(y, abs=1e-12)  # the others are untouched by the infra trajectory
    assert b.metrics["credit/infra_trajectories"] == 1.0


def test_from_arrays_any_order_and_validation():
    b = TurnBatch.from_arrays(group_id=["q", "q", "q"], traj_id=["b", "a", "a"], turn_idx=[0, 1, 0],
                              reward=[1.0, 0.0, 0.5])
    assert b.traj_ids.tolist() == ["a", "b"] and b.outcome.tolist() == [0.5, 1.0]
    assert b.to_input_order(b.reward).tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="different group"):
        TurnBatch.from_arrays(group_id=[0, 1], traj_id=[0, 0], turn_idx=[0, 1], reward=[0, 0])
    with pytest.raises(ValueError, match="unique turn"):
        TurnBatch.from_arrays(group_id=[0, 0], traj_id=[0, 0], turn_idx=[1, 1], reward=[0, 0])
    with pytest.raises(ValueError, match="constant"):
        TurnBatch.from_arrays(group_id=[0, 0], traj_id=[0, 0], turn_idx=[0, 1], reward=[0, 0], outcome=[1, 0])
    with pytest.raises(ValueError, match="gold log-probs for"):
        TurnBatch.from_trajectories(trajectories(), gold_logp=[[-1.0]] * 4)


def test_empty_and_zero_turn_trajectories():
    trajs = [{"traj_id": "a", "group_id": "g", "turns": [], "outcome": 1.0},
             {"traj_id": "b", "group_id": "g", "turns": [{"reward": 0.0}], "outcome": 0.0}]
    out = build_pipeline({"method": "grpo"})(trajs)
    assert out.per_trajectory() == [[], [pytest.approx(-0.7071, abs=1e-4)]]
    empty = build_pipeline({"stages": ["gigpo", "void_filter"]})(TurnBatch.from_trajectories([]))
    assert empty.advantages.shape == (0,)


def test_config_forms_and_errors(tmp_path):
    assert [type(s).name for s in build_pipeline({}).stages] == ["outcome"]
    p = build_pipeline({"method": "grpo", "invalid_action_penalty": 0.1, "group_filter": {"accuracy": [0.1, 0.9]},
                        "void_filter": True, "void_in_group_stats": False})
    assert [type(s).name for s in p.stages] == ["invalid_action_penalty", "outcome", "group_filter", "void_filter"]
    assert p.stages[-1].void_in_group_stats is False
    yaml_text = "credit:\n  stages:\n    - gigpo: {gamma: 0.9}\n    - info_gain: {outcome: false}\n    - void_filter\n"
    (tmp_path / "c.yaml").write_text(yaml_text)
    assert load_config(tmp_path / "c.yaml") == load_config(yaml_text)
    assert build_pipeline(str(tmp_path / "c.yaml")).needs_gold
    with pytest.raises(ValueError, match="unknown keys"):
        build_pipeline({"method": "gigpo", "gama": 0.9})
    with pytest.raises(ValueError, match="unknown credit stage"):
        build_pipeline({"stages": ["gipo"]})
    with pytest.raises(ValueError, match="before the estimator"):
        build_pipeline({"stages": ["grpo", "invalid_action_penalty"]})
    with pytest.raises(ValueError, match="estimator"):
        build_pipeline({"stages": ["void_filter"]})
    with pytest.raises(ValueError, match="needs void_filter"):
        build_pipeline({"method": "grpo", "void_in_group_stats": False})
    with pytest.raises(ValueError, match="gold log-probs"):
        build_pipeline({"method": "igpo"})(trajectories())


def test_every_trainer_recipe_credit_section_builds():
    import yaml

    recipes = sorted((ROOT / "trainers" / "recipes").glob("*.yaml"))
    assert recipes, "trainers/recipes/ holds no recipes"
    for path in recipes:
        section = (yaml.safe_load(path.read_text()) or {}).get("credit", {})
        build_pipeline(section)


def test_components_add_up_and_clip_scale_multiplies():
    b = TurnBatch.from_trajectories(trajectories(), gold_logp=gold_logp())
    out = build_pipeline({"stages": [{"gigpo": {}}, {"info_gain": {"outcome": False, "weight": 0.5}},
                                     {"a2tgpo": {"outcome": False, "weight": 0.0}}]})(b)
    np.testing.assert_allclose(out.advantages, sum(out.components.values()))
    np.testing.assert_allclose(out.components["info_gain"], 0.5 * igpo(b, outcome=False))
    np.testing.assert_allclose(out.components["gigpo"], gigpo(b))
    assert not np.allclose(out.clip_scale, 1.0)
    assert {"credit/singleton_anchor_share", "credit/mean_step_group_size", "credit/ig_mean"} <= set(out.metrics)
    assert out.diagnostics["step_group_sizes"].tolist() == [2, 1, 3, 4]  # D_france, D_lyon, D_paris, S0
    assert all(isinstance(v, float) for v in out.metrics.values())


def test_group_filters():
    trajs = []
    for g, outcomes in enumerate([[1, 1, 1, 1], [0, 0, 0, 1], [1, 0, 1, 0], [1, 1, 1, 0]]):
        for i, o in enumerate(outcomes):
            trajs.append({"traj_id": f"{g}{i}", "group_id": f"g{g}", "outcome": float(o),
                          "turns": [{"reward": float(o)}]})
    out = build_pipeline({"stages": ["grpo", {"group_filter": {"accuracy": [0.3, 0.7]}}]})(trajs)
    assert out.diagnostics["filtered_groups"] == ["g0", "g1", "g3"]
    assert out.per_trajectory("loss_mask") == [[0.0]] * 8 + [[1.0]] * 4 + [[0.0]] * 4
    # min_valid counts rollouts still trainable after the void filter
    trajs[8]["turns"][0]["void"] = True
    trajs[9]["turns"][0]["void"] = True
    out = build_pipeline({"stages": ["grpo", "void_filter", {"group_filter": {"min_valid": 3}}]})(trajs)
    assert "g2" in out.diagnostics["filtered_groups"]


def test_invalid_turn_penalty():
    trajs = trajectories()
    trajs[2]["turns"][0]["parse_error"] = "no action found"
    b = TurnBatch.from_trajectories(trajs)
    out = build_pipeline({"stages": [{"invalid_turn_penalty": {"penalty": 0.1}}, "grpo"]})(b)
    assert out.batch.outcome.tolist() == [1.0, 1.0, -0.1, 0.0]
    assert out.batch.reward[5] == pytest.approx(-0.1)
    np.testing.assert_allclose(out.advantages, grpo(out.batch))
    assert out.diagnostics["invalid_turns"] == 1


def test_scorer_protocol_and_trajectory_method():
    assert isinstance(LookupScorer(), GoldAnswerScorer)

    class TokenScorer:  # what the trainer provides: it builds token contexts itself
        def score(self, contexts, golds):
            raise AssertionError("not called when trajectory_gold_logprobs exists")

        def trajectory_gold_logprobs(self, trajs):
            return gold_logp()

    out = assign_credit(trajectories(), {"method": "igpo"}, scorer=TokenScorer())
    np.testing.assert_allclose(out.per_trajectory()[0], [2.0005, 1.0], atol=1e-4)
    # infra trajectories are not sent to a text scorer
    trajs = [*trajectories(), infra_copy()]
    scorer = LookupScorer()
    ells = gold_logprobs(trajs, scorer)
    assert len(ells[-1]) == 2 and all(np.isnan(ells[-1]))


def test_stage_registry_is_documented():
    assert set(STAGES) >= {"outcome", "gigpo", "info_gain", "a2tgpo", "void_filter", "group_filter",
                           "invalid_action_penalty", "invalid_turn_penalty", "tempo", "siop", "mapo", "matchtir"}
    for cls in STAGES.values():
        assert cls.__doc__


def test_import_is_light():
    import subprocess
    import sys

    # what agentgym.credit itself adds on top of the agentgym core: numpy-only modules, no torch
    code = ("import sys, agentgym; before = set(sys.modules); import agentgym.credit; "
            "print(sorted(m for m in set(sys.modules) - before if not m.startswith(('agentgym', 'numpy'))))")
    added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert "torch" not in added and "yaml" not in added, added


def test_credit_records_and_summary_are_json_ready():
    import json

    from agentgym.credit import credit_records, summary

    b = TurnBatch.from_trajectories([*trajectories(), infra_copy()], gold_logp=[*gold_logp(), [-1.0, -1.0]])
    out = build_pipeline({"stages": ["gigpo", {"a2tgpo": {"outcome": False}}, "void_filter"]})(b)
    recs = credit_records(out)
    json.dumps(recs)
    assert [r["traj_id"] for r in recs] == ["t1", "t2", "t3", "t4", "t5"]
    assert recs[0]["advantages"] == pytest.approx(np.add(recs[0]["components"]["gigpo"], recs[0]["components"]["a2tgpo"]))
    assert recs[4]["infra"] and recs[4]["loss_mask"] == [0.0, 0.0]
    s = summary(out)
    json.dumps(s)
    assert s["turns"] == 12 and s["void ratio"] == 0.25 and s["infra trajectories"] == 1 and "clip scale max" in s


def test_gigpo_warns_when_it_degenerates():
    gigpo_only = build_pipeline({"method": "gigpo"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gigpo_only(trajectories())  # the worked example shares states: no warning
    no_keys = trajectories()
    for traj in no_keys:
        for turn in traj["turns"]:
            turn["state_key"] = None
    with pytest.warns(RuntimeWarning, match="state_key"):
        gigpo_only(no_keys)
    alone = [dict(t, group_id=f"g{i}") for i, t in enumerate(trajectories())]
    with pytest.warns(RuntimeWarning, match="group size 1"):
        gigpo_only(alone)
