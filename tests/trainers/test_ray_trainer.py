"""The trainer's ``rollout.ray``: envs step in Ray actors (local 2-CPU cluster), generation stays here."""

import os

import pytest
import torch
from test_trainer import _state, small_recipe

from agentgym.store import read_jsonl
from agentgym.trainers.config import RecipeError
from agentgym.trainers.trainer import Trainer

# One episode in flight: batch composition (hence sampling) cannot depend on when steps return.
SERIAL = {"concurrency": 1, "deterministic": False}


def _rows(rows):
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_ray_rollouts_train_exactly_as_in_process_and_resume_exactly(ray_cluster, tiny_model_dir, tmp_path):
    recipe = lambda out, **rollout: small_recipe(tiny_model_dir, tmp_path / out,  # noqa: E731
                                                 rollout={**SERIAL, **rollout}, train={"iterations": 2})
    local = Trainer(recipe("local"))
    local_rows = local.fit()
    first = Trainer(recipe("ray", ray=True, ray_workers=2))
    first.fit(until=1)  # "killed" after iteration 1
    first.close()
    resumed = Trainer(recipe("ray", ray=True, ray_workers=2))
    assert resumed.iteration == 1
    rows = resumed.fit()
    resumed.close()
    assert _rows(rows) == _rows(local_rows) and len(rows) == 3  # SFT warm start, 2 iterations
    a, b = _state(local), _state(resumed)
    assert all(torch.equal(p, q) for p, q in zip(a[0], b[0], strict=True))
    assert a[2] == b[2] and torch.equal(a[3], b[3])
    # The samples' envs ran in the actors (an iteration's one env each time, alternating actors).
    workers = [s["info"]["rollout_worker"] for s in read_jsonl(tmp_path / "ray" / "samples" / "trajectories.jsonl")]
    assert len(workers) == 8 and len(set(workers)) == 2
    assert all(int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)
    assert "rollout_worker" not in next(read_jsonl(tmp_path / "local" / "samples" / "trajectories.jsonl"))["info"]


def test_ray_rollouts_with_many_episodes_in_flight(ray_cluster, tiny_model_dir, tmp_path):
    trainer = Trainer(small_recipe(tiny_model_dir, tmp_path, sft={"steps": 0}, train={"iterations": 1},
                                   rollout={"concurrency": 8, "deterministic": False, "ray": True}))
    try:
        trajs = trainer.collect(trainer.task_seeds(0, 2), 4, "x")
    finally:
        trainer.close()
    assert [t.traj_id for t in trajs] == [f"x-t{i:05d}-{k:03d}" for i in range(2) for k in range(4)]
    assert len({t.info["rollout_worker"] for t in trajs}) == 2 and not any(t.failure for t in trajs)
    assert all(t.turns[0].action_token_ids for t in trajs)  # generated here, by the trainer's model


def test_ray_needs_nondeterministic_rollouts():
    with pytest.raises(RecipeError, match="ray: true needs deterministic: false"):
        small_recipe("m", "out", rollout={"ray": True})
    with pytest.raises(RecipeError, match="ray_workers must be >= 1"):
        small_recipe("m", "out", rollout={"ray": True, "deterministic": False, "ray_workers": 0})
