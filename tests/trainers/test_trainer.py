"""Recipes (schema, overrides, unknown envs), the training loop, checkpoint/resume and the CLI."""

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app as cli_app
from agentgym.credit import build_pipeline
from agentgym.registry import UnknownEnvError
from agentgym.store import read_jsonl
from agentgym.trainers.cli import make_tiny_model, train
from agentgym.trainers.config import RECIPES_DIR, RecipeError, load_recipe, recipe_from_dict, recipe_reference
from agentgym.trainers.progress import Progress
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
    # Whole lines, never cut to a terminal's width; iteration 0 says what it is.
    assert "iter 0 (after the warm start, before RL): eval " in result.output and "iter 1/1: success " in result.output
    result = runner.invoke(app, ["train", "demo_bifurcation", "optim.nope=1"])
    assert result.exit_code == 2 and "unknown key" in result.output
    result = runner.invoke(app, ["train", "demo_bifurcation", "env.kwargs.sise=4", f"train.out_dir={tmp_path / 'x'}"])
    assert result.exit_code == 2 and "error:" in result.output and "sise" in result.output, result.output
    assert not isinstance(result.exception, TypeError)  # a line, not a traceback


def test_igpo_iteration_scores_gold_answers_on_search(tiny_model_dir, tmp_path):
    recipe = load_recipe("igpo_search", [
        f"model.path={tiny_model_dir}", "model.lora=null", "model.gradient_checkpointing=false", "model.device=cpu",
        "rollout.tasks_per_iter=2", "rollout.group_size=2", "generation.sampling.max_new_tokens=6",
        "env.max_turns=3", "train.iterations=1", f"train.out_dir={tmp_path}", "train.tensorboard=false",
        "optim.micro_batch_size=2", "optim.mini_batch_size=null",
        # the untrained model fails every task, so the recipe's zero-variance filter would mask
        # every group; this test is about the information-gain path
        "credit.group_filter.zero_variance=false",
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


def test_same_recipe_and_seed_give_identical_runs(tiny_model_dir, tmp_path):
    # Env steps of random duration in threads: only a deterministic rollout survives them.
    agentgym.register("tests/JitteryBifurcation-v0", "support:JitteryBifurcationEnv", force=True)
    runs, phases = [], []
    for name in ("a", "b"):
        recipe = small_recipe(tiny_model_dir, tmp_path / name, env={"id": "tests/JitteryBifurcation-v0"},
                              rollout={"concurrency": 8}, sft={"epsilon": 0.5},
                              train={"iterations": 2, "samples_per_iter": 3})
        rows = Trainer(recipe).fit(progress=PhaseNames(phases))
        runs.append([{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows])
    assert len(runs[0]) == 3 and "sft/loss_first" in runs[0][0] and "loss/policy" in runs[0][-1]
    assert runs[0] == runs[1]
    assert phases[:8] == ["SFT demos", "SFT warm start", "rollout", "credit", "update", "rollout", "credit", "update"]
    # A few trajectories of each iteration are kept, in the store's format, for reading later.
    samples = list(read_jsonl(tmp_path / "a" / "samples" / "trajectories.jsonl"))
    assert [s["traj_id"][:7] for s in samples] == ["it00000"] * 3 + ["it00001"] * 3
    assert all(s["turns"] and s["turns"][0]["action_token_ids"] for s in samples)


class PhaseNames(Progress):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def start(self, name, total, unit):
        super().start(name, total, unit)
        self.names.append(name)


def test_a_run_that_builds_its_tiny_model_repeats_one_that_found_it(tmp_path):
    model = tmp_path / "tiny"  # absent: the first run builds it (drawing random numbers), the second finds it
    runs = []
    for name in ("builds", "finds"):
        recipe = small_recipe(model, tmp_path / name, model={"make_tiny": True}, train={"iterations": 1})
        rows = Trainer(recipe).fit()
        runs.append([{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows])
    assert runs[0] == runs[1]


def test_rollout_cli_runs_a_training_checkpoint(tiny_model_dir, tmp_path):
    Trainer(small_recipe(tiny_model_dir, tmp_path / "run", sft={"steps": 0}, train={"iterations": 1})).fit()
    out = tmp_path / "rollout"
    result = CliRunner().invoke(cli_app, [
        "rollout", "--env", "agentgym/Bifurcation-v0", "--env-kwarg", "horizon=2", "--policy", "transformers",
        "--model", str(tmp_path / "run" / "checkpoints" / "iter_000001"), "--policy-kwarg", "max_new_tokens=4",
        "--policy-kwarg", "device=cpu", "--tasks", "3", "--group-size", "2", "--out", str(out), "-q",
    ])
    assert result.exit_code == 0, result.output
    trajs = list(read_jsonl(out / "trajectories.jsonl"))
    assert len(trajs) == 6 and not any(t["failure"] for t in trajs)
    turn = trajs[0]["turns"][0]  # token-in/token-out, as in training: ids and log-probs are recorded
    assert 1 <= len(turn["action_token_ids"]) <= 4 and len(turn["action_logprobs"]) == len(turn["action_token_ids"])
    missing = CliRunner().invoke(cli_app, ["rollout", "--env", "agentgym/Bifurcation-v0", "--policy", "transformers",
                                           "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "error:" in missing.output and not (tmp_path / "x" / "run.json").exists()


def test_recipe_key_reference_is_generated_and_up_to_date():
    text = recipe_reference()
    for row in ("| `optim.lr` | `float` | `1e-06` |", "| `rollout.deterministic` | `bool` | `True` |",
                "| `generation.sampling.temperature` | `float` | `1.0` |", "| `model.lora.r` | `int` | `16` |",
                "| `train.samples_per_iter` | `int` | `4` |"):
        assert row in text, row
    docs = Path(__file__).resolve().parents[2] / "docs" / "RECIPES.md"
    assert docs.read_text() == text + "\n", "regenerate: agentgym recipe-keys > docs/RECIPES.md"
    assert CliRunner().invoke(cli_app, ["recipe-keys"]).output == text + "\n"


def test_on_policy_update_reuses_its_own_log_probs_and_matches_the_separate_old_forward(tiny_model_dir, tmp_path):
    one_step = {"epochs": 1, "mini_batch_size": None, "micro_batch_size": 3}
    fast = Trainer(small_recipe(tiny_model_dir, tmp_path / "a", optim=one_step, loss={"kl": "none"}))
    slow = Trainer(small_recipe(tiny_model_dir, tmp_path / "b", optim=one_step, loss={"kl": "none"}))
    trajs = fast.collect(fast.task_seeds(0, 2), 4, "x")
    credit = fast.credit_fn(trajs, fast.pipeline, None)
    assert fast.on_policy(len(trajs))

    def no_old_forward(*_):
        raise AssertionError("an on-policy update must not run a separate old-log-prob forward")

    fast._logprobs = no_old_forward
    slow.on_policy = lambda n: False  # the general PPO path: θ_old from its own no-grad forward
    a, b = fast.update(fast.to_batch(trajs, credit)), slow.update(slow.to_batch(trajs, credit))
    for p, q in zip(fast.pm.model.parameters(), slow.pm.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for key in ("loss/policy", "is/mean_abs_log_ratio", "batch/loss_tokens"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    two_epochs = Trainer(small_recipe(tiny_model_dir, tmp_path / "c"))  # epochs 2, mini-batches of 4
    assert not two_epochs.on_policy(len(trajs))


def _fake_rounds(trainer, outcomes_per_round):
    """Make ``collect`` return groups with the given outcomes, one list of groups per call."""
    rounds = iter(outcomes_per_round)

    def collect(seeds, group_size, tag, policy=None, phase=None):
        groups = next(rounds)
        return [Trajectory(f"{tag}-t{i}-{k}", f"{tag}-t{i}", f"task{seeds[i]}", "env", seeds[i], "p",
                           outcome=float(o or 0), terminated=True, failure="infra" if o is None else None)
                for i, group in enumerate(groups) for k, o in enumerate(group)]

    trainer.collect = collect


def test_dynamic_sampling_drops_uninformative_groups_and_rolls_out_more(tiny_model_dir, tmp_path):
    trainer = Trainer(small_recipe(tiny_model_dir, tmp_path, rollout={"dynamic_sampling": True,
                                                                      "max_sampling_rounds": 3}))
    # tasks_per_iter = 2: round 1 has one informative group; a group that differs only by an
    # infra failure is not informative; round 2 fills the batch.
    _fake_rounds(trainer, [[[1, 1, 1, 1], [0, 1, 0, 0]], [[1, 1, None, 1], [1, 0, 1, 1]]])
    trajs, metrics = trainer.collect_batch()
    assert [t.group_id for t in trajs[::4]] == ["it00000-t1", "it00000-r1-t1"]
    assert metrics == {"sampling/rounds": 2.0, "sampling/kept_groups": 2.0, "sampling/dropped_groups": 2.0,
                       "sampling/extra_rollouts": 8.0}
    assert trainer.task_cursor == 4  # the extra round consumed new tasks

    _fake_rounds(trainer, [[[0] * 4, [1] * 4]] * 3)  # nothing informative: capped, the last round is kept
    trajs, metrics = trainer.collect_batch()
    assert metrics["sampling/rounds"] == 3 and metrics["sampling/kept_groups"] == 0 and len(trajs) == 8


def test_dynamic_sampling_runs_in_a_real_iteration(tiny_model_dir, tmp_path):
    recipe = small_recipe(tiny_model_dir, tmp_path, rollout={"dynamic_sampling": True, "max_sampling_rounds": 2},
                          train={"iterations": 1}, sft={"steps": 0})
    row = Trainer(recipe).fit()[-1]
    assert 1 <= row["sampling/rounds"] <= 2 and row["sampling/kept_groups"] <= 2
    with pytest.raises(RecipeError, match="max_sampling_rounds"):
        small_recipe(tiny_model_dir, tmp_path, rollout={"max_sampling_rounds": 0})


def test_an_iteration_with_no_reward_spread_warns_that_its_update_has_no_policy_gradient(tiny_model_dir, tmp_path):
    """Every rollout fails (no option ever leads home), so every GiGPO advantage is 0: the user is
    told the update has no policy gradient and what gets a run out of that state
    (bench/credit_lm.py's collapsed runs sat there silently: the policy had stopped ending its turns)."""
    recipe = small_recipe(tiny_model_dir, tmp_path, env={"kwargs": {"horizon": 2, "p_good": 0.0, "p_bad": 0.0}},
                          loss={"kl": "none", "entropy_coef": 0.0}, train={"iterations": 1})
    with pytest.warns(RuntimeWarning, match="every advantage in this iteration's batch is 0"):
        rows = Trainer(recipe).fit()
    assert rows[-1]["collapse/zero_std_groups"] == 1.0 and rows[-1]["collapse/grad_norm"] == 0.0


def test_truncated_turns_share_counts_turns_cut_at_the_token_limit():
    from agentgym.trainers.metrics import rollout_metrics
    from agentgym.trajectory import Turn

    def traj(reasons):
        turns = [Turn(index=i, observation="o", action="a", finish_reason=r) for i, r in enumerate(reasons)]
        return Trajectory("t", "g", "task", "env", 0, "p", turns=turns)

    metrics = rollout_metrics([traj(["length", "stop", "length"]), traj(["stop"]), traj([])])
    assert metrics["collapse/truncated_turns"] == 0.5


@pytest.mark.parametrize(("epsilon", "imitate", "low", "high"),
                         [(0.0, False, 1.0, 1.0), (1.0, False, 0.15, 0.55), (1.0, True, 1.0, 1.0)])
def test_sft_imitates_the_expert_moves_not_its_random_exploration(tiny_model_dir, tmp_path, epsilon, imitate, low, high):
    """All random (ε = 1): only the random moves that happen to be the expert's (1 in 3 here) are
    imitated. 24 demonstrations over a pool of 3 tasks: each task's repeats explore differently."""
    recipe = small_recipe(tiny_model_dir, tmp_path,
                          sft={"epsilon": epsilon, "imitate_exploration": imitate, "episodes": 24})
    assert low <= Trainer(recipe).sft()["sft/imitated_turn_share"] <= high


def test_sft_masks_exactly_the_explored_turns(tiny_model_dir, tmp_path):
    """ε = 0.5: the turns left out of the loss are those where the expert's move was not taken."""
    recipe = small_recipe(tiny_model_dir, tmp_path, sft={"epsilon": 0.5, "episodes": 8})
    trainer = Trainer(recipe)
    explored = []
    original = Trainer.collect

    def collect(self, seeds, group_size, tag, policy=None, phase=None):  # record which turns the expert explored on
        if policy is not None:
            act = policy.act_sync

            def act_sync(messages, env):
                completion = act(messages, env)
                explored.append(policy.explored)
                return completion

            policy.act_sync = act_sync
        return original(self, seeds, group_size, tag, policy, phase)

    Trainer.collect = collect
    try:
        share = trainer.sft()["sft/imitated_turn_share"]
    finally:
        Trainer.collect = original
    assert 0 < sum(explored) < len(explored)
    assert share == pytest.approx(1 - sum(explored) / len(explored))


def test_tiny_tokenizer_reads_grids_cell_by_cell_and_learns_the_recipe_env(tmp_path):
    from transformers import AutoTokenizer

    from agentgym.trainers.tiny import make_tiny_model, tiny_corpus_envs

    path = make_tiny_model(tmp_path / "m", hidden_size=32, env_ids=("agentgym/ToolWorld-v0",))
    assert tiny_corpus_envs(path) == ["agentgym/Bifurcation-v0", "agentgym/Sokoban-v0", "agentgym/ToolWorld-v0"]
    tok = AutoTokenizer.from_pretrained(path)
    for row in ("#..G.", "##.$_", ".#.@#"):  # one token per cell: a column is a token offset
        assert len(tok.encode(row)) == len(row), [tok.decode([i]) for i in tok.encode(row)]
    text = "Reply with <answer>2</answer>, e.g. héllo 😀\n\n  x"
    assert tok.decode(tok.encode(text)) == text  # byte-level: any string round-trips


def test_a_tiny_model_without_the_recipe_envs_text_is_warned_about(tiny_model_dir, tmp_path):
    recipe = small_recipe(tiny_model_dir, tmp_path, env={"id": "agentgym/ToolWorld-v0", "kwargs": {}})
    with pytest.warns(UserWarning, match="tokenizer trained without agentgym/ToolWorld-v0's text"):
        Trainer(recipe)


def test_siop_iteration_builds_the_scorer_and_runs_on_search(tiny_model_dir, tmp_path):
    recipe = load_recipe("igpo_search", [
        f"model.path={tiny_model_dir}", "model.lora=null", "model.gradient_checkpointing=false", "model.device=cpu",
        "rollout.tasks_per_iter=2", "rollout.group_size=2", "generation.sampling.max_new_tokens=6",
        "env.max_turns=3", "train.iterations=1", f"train.out_dir={tmp_path}", "train.tensorboard=false",
        "optim.micro_batch_size=2", "optim.mini_batch_size=null",
    ])
    recipe.credit = {"method": "siop", "lam": 0.5}
    trainer = Trainer(recipe)
    assert trainer.scorer is not None  # SIOP asks a model for reference-answer log-probs, no gold needed
    row = trainer.fit()[-1]
    assert "credit/siop_answered_share" in row and "credit/siop_mean_q" in row and row["batch/loss_tokens"] > 0
