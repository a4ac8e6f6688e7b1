import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

import agentgym
from agentgym import registry
from agentgym.cli import app
from agentgym.store import read_jsonl
from agentgym.trainers.recipes import RECIPES_DIR

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


def _no_run_left(out: Path) -> bool:
    return not (out / "run.json").exists() and not (out / "trajectories.jsonl").exists()


def test_bad_env_kwarg_fails_before_the_run_and_leaves_nothing(tmp_path):
    out = tmp_path / "r"
    args = ["rollout", "--env", "agentgym/Sokoban-v0", "--policy", "scripted", "--tasks", "2", "--out", str(out), "-q"]
    result = cli(*args, "--env-kwarg", "sise=4")
    assert result.exit_code == 2 and "error:" in result.output and "sise" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _no_run_left(out)
    assert cli(*args).exit_code == 0  # the next attempt is not refused as "already holds a run"


def test_scripted_policy_on_an_env_without_an_expert_is_an_error_line(tmp_path):
    env_file = tmp_path / "envs.yaml"
    env_file.write_text("envs:\n  - {id: tests/NoExpert-v0, entry_point: 'support:NoExpertEnv'}\n")
    out = tmp_path / "r"
    result = cli("--env-file", str(env_file), "rollout", "--env", "tests/NoExpert-v0", "--policy", "scripted",
                 "--out", str(out))
    assert result.exit_code == 2 and "error:" in result.output and "expert_action" in result.output
    assert "Traceback" not in result.output and _no_run_left(out)


def test_bad_env_file_entries_are_error_lines(tmp_path):
    cases = {"envs:\n  - {id: tests/X-v0, entry_point: 'support:EchoEnv', colour: red}\n": "colour",
             "envs:\n  - {id: tests/X-v0, base: agentgym/Nope-v0}\n": "Nope",
             "envs:\n  - {id: bad id, entry_point: 'support:EchoEnv'}\n": "bad id",
             "envs: [unclosed\n": "envs.yaml"}
    for text, needle in cases.items():
        env_file = tmp_path / "envs.yaml"
        env_file.write_text(text)
        result = cli("--env-file", str(env_file), "envs", "list")
        assert result.exit_code == 2 and "error:" in result.output and needle in result.output, result.output
        assert not isinstance(result.exception, (ValueError, KeyError, TypeError)), result.exception


def test_resume_retries_infra_failures_only_when_asked(tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    env_file = tmp_path / "envs.yaml"
    env_file.write_text(f"envs:\n  - {{id: tests/Gated-v0, entry_point: 'support:GatedEnv', kwargs: {{gate: '{gate}'}}}}\n")
    out = tmp_path / "r"
    first = cli("--env-file", str(env_file), "rollout", "--env", "tests/Gated-v0", "--policy", "scripted",
                "--tasks", "3", "--group-size", "2", "--concurrency", "3", "--out", str(out), "-q")
    assert first.exit_code == 0 and "infra: 6" in first.output, first.output
    gate.unlink()  # the infrastructure is back
    # No --env-file: the run's spec comes from run.json. The run's --concurrency is kept.
    plain = cli("rollout", "--out", str(out), "--resume", "-q")
    assert plain.exit_code == 0 and "0 to run, concurrency 3" in plain.output, plain.output
    retried = cli("rollout", "--out", str(out), "--resume", "--retry-infra", "-q")
    assert retried.exit_code == 0 and "6 to run, concurrency 3" in retried.output, retried.output
    trajs = list(read_jsonl(out / "trajectories.jsonl"))
    assert len(trajs) == 6 and all(t["outcome"] == 1.0 and t["failure"] is None for t in trajs)
    assert len(list(read_jsonl(out / "infra_failures.jsonl"))) == 6  # the old records are kept aside
    assert cli("rollout", "--out", str(out), "--retry-infra").exit_code == 2  # only with --resume


def test_help_shows_the_defaults():
    def help_of(command: str) -> str:  # wide enough that no help text wraps
        return runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).output

    out = help_of("rollout")
    for text in ("(distinct seeds). [default: 8]", "sharing its seed (G). [default: 1]",
                 "any --concurrency. [default: 0]"):
        assert text in out, text
    assert "per-turn credit. [default: RUN_DIR/advantages.jsonl]" in help_of("advantages")


SIZED = "envs:\n  - {id: tests/Sized-v0, entry_point: 'support:SizedEnv'}\n"


def test_a_kwarg_that_fails_at_reset_is_a_config_error_before_any_episode(tmp_path):
    env_file = tmp_path / "envs.yaml"
    env_file.write_text(SIZED)
    out = tmp_path / "r"
    result = cli("--env-file", str(env_file), "rollout", "--env", "tests/Sized-v0", "--policy", "random",
                 "--env-kwarg", "size=banana", "--tasks", "4", "--out", str(out), "-q")
    assert result.exit_code == 2, result.output
    assert "could not be reset" in result.output and "'size': 'banana'" in result.output, result.output
    assert _no_run_left(out)


def test_an_env_file_kwarg_is_named_with_the_kwargs_in_force(tmp_path):
    env_file = tmp_path / "envs.yaml"
    env_file.write_text("envs:\n  - {id: tests/Sized-v1, entry_point: 'support:SizedEnv', kwargs: {size: x}}\n")
    result = cli("--env-file", str(env_file), "rollout", "--env", "tests/Sized-v1", "--policy", "random",
                 "--out", str(tmp_path / "r"), "-q")
    assert result.exit_code == 2 and "'size': 'x'" in result.output, result.output  # the file's, not "kwargs {}"


def test_an_env_file_kwarg_the_env_does_not_take_is_refused_when_declared(tmp_path):
    env_file = tmp_path / "envs.yaml"
    env_file.write_text("envs:\n  - {id: tests/Sized-v2, entry_point: 'support:SizedEnv', kwargs: {colour: red}}\n"
                        "  - {id: tests/Sized-v3, entry_point: 'support:NoSuchEnv'}\n")
    result = cli("--env-file", str(env_file), "envs", "list")
    assert result.exit_code == 2 and "colour" in result.output and "tests/Sized-v2" in result.output, result.output
    assert "tests/Sized-v2" not in agentgym.registry.registry
    env_file.write_text("envs:\n  - {id: tests/Sized-v3, entry_point: 'support:NoSuchEnv'}\n")
    result = cli("--env-file", str(env_file), "envs", "list")
    assert result.exit_code == 2 and "cannot be loaded" in result.output and "NoSuchEnv" in result.output


def test_an_unreachable_policy_server_is_found_before_the_run(tmp_path):
    out = tmp_path / "r"
    started = time.monotonic()
    result = cli("rollout", "--env", "agentgym/Sokoban-v0", "--policy", "openai", "--base-url",
                 "http://127.0.0.1:9/v1", "--model", "m", "--tasks", "16", "--group-size", "4", "--out", str(out))
    assert result.exit_code == 2 and "nothing answers at http://127.0.0.1:9/v1/models" in result.output, result.output
    assert time.monotonic() - started < 10 and "retry" not in result.output  # one probe, no retries
    assert _no_run_left(out)


def test_infra_failures_in_a_row_stop_the_run_with_the_cause(tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    env_file = tmp_path / "envs.yaml"
    env_file.write_text(f"envs:\n  - {{id: tests/Gated-v1, entry_point: 'support:GatedEnv', kwargs: {{gate: '{gate}'}}}}\n")
    out = tmp_path / "r"
    result = cli("--env-file", str(env_file), "rollout", "--env", "tests/Gated-v1", "--policy", "scripted",
                 "--tasks", "50", "--group-size", "2", "--concurrency", "1", "--stop-after-infra", "5",
                 "--out", str(out), "-q")
    assert result.exit_code == 1, result.output
    assert "5 episodes in a row failed on infrastructure" in result.output and "gate closed" in result.output
    assert "--resume --retry-infra" in result.output
    assert len(list(read_jsonl(out / "trajectories.jsonl"))) == 5  # the finished ones are kept; resume continues
    gate.unlink()
    resumed = cli("rollout", "--out", str(out), "--resume", "--retry-infra", "-q")
    assert resumed.exit_code == 0 and "100 to run" in resumed.output, resumed.output


def _actions(out: Path) -> dict[str, list[str]]:
    return {t["traj_id"].split("-", 1)[1]: [turn["action"] for turn in t["turns"]]  # without the run id
            for t in read_jsonl(out / "trajectories.jsonl")}


def test_seed_makes_random_and_epsilon_rollouts_repeat_at_any_concurrency(tmp_path):
    agentgym.register("tests/Jittery-v0", "support:JitteryBifurcationEnv", force=True)

    def run(name: str, policy: str, seed: str, concurrency: str) -> dict[str, list[str]]:
        extra = ["--policy-kwarg", "epsilon=0.5"] if policy == "scripted" else []
        out = tmp_path / name
        result = cli("rollout", "--env", "tests/Jittery-v0", "--policy", policy, *extra, "--seed", seed,
                     "--tasks", "8", "--group-size", "4", "--concurrency", concurrency, "--out", str(out), "-q")
        assert result.exit_code == 0, result.output
        return _actions(out)

    for policy in ("random", "scripted"):
        runs = [run(f"{policy}-{c}-{i}", policy, "7", c) for i, c in enumerate(("8", "8", "3"))]
        assert runs[0] == runs[1] == runs[2], policy
        episodes = list(runs[0].values())
        assert len({tuple(a) for a in episodes}) > len(episodes) // 4, policy  # group members differ
        assert run(f"{policy}-seed8", policy, "8", "8") != runs[0], policy


def test_envs_list_piped_is_one_line_per_env_within_80_columns_and_json_has_every_field():
    specs = registry.all_specs()
    listed = runner.invoke(app, ["envs", "list"], env={"COLUMNS": "80"})  # not a terminal, like a pipe
    lines = listed.output.splitlines()
    assert listed.exit_code == 0 and len(lines) == len(specs) + 1
    assert all(len(line) <= 80 for line in lines)
    assert [line.split()[0] for line in lines[1:]] == [s.id for s in specs]
    as_json = json.loads(cli("envs", "list", "--json").output)
    assert as_json == [dataclasses.asdict(s) for s in specs]


def test_train_and_view_help_name_the_recipes_and_the_defaults():
    def help_of(command: str) -> str:
        return runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).output

    train_help = help_of("train")
    for recipe in RECIPES_DIR.glob("*.yaml"):
        assert f"  {recipe.stem}: " in train_help, recipe.stem
    assert "demo_bifurcation: The embedded demo: a tiny Qwen2 model" in train_help
    assert "Where to write the page. [default: RUN_DIR/view.html]" in help_of("view")
