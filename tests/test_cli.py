import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.store import read_jsonl

runner = CliRunner()
TESTS = Path(__file__).parent


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_version_and_help():
    assert cli("--version").output.strip() == f"agentgym {agentgym.__version__}"
    out = cli("rollout", "--help").output
    for option in ("--env", "--policy", "--group-size", "--concurrency", "--resume", "--max-tokens"):
        assert option in out


def test_envs_list_and_show():
    listed = cli("envs", "list")
    assert listed.exit_code == 0
    assert "agentgym/Bifurcation-v0" in listed.output and "agentgym/Sokoban-v0" in listed.output
    shown = cli("envs", "show", "agentgym/Sokoban-v0")
    assert shown.exit_code == 0 and "first observation" in shown.output


def test_unknown_env_suggests_close_match():
    result = cli("envs", "show", "agentgym/Sokobn-v0")
    assert result.exit_code == 2 and "agentgym/Sokoban-v0" in result.output


def test_rollout_writes_groups_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "run"
    args = ["rollout", "--env", "agentgym/Sokoban-v0", "--policy", "scripted", "--tasks", "3",
            "--group-size", "2", "--out", str(out), "-q"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    trajs = list(read_jsonl(out / "trajectories.jsonl"))
    assert len(trajs) == 6 and len({t["traj_id"] for t in trajs}) == 6
    assert "success rate" in result.output and "100.0%" in result.output
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["env_spec"]["id"] == "agentgym/Sokoban-v0" and manifest["group_size"] == 2
    again = cli(*args)
    assert again.exit_code == 2 and "--resume" in again.output
    clash = cli("rollout", "--out", str(out), "--resume", "--tasks", "5")
    assert clash.exit_code == 2 and "differ" in clash.output
    done = cli("rollout", "--out", str(out), "--resume", "-q")
    assert done.exit_code == 0 and "0 to run" in done.output


def test_bad_kwarg_syntax_is_a_clear_error(tmp_path):
    result = cli("rollout", "--env", "agentgym/Sokoban-v0", "--policy", "scripted",
                 "--env-kwarg", "oops", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "key=value" in result.output


def test_kill_9_then_resume_yields_exactly_n_times_g(tmp_path):
    env_file = tmp_path / "envs.yaml"
    env_file.write_text("envs:\n  - {id: tests/Slow-v0, entry_point: 'support:SlowEnv', max_turns: 4,"
                        " kwargs: {delay: 0.03}}\n")
    out = tmp_path / "run"
    tasks, group = 30, 3
    command = [sys.executable, "-m", "agentgym.cli", "--env-file", str(env_file), "rollout", "--env",
               "tests/Slow-v0", "--policy", "scripted", "--tasks", str(tasks), "--group-size", str(group),
               "--concurrency", "4", "--out", str(out), "-q"]
    environ = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = out / "trajectories.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 10):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = list(read_jsonl(path))
    assert 10 <= len(partial) < tasks * group, "the kill must land mid-run"
    resumed = subprocess.run(command + ["--resume"], env=environ,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    ids = [t["traj_id"] for t in read_jsonl(path)]
    assert len(ids) == tasks * group and len(set(ids)) == tasks * group
    groups = {}
    for t in read_jsonl(path):
        groups.setdefault(t["group_id"], set()).add(t["seed"])
    assert len(groups) == tasks and all(len(seeds) == 1 for seeds in groups.values())
