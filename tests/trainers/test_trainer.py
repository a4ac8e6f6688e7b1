"""Recipes (schema, overrides, unknown envs), the training loop, checkpoint/resume and the CLI."""

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

import agentgym
from agentgym.credit import build_pipeline
from agentgym.registry import UnknownEnvError
from agentgym.trainers.cli import make_tiny_model, train
from agentgym.trainers.config import RECIPES_DIR, RecipeError, load_recipe, recipe_from_dict
from agentgym.trainers.trainer import Trainer
from agentgym.trajectory import Trajectory

RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))


def small_recipe(model_dir, out_dir, **extra):
    data = {
        "name": "test", "seed": 3,
        "env": {"id": "agentgym/Bifurcation-v0", "kwargs": {"horizon": 2, "p_good": 1.0, "p_bad": 0.0}},
        "model": {"path": str(model_dir), "device": "cpu"},
        "generation": {"sampling": {"max_new_tokens": 4}},
        "rollout": {"tasks_per_iter": 2, "group_size": 4, "task_pool": 3},
        "credit": {"method": "gigpo", "gamma": 0.95, "omega": 1.0},
        "optim": {"lr": 1e-3, "micro_batch_size": 3, "mini_batch_size": 4, "epochs": 2, "schedule": "cosine",
                  "warmup_steps": 2},
        "loss": {"kl": "k3", "kl_coef": 0.01, "entropy_coef": 0.001},
        "sft": {"steps": 3, "episodes": 4, "batch_size": 4},
        "train": {"iterations": 3, "out_dir": str(out_dir), "checkpoint_every": 1, "tensorboard": False,
                  "plot": False},
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value}
    return recipe_from_dict(data)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_bundled_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.name and recipe.env.id.startswith("agentgym/") and recipe.credit
    build_pipeline(recipe.credit)  # the credit section is valid for the credit library
    agentgym.spec(recipe.env.id)  # the recipe's env is registered
    assert load_recipe(path.stem).to_dict() == recipe.to_dict()  # bundled recipes load by name


def test_recipe_errors_are_clear():
    with pytest.raises(RecipeError, match=r"recipe\.optim: unknown key\(s\) \['lr_typo'\]"):
        recipe_from_dict({"optim": {"lr_typo": 1}})
    with pytest.raises(RecipeError, match="recipe.rollout.group_size: expected int"):
        recipe_from_dict({}, ["rollout.group_size=many"])
    with pytest.raises(RecipeError, match="key=value"):
        recipe_from_dict({}, ["optim.lr"])
    recipe = recipe_from_dict({}, ["optim.lr=3e-5", "model.lora.r=8", "env.kwargs.horizon=4"])
    assert recipe.optim.lr == 3e-5 and recipe.model.lora.r == 8 and recipe.env.kwargs == {"horizon": 4}
    assert recipe_from_dict({}, ["generation.sampling.stop=[END]"]).generation.sampling.stop == ("END",)
    with pytest.raises(RecipeError, match="recipe.generation.sampling.stop: expected str"):
        recipe_from_dict({}, ["generation.sampling.stop=[1]"])


def test_unregistered_env_fails_before_loading_anything(tmp_path):
    recipe = load_recipe("simpletir_python", ["env.id=agentgym/NoSuchEnv-v0", f"train.out_dir={tmp_path}"])
    with pytest.raises(UnknownEnvError, match="NoSuchEnv"):
        Trainer(recipe)


def _state(trainer):
    return ([p.detach().clone() for p in trainer.pm.model.parameters()],
            trainer.optimizer.state_dict()["state"], trainer.task_cursor, torch.get_rng_state())


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tiny_model_dir, tmp_path):
    # One episode in flight: batch composition (hence sampling) cannot depend on thread timing.
    serial = {"concurrency": 1}
    full = Trainer(small_recipe(tiny_model_dir, tmp_path / "full", rollout=serial))
    full_rows = full.fit()
    first = Trainer(small_recipe(tiny_model_dir, tmp_path / "cut", rollout=serial))
    first.fit(until=1)  # "killed" after iteration 1 (its checkpoint is on disk)
    del first
    resumed = Trainer(small_recipe(tiny_model_dir, tmp_path / "cut", rollout=serial))
    assert resumed.iteration == 1 and resumed.task_cursor == 2
    rows = resumed.fit()
    a, b = _state(full), _state(resumed)
    for p, q in zip(a[0], b[0], strict=True):
        assert torch.equal(p, q)
    for k in a[1]:
        assert torch.equal(a[1][k]["exp_avg_sq"], b[1][k]["exp_avg_sq"])
    assert a[2] == b[2] and torch.equal(a[3], b[3])
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
    assert [strip(r) for r in rows] == [strip(r) for r in full_rows]


def test_training_logs_collapse_signals_and_checkpoints(tiny_model_dir, tmp_path):
    recipe = small_recipe(tiny_model_dir, tmp_path, train={"iterations": 1, "plot": True},
                          model={"lora": {"r": 4, "alpha": 8}}, loss={"ratio": "turn"})
    rows = Trainer(recipe).fit()
    last = rows[-1]
    for key in ("rollout/success_rate", "collapse/group_reward_std", "collapse/entropy", "collapse/grad_norm",
                "collapse/clip_fraction", "collapse/void_ratio", "is/mean_abs_log_ratio", "loss/kl"):
        assert key in last, key
    assert last["is/mean_abs_log_ratio"] < 1e-3  # rollout and trainer log-probs agree
    ckpt = tmp_path / "checkpoints" / "iter_000001"
    assert (ckpt / "model" / "adapter_config.json").exists() and (ckpt / "state.pt").exists()
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["iteration"] == 1


def test_cli_commands(tmp_path):
    app = typer.Typer()
    app.command("train")(train)
    app.command("make-tiny-model")(make_tiny_model)
    runner = CliRunner()
    result = runner.invoke(app, ["make-tiny-model", str(tmp_path / "m"), "--hidden-size", "64"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [
        "train", "demo_bifurcation", f"model.path={tmp_path / 'm'}", f"train.out_dir={tmp_path / 'run'}",
        "train.iterations=1", "sft.steps=2", "eval.episodes_per_task=1", "rollout.tasks_per_iter=2",
        "rollout.group_size=2", "model.device=cpu",
    ])
    assert result.exit_code == 0, result.output
    assert "eval success rate" in result.output and (tmp_path / "run" / "learning_curve.png").exists()
    result = runner.invoke(app, ["train", "demo_bifurcation", "optim.nope=1"])
    assert result.exit_code == 2 and "unknown key" in result.output


def test_igpo_iteration_scores_gold_answers_on_search(tiny_model_dir, tmp_path):
    recipe = load_recipe("igpo_search", [
        f"model.path={tiny_model_dir}", "model.lora=null", "model.gradient_checkpointing=false", "model.device=cpu",
        "rollout.tasks_per_iter=2", "rollout.group_size=2", "generation.sampling.max_new_tokens=6",
        "env.max_turns=3", "train.iterations=1", f"train.out_dir={tmp_path}", "train.tensorboard=false",
        "optim.micro_batch_size=2", "optim.mini_batch_size=null",
    ])
    trainer = Trainer(recipe)
    assert trainer.scorer is not None  # the IG pipeline asked for gold log-probs
    row = trainer.fit()[-1]
    assert "credit/ig_mean" in row and row["batch/loss_tokens"] > 0


def test_long_sequences_are_cut_and_masked_and_empty_infra_failures_dropped(tiny_model_dir, tmp_path):
    trainer = Trainer(small_recipe(tiny_model_dir, tmp_path, train={"max_seq_len": 60}))
    trajs = trainer.collect(trainer.task_seeds(0, 1), 2, "x")
    broken = Trajectory("x-t000-009", trajs[0].group_id, "", "env", 0, "p", failure="infra")  # died at reset
    trajs.append(broken)
    batch = trainer.to_batch(trajs, trainer.credit_fn(trajs, trainer.pipeline, None))
    assert len(batch) == 2 and batch.input_ids.shape[1] == 60 and batch.loss_mask.sum() == 0


def test_generation_engine_gets_the_weights_after_warm_start_updates_and_resume(tiny_model_dir, tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("agentgym.trainers.generation.HFGenerator.sync_weights", lambda self, model: synced.append(1))
    Trainer(small_recipe(tiny_model_dir, tmp_path, train={"iterations": 1})).fit()
    assert len(synced) == 2  # after the SFT warm start, after iteration 1
    Trainer(small_recipe(tiny_model_dir, tmp_path, train={"iterations": 1}))
    assert len(synced) == 3  # a resumed engine starts from the checkpoint's weights
