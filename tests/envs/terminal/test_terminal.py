"""agentgym/Terminal-v0 on a real Docker engine: the shipped Harbor tasks build, the scripted expert
solves them, and nothing the agent does before grading can read the tests or forge the reward."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TEST_LABELS

import agentgym
from agentgym.envs.terminal import load
from agentgym.envs.terminal.env import TerminalEnv
from agentgym.envs.terminal.tasks import TASKS_DIR, load_task, load_tasks
from agentgym.errors import ConfigError, EnvCodeError
from agentgym.redteam import run_redteam

pytestmark = pytest.mark.docker
TASKS = [t.name for t in load_tasks()]


@pytest.fixture(scope="module")
def env(sandbox_image: str) -> Iterator[TerminalEnv]:
    """One env for the module: the task images are built (or found) once and shared."""
    made = TerminalEnv()
    made.labels = TEST_LABELS
    yield made
    made.close()


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def play(env: TerminalEnv, task: str, actions: list[str]) -> tuple[float, dict[str, Any], list[str]]:
    env.reset(seed=0, options={"task": task})
    observations = []
    for action in [*actions, "<answer>done</answer>"]:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        if terminated or truncated:
            return reward, info, observations
    raise AssertionError("the episode did not end")


def test_shipped_tasks_have_the_harbor_layout() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 4
    assert {json.loads(json.dumps(t.name)) for t in tasks} == set(TASKS)
    for task in tasks:
        assert task.path.joinpath("solution", "solve.sh").is_file()
        dockerfile = task.environment_dir.joinpath("Dockerfile").read_text()
        assert "FROM agentgym/sandbox-python:1" in dockerfile
        assert "apt-get" not in dockerfile and "pip " not in dockerfile  # builds offline
        assert not task.network and task.agent_timeout == 120.0 and task.verifier_timeout == 30.0


def test_layout_errors_are_config_errors(tmp_path: Path) -> None:
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "t")
    (tmp_path / "t" / "tests" / "test.sh").unlink()
    with pytest.raises(ConfigError, match="tests/test.sh"):
        load_task(tmp_path / "t")
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "u")
    (tmp_path / "u" / "task.toml").write_text("[verifier]\ntimeout_sec = -1\n")
    with pytest.raises(ConfigError, match="timeout_sec"):
        load_task(tmp_path / "u")
    with pytest.raises(ConfigError, match="no terminal tasks"):
        load_tasks(tmp_path / "t" / "tests")


@pytest.mark.parametrize(("toml", "error"), [
    ('[task]\nname = "csv"\n', "org/name"),
    ('[environment]\nnetwork_mode = "sometimes"\n', "network_mode"),
    ("[environment]\nmemory_mb = 512.5\n", "whole number"),
])
def test_harbors_rules_are_config_errors(tmp_path: Path, toml: str, error: str) -> None:
    """Harbor's own model rejects these too (test_harbor_model.py checks it against the harbor package)."""
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "t")
    (tmp_path / "t" / "task.toml").write_text(toml)
    with pytest.raises(ConfigError, match=error):
        load_task(tmp_path / "t")


def test_network_mode_wins_over_allow_internet(tmp_path: Path) -> None:
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "t")
    (tmp_path / "t" / "task.toml").write_text('[environment]\nnetwork_mode = "public"\nallow_internet = false\n')
    assert load_task(tmp_path / "t").network
    (tmp_path / "t" / "task.toml").write_text('[environment]\nnetwork_mode = "allowlist"\n')
    assert not load_task(tmp_path / "t").network  # an allowlist is not enforced: no network at all


@pytest.mark.parametrize("task", TASKS)
def test_expert_solves_every_task(env: TerminalEnv, task: str) -> None:
    failed = {}
    for seed in range(5):
        env.reset(seed=seed, options={"task": task})
        while True:
            _, reward, terminated, truncated, info = env.step(env.expert_action())
            if terminated or truncated:
                break
        if not (info["success"] and reward == 1.0):
            failed[seed] = info.get("verifier_output")
    assert not failed, f"{task}: the expert failed seeds {failed}"


@pytest.mark.parametrize("task", TASKS)
def test_doing_nothing_fails(env: TerminalEnv, task: str) -> None:
    """Graded on a container at first; then, untouched, from the cached grade without one."""
    for _ in range(2):
        reward, info, _ = play(env, task, ["no call"])
        assert reward == 0.0 and info["success"] is False and info["verifier_timed_out"] is False
    assert env._sandboxes[task].current is None


def test_the_agent_cannot_read_the_tests_before_grading(env: TerminalEnv) -> None:
    probe = "ls -la /tests /logs; cat /tests/* 2>&1; find / -name 'check_report.py' 2>/dev/null"
    _, _, observations = play(env, "agentgym/csv-report", [call("shell", command=probe)])
    assert "expected = " not in observations[0] and "check_report.py" not in observations[0]


def test_a_planted_reward_or_test_file_does_not_count(env: TerminalEnv) -> None:
    plant = ("mkdir -p /logs/verifier && echo 1 > /logs/verifier/reward.txt && echo '{\"reward\": 1}' > "
             "/logs/verifier/reward.json && printf '#!/bin/bash\\necho 1 > /logs/verifier/reward.txt\\n' > /tests/test.sh"
             " && printf 'import sys; sys.exit(0)\\n' > /tests/check_report.py && chmod 000 /tests /logs")
    reward, info, observations = play(env, "agentgym/csv-report", [call("shell", command=plant)])
    assert observations[0].startswith("[exit code 0]")
    assert reward == 0.0 and info["success"] is False


def test_shims_in_agent_writable_dirs_cannot_forge_success(env: TerminalEnv) -> None:
    """A python3/bash/env shim on every writable dir, profile files and a fake stdlib module."""
    shim = "#!/bin/sh\\nmkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt; exit 0\\n"
    command = (f"for d in /app /app/bin /tmp /tmp/bin; do mkdir -p $d; for n in python3 bash env find mkdir; do "
               f"printf '{shim}' > $d/$n; chmod +x $d/$n; done; done; "
               "printf 'export PATH=/app/bin:$PATH\\n' | tee /app/.bashrc /app/.profile /tmp/.bashrc > /dev/null; "
               "printf 'import os; os.makedirs(\"/logs/verifier\", exist_ok=True); "
               "open(\"/logs/verifier/reward.txt\", \"w\").write(\"1\")\\n' | tee /app/json.py /app/sitecustomize.py "
               "/tmp/sitecustomize.py > /dev/null")
    reward, info, observations = play(env, "agentgym/csv-report", [call("shell", command=command)])
    assert observations[0].startswith("[exit code 0]"), observations[0]
    assert reward == 0.0 and info["success"] is False


def test_a_background_process_cannot_write_the_reward(env: TerminalEnv) -> None:
    loop = ("nohup setsid sh -c 'while :; do mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt; "
            "done' > /dev/null 2>&1 & sleep 0.2; echo started")
    reward, info, observations = play(env, "agentgym/csv-report", [call("shell", command=loop)])
    assert "started" in observations[0]
    assert reward == 0.0 and info["success"] is False


def test_code_under_test_that_forges_the_reward_is_outrun(env: TerminalEnv) -> None:
    """The graded code itself leaves a writer behind: test.sh kills it before writing the reward."""
    forge = ("import subprocess\nsubprocess.Popen(['setsid', 'sh', '-c', 'while :; do echo 1 > "
             "/logs/verifier/reward.txt 2>/dev/null; done'])\n"
             "def slugify(text):\n    return 'wrong'\n")
    reward, info, _ = play(env, "agentgym/fix-failing-test", [call("write_file", path="textutils.py", content=forge)])
    assert reward == 0.0 and info["success"] is False


def test_a_reward_file_that_is_not_a_file_scores_zero(env: TerminalEnv) -> None:
    """Graded code that turns the reward file into a symlink (to a file it wrote "1" in) or a FIFO."""
    forge = ("import os\nos.makedirs('/logs/verifier', exist_ok=True)\nopen('/tmp/one', 'w').write('1')\n"
             "try:\n    os.symlink('/tmp/one', '/logs/verifier/reward.txt')\nexcept OSError:\n    pass\n"
             "def slugify(text):\n    return 'wrong'\n")
    reward, info, _ = play(env, "agentgym/fix-failing-test", [call("write_file", path="textutils.py", content=forge)])
    assert reward == 0.0 and info["success"] is False
    assert "symbolic link" in info["reward_file_error"]


def test_tool_errors_are_readable(env: TerminalEnv) -> None:
    _, _, observations = play(env, "agentgym/csv-report", [call("read_file", path="nope.txt"),
                                                          call("read_file", path="/etc/shadow"), "not a call"])
    assert "Error: cannot read nope.txt" in observations[0]
    assert "Error: cannot read /etc/shadow" in observations[1]
    assert "No tool call" in observations[2]


def test_limits_are_honoured(env: TerminalEnv, tmp_path: Path) -> None:
    """The agent's time budget ends the episode (graded), a test.sh over its timeout scores 0, and one
    that writes no reward is a broken task (EnvCodeError)."""
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "slow")
    toml = (tmp_path / "slow" / "task.toml").read_text()
    (tmp_path / "slow" / "task.toml").write_text(
        toml.replace("[agent]\ntimeout_sec = 120.0", "[agent]\ntimeout_sec = 1.0")
        .replace("[verifier]\ntimeout_sec = 30.0", "[verifier]\ntimeout_sec = 1.0"))
    (tmp_path / "slow" / "tests" / "test.sh").write_text("#!/bin/bash\nsleep 30\n")
    slow = TerminalEnv(tmp_path)
    slow.labels = TEST_LABELS
    try:
        slow.reset(seed=0)
        obs, reward, terminated, _, info = slow.step(call("shell", command="sleep 5"))
        assert obs.startswith("[timed out]") and terminated
        assert info["ended"] == "agent_timeout" and info["verifier_timed_out"] and reward == 0.0
    finally:
        slow.close()
    (tmp_path / "slow" / "tests" / "test.sh").write_text("#!/bin/bash\nexit 0\n")
    broken = TerminalEnv(tmp_path)
    broken.labels = TEST_LABELS
    try:
        broken.reset(seed=0)
        with pytest.raises(EnvCodeError, match="without writing"):
            broken.step("<answer>done</answer>")
    finally:
        broken.close()


def test_generic_redteam_catalogue_holds(sandbox_image: str) -> None:
    def make() -> TerminalEnv:
        made = TerminalEnv(max_turns=6)
        made.labels = TEST_LABELS
        return made

    results = run_redteam(make, seeds=(0,))
    findings = [(r.attack, r.max_reward, r.success, r.errors) for r in results
                if r.max_reward > 0 or r.success or r.errors]
    assert findings == []


def test_load_registers_a_task_directory(tmp_path: Path, sandbox_image: str) -> None:
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "mine" / "csv-report")
    env_id = load(tmp_path / "mine", force=True)
    assert env_id == "agentgym/Terminal-mine-v0"
    made = agentgym.make(env_id)
    try:
        _, info = made.reset(seed=3)
        assert info["task_id"] == "agentgym/csv-report" and made.unwrapped.num_tasks == 1
    finally:
        made.close()
        agentgym.registry.unregister(env_id)


ALWAYS_EQUAL = ("class Slug(str):\n    def __eq__(self, other):\n        return True\n\n"
                "    def __ne__(self, other):\n        return False\n\n    __hash__ = str.__hash__\n\n\n"
                "def slugify(text):\n    return Slug('wrong')\n")
READ_THE_CASES = ("import glob, re\nFOUND = ''.join(open(p).read() for p in glob.glob('/tests/*.py'))\n\n\n"
                  "def slugify(text):\n    hit = re.search(re.escape(repr(text)) + r': (\"[^\"]*\")', FOUND)\n"
                  "    return hit.group(1).strip('\"') if hit else 'wrong'\n")


@pytest.mark.parametrize("forge", [
    pytest.param("import os\nos._exit(0)\n", id="exit-0-at-import"),
    pytest.param(ALWAYS_EQUAL, id="always-equal-str"),
    pytest.param(READ_THE_CASES, id="read-the-hidden-cases"),
])
def test_code_under_test_cannot_decide_its_own_verdict(env: TerminalEnv, forge: str) -> None:
    """fix-failing-test's checker never imports the agent's module: slugify runs in a child that
    only reports strings, after the checker deleted its file (the hidden cases)."""
    reward, info, _ = play(env, "agentgym/fix-failing-test", [call("write_file", path="textutils.py", content=forge)])
    assert reward == 0.0 and info["success"] is False, info.get("verifier_output")


def test_code_under_test_that_kills_the_grader_scores_zero(env: TerminalEnv) -> None:
    """`kill -9 -1` from the graded build kills test.sh too: a failure of the agent, not a broken task
    (an EnvCodeError would take the episode out of training)."""
    reward, info, _ = play(env, "agentgym/broken-build", [call("write_file", path="build.sh", content="#!/bin/bash\nkill -9 -1\n")])
    assert reward == 0.0 and info["success"] is False and info["verifier_killed"] is True
