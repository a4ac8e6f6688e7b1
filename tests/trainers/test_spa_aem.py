"""SPA-RL and AEM inside training: the bundled recipes run end to end on CPU with the tiny
model, the trainer supplies SPA's hidden-state features, and AEM reads the rollout's log-probs."""

from __future__ import annotations

import json

import numpy as np

from agentgym.credit import build_pipeline, fit_progress
from agentgym.trainers.config import load_recipe
from agentgym.trainers.trainer import Trainer

SMALL = ["model.device=cpu", "train.iterations=1", "train.tensorboard=false", "train.plot=false",
         "rollout.tasks_per_iter=2", "rollout.group_size=2", "sft.episodes=4", "sft.steps=2"]


def rows(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_aem_bifurcation_recipe_trains_and_modulates_by_the_rollouts_log_probs(tiny_model_dir, tmp_path):
    recipe = load_recipe("aem_bifurcation", [f"model.path={tiny_model_dir}", f"train.out_dir={tmp_path}", *SMALL,
                                             "rollout.group_size=4"])
    trainer = Trainer(recipe)
    assert trainer.scorer is None  # AEM needs no extra model pass
    trainer.fit()
    row = rows(tmp_path)[-1]
    assert row["credit/aem_known_share"] == 1.0  # every sampled turn carries its log-probs
    assert 0 < row["credit/aem_weight_min"] <= 1.0 <= row["credit/aem_weight_max"]
    assert row["batch/loss_tokens"] > 0


def test_spa_toolworld_recipe_fits_the_estimator_on_the_policys_hidden_states(tiny_model_dir, tmp_path):
    recipe = load_recipe("spa_toolworld", [f"model.path={tiny_model_dir}", f"train.out_dir={tmp_path}", *SMALL,
                                           "generation.sampling.max_new_tokens=24"])
    trainer = Trainer(recipe)
    assert trainer.scorer is not None  # features: model asks for the policy
    trainer.fit()
    row = rows(tmp_path)[-1]
    assert {"credit/spa_fit_rmse", "credit/spa_executed_share", "credit/spa_outcome_std"} <= row.keys()
    assert row["batch/loss_tokens"] > 0

    trajs = trainer.collect(trainer.task_seeds(0, 2), 2, "probe")
    feats = trainer.scorer.turn_features(trajs)
    width = trainer.pm.model.config.hidden_size
    assert [f.shape for f in feats] == [(t.num_turns, width) for t in trajs]
    assert all(np.isfinite(f).all() for f in feats)
    out = build_pipeline(recipe.credit)(trajs, scorer=trainer.scorer)
    c, _ = fit_progress(out.batch, np.concatenate(feats), ridge=1.0)
    assert np.isfinite(c).all() and np.isfinite(out.advantages).all()

