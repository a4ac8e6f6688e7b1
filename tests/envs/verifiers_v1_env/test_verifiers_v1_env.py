"""verifiers 0.4 (v1) environments as agentgym envs (agentgym.envs.verifiers_v1), against the real
package: a taskset + harness (vf1_arith, in this folder) played one model turn per step, single turn
and with tool calls the harness runs (its own in-process harness; verifiers' null harness program,
with an MCP tool server verifiers starts), the trace's score as the reward, a raising reward function as
EnvCodeError, `agentgym rollout` and `check` on a ``verifiers-v1/<taskset>-v0`` id.
Run in .venv-verifiers-v1 (bash scripts/setup_verifiers_v1.sh): -m verifiers_v1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.verifiers_v1
pytest.importorskip("verifiers.v1")

import agentgym  # noqa: E402
from agentgym.envs.verifiers_v1 import VerifiersV1Env, load  # noqa: E402
from agentgym.errors import ConfigError, EnvCodeError  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the taskset id vf1_arith is this folder's module


def _sum(obs: str) -> int:
    a, b = obs.removeprefix("What is ").removesuffix("?").split(" + ")
    return int(a) + int(b)


def test_single_turn_the_trace_reward_is_the_reward():
    env = load("vf1_arith", harness={"id": "vf1_arith", "tools": False})
    assert env.num_tasks == 4
    seen = set()
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        assert obs.startswith("What is ") and env.system_prompt == "Answer with <answer>NUMBER</answer>."
        seen.add(info["task_id"])
        obs, reward, terminated, truncated, info = env.step(f"<answer>{_sum(obs)}</answer>")
        assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
        assert info["metrics"] == {"correct": 1.0, "turns": 1.0} and info["stop_condition"] == "agent_completed"
    assert seen == {f"vf1_arith-{i}" for i in range(4)}
    env.reset(seed=0)
    *_, reward, terminated, _, info = env.step("<answer>999</answer>")
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    env.close()


@pytest.fixture
def uv_on_path(monkeypatch):
    """verifiers runs its harness programs (null, bash) as PEP 723 scripts with uv (the setup script
    installs it in the venv; a first run fetches the program's dependencies from the package index),
    and a tool server as ``python -m <its module>`` (this folder, on PYTHONPATH)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    if shutil.which("uv") is None:
        pytest.fail("uv is not installed (bash scripts/setup_verifiers_v1.sh installs it)")


def test_verifiers_own_null_harness_runs_its_chat_program_against_the_policy(uv_on_path):
    env = load("vf1_arith", harness="null", timeout=600)
    obs, info = env.reset(seed=0)
    assert obs.startswith("What is ") and env.system_prompt == "Answer with <answer>NUMBER</answer>."
    _, reward, terminated, truncated, info = env.step(f"<answer>{_sum(obs)}</answer>")
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert info["stop_condition"] == "agent_completed"
    env.close()


def test_an_mcp_toolset_served_by_verifiers_runs_the_calls_of_the_action(uv_on_path):
    env = load("vf1_arith", harness="null", taskset_args={"kind": "mcp"}, timeout=600)
    obs, _ = env.reset(seed=2)
    assert [t["function"]["name"] for t in env.tool_schemas()] == ["add"] and "<tool_call>" in env.system_prompt
    a, b = obs.removeprefix("What is ").removesuffix("?").split(" + ")
    call = json.dumps({"name": "add", "arguments": {"a": int(a), "b": int(b)}})
    obs, reward, terminated, _, info = env.step(f"<tool_call>{call}</tool_call>")
    assert (obs, reward, terminated, info["role"]) == (str(_sum(f"What is {a} + {b}?")), 0.0, False, "tool")
    assert info["tool_calls"] == [{"name": "add", "arguments": {"a": int(a), "b": int(b)}, "result": obs}]
    _, reward, terminated, _, info = env.step(f"<answer>{obs}</answer>")
    assert (reward, terminated, info["success"], info["metrics"]["turns"]) == (1.0, True, True, 2.0)
    env.close()


def test_tool_calls_are_run_by_the_harness_one_step_per_model_turn():
    env = load("vf1_arith")  # the taskset module's own harness, with its add tool
    obs, info = env.reset(seed=1)
    assert "add" in env.system_prompt and [t["function"]["name"] for t in env.tool_schemas()] == ["add"]
    a, b = obs.removeprefix("What is ").removesuffix("?").split(" + ")
    call = json.dumps({"name": "add", "arguments": {"a": int(a), "b": int(b)}})
    obs, reward, terminated, _, info = env.step(f"<tool_call>{call}</tool_call>")
    assert (reward, terminated, info["role"]) == (0.0, False, "tool")
    assert obs == str(int(a) + int(b)) and info["tool_calls"][0]["result"] == obs
    # a malformed call is a text reply with no tool call: this harness takes it as the answer
    obs, reward, terminated, _, info = env.step("<tool_call>{broken</tool_call>")
    assert (reward, terminated, info["success"]) == (0.0, True, False) and "parse_error" in info
    env.close()
    env = load("vf1_arith")
    obs, _ = env.reset(seed=1)
    env.step(f"<tool_call>{call}</tool_call>")
    _, reward, terminated, _, info = env.step(f"<answer>{_sum(obs)}</answer>")
    assert (reward, terminated, info["success"], info["metrics"]["turns"]) == (1.0, True, True, 2.0)
    env.close()


def test_max_turns_is_verifiers_limit_and_truncates():
    env = load("vf1_arith", max_turns=2)
    obs, _ = env.reset(seed=0)
    call = json.dumps({"name": "add", "arguments": {"a": 1, "b": 1}})
    *_, terminated, truncated, _ = env.step(f"<tool_call>{call}</tool_call>")
    assert not (terminated or truncated)
    _, reward, terminated, truncated, info = env.step(f"<tool_call>{call}</tool_call>")
    assert (terminated, truncated, info["stop_condition"], reward) == (False, True, "max_turns", 0.0)
    env.close()


def test_a_raising_reward_function_is_env_code_error_not_reward_zero():
    env = load("vf1_arith", taskset_args={"kind": "raising"}, harness={"id": "vf1_arith", "tools": False})
    env.reset(seed=0)
    with pytest.raises(EnvCodeError, match="ZeroDivisionError"):
        env.step("<answer>2</answer>")
    obs, _ = env.reset(seed=1)  # the env stays usable
    assert obs.startswith("What is ")
    env.close()


def test_a_harness_on_another_dialect_than_chat_completions_is_refused():
    env = load("vf1_arith", harness={"id": "vf1_arith", "api": "responses"})
    with pytest.raises(ConfigError, match="ResponsesDialect"):
        env.reset(seed=0)
    env.close()


def test_reset_mid_episode_abandons_the_rollout():
    env = load("vf1_arith")
    env.reset(seed=0)
    env.step(f"<tool_call>{json.dumps({'name': 'add', 'arguments': {'a': 1, 'b': 2}})}</tool_call>")
    obs, _ = env.reset(seed=0)
    *_, reward, terminated, _, _ = env.step(f"<answer>{_sum(obs)}</answer>")
    assert (reward, terminated) == (1.0, True)
    env.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], env=environ, capture_output=True,
                          text=True, timeout=300)


def test_agentgym_rollout_and_check_on_a_verifiers_v1_id(tmp_path):
    assert agentgym.spec("verifiers-v1/vf1_arith-v0").kwargs == {"taskset": "vf1_arith"}
    done = _cli("rollout", "--env", "verifiers-v1/vf1_arith-v0", "--policy", "random", "--tasks", "4",
                "--out", str(tmp_path / "run"), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    trajs = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 4 and all(t["failure"] is None and len(t["turns"]) >= 1 for t in trajs)
    assert len({t["task_id"] for t in trajs}) == 4
    checked = _cli("check", "verifiers-v1/vf1_arith-v0")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = _cli("rollout", "--env", "verifiers-v1/vf1_arith-v0", "--env-kwarg", "taskset_args={kind: raising}",
                  "--policy", "random", "--tasks", "2", "--out", str(tmp_path / "broken"), "-q")
    assert broken.returncode != 0
    trajs = [json.loads(line) for line in (tmp_path / "broken" / "trajectories.jsonl").read_text().splitlines()]
    assert trajs and all(t["failure"] == "error" and "ZeroDivisionError" in t["failure_detail"] for t in trajs)


def test_the_v1_env_passes_agentgym_check():
    from agentgym.envcheck import run_checks

    results = run_checks(agentgym.spec("verifiers-v1/vf1_arith-v0"), {"max_turns": 4})
    assert not [r for r in results if r.status == "FAIL"], [r for r in results if r.status == "FAIL"]
    env = agentgym.make("verifiers-v1/vf1_arith-v0")
    assert isinstance(env.unwrapped, VerifiersV1Env)
    env.close()
