"""``agentgym advantages RUN_DIR --config``: a real rollout directory in, per-turn credit out."""

import numpy as np
import pytest
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.credit import assign_credit, build_pipeline
from agentgym.store import read_jsonl

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("credit-cli") / "run"
    result = runner.invoke(app, ["rollout", "--env", "agentgym/Sokoban-v0", "--policy", "scripted",
                                 "--policy-kwarg", "epsilon=0.5", "--tasks", "4", "--group-size", "4",
                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def test_writes_one_record_per_trajectory_aligned_with_turns(run_dir, tmp_path):
    config = tmp_path / "credit.yaml"
    config.write_text("stages:\n  - gigpo: {gamma: 0.95, omega: 1.0}\n")
    result = runner.invoke(app, ["advantages", str(run_dir), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "singleton anchor share" in result.output and "wrote" in result.output
    trajs = list(read_jsonl(run_dir / "trajectories.jsonl"))
    records = list(read_jsonl(run_dir / "advantages.jsonl"))
    assert [r["traj_id"] for r in records] == [t["traj_id"] for t in trajs]
    for traj, rec in zip(trajs, records, strict=True):
        assert len(rec["advantages"]) == len(rec["loss_mask"]) == len(traj["turns"])
    expected = assign_credit(trajs, {"stages": [{"gigpo": {"gamma": 0.95, "omega": 1.0}}]})
    flat = np.concatenate([r["advantages"] for r in records])
    np.testing.assert_allclose(flat, expected.advantages)
    assert np.abs(flat).max() > 0, "ε-greedy groups must differ in outcome, so some credit is non-zero"


def test_rerun_replaces_the_file(run_dir):
    for _ in range(2):
        assert runner.invoke(app, ["advantages", str(run_dir)]).exit_code == 0  # default: GRPO
    assert len(list(read_jsonl(run_dir / "advantages.jsonl"))) == 16


@pytest.mark.parametrize(
    ("config", "message"),
    [("stages:\n  - info_gain: {}\n", "gold-answer"), ("stages:\n  - no_such_stage: {}\n", "no_such_stage")],
)
def test_bad_configs_are_clear_errors(run_dir, tmp_path, config, message):
    path = tmp_path / "credit.yaml"
    path.write_text(config)
    result = runner.invoke(app, ["advantages", str(run_dir), "--config", str(path)])
    assert result.exit_code == 2 and message in result.output


def test_a_directory_without_trajectories_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["advantages", str(tmp_path)])
    assert result.exit_code == 2 and "trajectories.jsonl" in result.output


def test_summary_shows_the_whole_pipeline_and_defines_its_terms(run_dir, tmp_path):
    config = tmp_path / "credit.yaml"
    config.write_text("stages:\n  - invalid_action_penalty: {penalty: 0.25}\n"
                      "  - gigpo: {gamma: 0.9, omega: 0.5, similarity: 0.875, episode_stats: step}\n"
                      "  - void_filter: {}\n")
    result = runner.invoke(app, ["advantages", str(run_dir), "--config", str(config)])
    assert result.exit_code == 0, result.output
    header = " ".join(result.output.split())
    assert len(repr(build_pipeline(config))) > 150  # long enough that a cut would show
    assert " ".join(repr(build_pipeline(config)).split()) in header  # the whole Pipeline(...), not ~100 chars
    assert "trained turn share: fraction of turns" in header
    assert "singleton anchor share: fraction of GiGPO anchor groups" in header
