"""examples/gridworld: the write-your-own-env example of docs/envs.md is a real, installable package, and its
recipe trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env
from support import bench_module, install_by_hand

import agentgym
from agentgym.store import read_jsonl

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gridworld"


@pytest.fixture(scope="module")
def gridworld():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agentgym_gridworld

        yield agentgym_gridworld
    finally:
        sys.path.remove(str(EXAMPLE))


def test_the_example_env_keeps_the_contract(gridworld):
    env = agentgym.make("gridworld/Grid-v0")
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=4)
    again = agentgym.make("gridworld/Grid-v0").reset(seed=4)
    assert (obs, info["task_id"]) == (again[0], again[1]["task_id"])  # a seed is a task
    assert obs.count("A") == 1 and obs.count("G") == 1 and obs.count("#") == 4
    assert set(env.legal_actions()) == {"up", "down", "left", "right"}
    obs2, reward, terminated, _, info2 = env.step("jump!")
    assert info2["parse_error"] and reward == 0.0 and not terminated and "not a move" in obs2
    assert info2["state_key"] == info["state_key"]  # nothing moved: the same decision situation
    for seed in range(30):  # the expert always reaches the goal, by a shortest path
        env.reset(seed=seed)
        shortest, terminated, turns = len(env._path()), False, 0
        while not terminated and turns < 20:
            _, reward, terminated, _, _ = env.step(env.expert_action())
            turns += 1
        assert terminated and reward == 1.0 and turns == shortest


def test_the_example_installs_as_a_plugin_and_rolls_out(tmp_path):
    site = tmp_path / "site"
    install_by_hand(site, "agentgym_gridworld", "gridworld = agentgym_gridworld")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)])}
    out = tmp_path / "run"
    for policy in ("scripted", "random"):
        proc = subprocess.run([sys.executable, "-m", "agentgym.cli", "rollout", "--env", "gridworld/Grid3-v0",
                               "--policy", policy, "--tasks", "6", "--group-size", "2", "--out", str(out / policy),
                               "-q"], capture_output=True, text=True, timeout=120, env=environ)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    scripted = list(read_jsonl(out / "scripted" / "trajectories.jsonl"))
    assert len(scripted) == 12 and all(t["outcome"] == 1.0 for t in scripted)
    assert json.loads((out / "random" / "run.json").read_text())["env_spec"]["kwargs"] == {"size": 3, "walls": 1}


def test_the_gridworld_recipe_and_its_benchmark_run_end_to_end(gridworld, tmp_path):
    """The example's recipe (examples/gridworld/gridworld.yaml) trains, through the benchmark script
    that measures it: the tiny model is built with a tokenizer that learnt the env's text, the SFT
    warm start imitates only the expert's moves, RL runs and both policies are evaluated on the same
    episodes. Shrunk to a couple of iterations: nothing about learning is asserted here."""
    pytest.importorskip("torch")
    with bench_module("gridworld_learning") as bench:
        result = bench.main([
            "train.iterations=2", "sft.steps=3", "sft.episodes=6", "sft.epsilon=0.5", "eval.episodes_per_task=1",
            "eval.every=1", "rollout.tasks_per_iter=2", "rollout.group_size=2", "rollout.task_pool=3",
        ])
    assert result["env"] == "gridworld/Grid3-v0" and result["eval_episodes"] == 3
    assert [i for i, _ in result["eval_curve"]] == [0, 1, 2]
    assert 0.0 < result["sft_imitated_turn_share"] < 1.0  # ε = 0.5: the random moves are not imitated
    for key in ("random", "after_sft", "trained"):
        assert 0.0 <= result[key] <= 1.0
