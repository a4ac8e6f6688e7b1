"""``OpenEnvEnv``: a running OpenEnv server as an agentgym env. Both kinds of server are real:
`agentgym serve-openenv` (round trip: the same episodes as in process) and an env written with
openenv-core's own server helpers (guess_server.py, typed actions: JSON mode)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openenv_support import Child, client, guess_server, serve_cli, serving
from support import EchoEnv, FlakyEnv
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.core import Failure, StepResult
from agentgym.envcheck import run_checks
from agentgym.errors import EnvCodeError, InfraError
from agentgym.openenv_env import OpenEnvEnv
from agentgym.registry import unregister
from agentgym.store import read_jsonl


@pytest.fixture(scope="module")
def bifurcation() -> Iterator[Child]:
    child = serve_cli("serve-openenv", "agentgym/Bifurcation-v0", "--env-kwarg", "horizon=4")
    yield child
    child.stop()


@pytest.fixture(scope="module")
def guess() -> Iterator[Child]:
    child = guess_server()
    yield child
    child.stop()


def trajectories(out: Path) -> dict[tuple[int, str], dict]:
    rows = list(read_jsonl(out / "trajectories.jsonl"))
    return {(r["seed"], r["traj_id"].rsplit("-", 1)[-1]): r for r in rows}


def test_agentgym_rollout_through_serve_openenv_replays_the_in_process_run(bifurcation: Child, tmp_path: Path) -> None:
    """`agentgym rollout` on the served env (declared in an --env-file, as a user would) records
    the same episodes, turn by turn, as the same rollout in process."""
    env_file = tmp_path / "remote.yaml"
    env_file.write_text("envs:\n  - {id: remote/Bifurcation-v0, entry_point: 'agentgym.openenv_env:OpenEnvEnv', "
                        f"kwargs: {{base_url: '{bifurcation.url}'}}}}\n")
    common = ["--policy", "random", "--tasks", "6", "--group-size", "2", "--concurrency", "4", "--quiet"]
    remote = CliRunner().invoke(app, ["--env-file", str(env_file), "rollout", "--env", "remote/Bifurcation-v0",
                                      *common, "--out", str(tmp_path / "remote")])
    assert remote.exit_code == 0, remote.output
    local = CliRunner().invoke(app, ["rollout", "--env", "agentgym/Bifurcation-v0", "--env-kwarg", "horizon=4",
                                     *common, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    theirs, ours = trajectories(tmp_path / "remote"), trajectories(tmp_path / "local")
    assert len(theirs) == len(ours) == 12
    for key, mine in ours.items():
        served = theirs[key]
        assert served["failure"] is None and served["task_id"] == mine["task_id"]
        assert (served["outcome"], served["success"], served["terminated"]) == (
            mine["outcome"], mine["success"], mine["terminated"])
        assert [(t["observation"], t["action"], t["reward"], t["state_key"]) for t in served["turns"]] == \
            [(t["observation"], t["action"], t["reward"], t["state_key"]) for t in mine["turns"]]
    assert any(r["success"] for r in ours.values())  # the comparison covers wins too


def test_the_served_envs_prompt_and_legal_actions_come_through(bifurcation: Child) -> None:
    env = OpenEnvEnv(bifurcation.url)
    twin = agentgym.make("agentgym/Bifurcation-v0", horizon=4)
    try:
        obs, info = env.reset(seed=9)
        assert (obs, info["task_id"]) == (twin.reset(seed=9)[0], twin.reset(seed=9)[1]["task_id"])
        assert env.system_prompt == twin.system_prompt and env.legal_actions() == twin.legal_actions()
        assert env.action_field == "message" and env.observation_field == "text"
    finally:
        env.close()


def test_the_remote_env_passes_every_check_of_agentgym_check(bifurcation: Child) -> None:
    """The env contract (Gymnasium's checker, reset determinism, state keys, success, red-team
    attacks) holds through the server, as `agentgym check` runs it."""
    spec = agentgym.register("remote/Bifurcation-v0", OpenEnvEnv, kwargs={"base_url": bifurcation.url}, force=True)
    try:
        results = run_checks(spec, seeds=2)
    finally:
        unregister(spec.id)
    assert [(r.name, r.status, r.reason) for r in results if r.status not in ("PASS", "INFO")] == []


def test_an_openenv_native_server_is_played_in_json_mode(guess: Child) -> None:
    env = OpenEnvEnv(guess.url, max_turns=10)
    try:
        obs, _ = env.reset(seed=4)
        assert obs == "Guess my number between 1 and 100."
        assert env.action_field is None and env.observation_field == "hint"
        assert '"guess"' in env.system_prompt and "JSON" in env.system_prompt
        obs, reward, terminated, _, info = env.step("fifty")
        assert info["parse_error"].startswith("the action must be one JSON object") and not terminated
        obs, reward, terminated, _, info = env.step('{"guess": 500}')  # the server's own validation refuses it
        assert "the server rejected the action" in info["parse_error"] and "less than or equal to 100" in obs
        low, high = 1, 100
        while True:
            mid = (low + high) // 2
            obs, reward, terminated, truncated, info = env.step(json.dumps({"guess": mid}))
            if terminated or truncated:
                break
            low, high = (mid + 1, high) if "higher" in obs else (low, mid - 1)
        assert (obs, reward, terminated, info["success"]) == ("Correct!", 1.0, True, True)
    finally:
        env.close()


def test_the_adapter_does_not_import_openenv_core(guess: Child) -> None:
    """It speaks the protocol itself (websockets, httpx): no gradio import on the client side."""
    code = ("import sys; from agentgym.openenv_env import OpenEnvEnv; "
            f"env = OpenEnvEnv({guess.url!r}); env.reset(seed=0); env.step('{{\"guess\": 3}}'); env.close(); "
            "print(sorted(m for m in sys.modules if m == 'openenv' or m.startswith(('openenv.', 'gradio'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


def test_rollout_engine_plays_concurrent_sessions_on_an_openenv_native_server(guess: Child, tmp_path: Path) -> None:
    """Eight episodes, four sessions at once, on a server we did not write; random text is never
    JSON, so every turn is a readable parse error until the turn limit."""
    env_file = tmp_path / "guess.yaml"
    env_file.write_text("envs:\n  - {id: remote/Guess-v0, entry_point: 'agentgym.openenv_env:OpenEnvEnv', "
                        f"max_turns: 3, kwargs: {{base_url: '{guess.url}'}}}}\n")
    result = CliRunner().invoke(app, ["--env-file", str(env_file), "rollout", "--env", "remote/Guess-v0", "--policy",
                                      "random", "--tasks", "8", "--concurrency", "4", "--quiet",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    rows = list(read_jsonl(tmp_path / "run" / "trajectories.jsonl"))
    assert len(rows) == 8 and all(r["failure"] is None and r["truncated"] for r in rows)
    assert all(t["parse_error"] for r in rows for t in r["turns"]) and all(len(r["turns"]) == 3 for r in rows)


class QuitterEnv(EchoEnv):
    """EchoEnv that ends the episode as the agent's failure when told to quit."""

    def _step(self, action: str) -> StepResult:
        if action == "quit":
            return "You gave up.", 0.0, True, False, {"failure": Failure.AGENT, "success": False}
        return super()._step(action)


def test_the_served_envs_verdicts_come_through() -> None:
    with serving(QuitterEnv) as url:
        env = OpenEnvEnv(url)
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step("quit")
        assert (obs, terminated, truncated, info["failure"], info["success"]) == (
            "You gave up.", True, False, "agent", False)
        env.reset(seed=0)
        assert env.legal_actions() == [str(n) for n in range(10)]
        for _ in range(4):  # EchoEnv's max_turns is 4: the served env truncates, the adapter says so
            obs, reward, terminated, truncated, info = env.step("wrong")
        assert env.legal_actions() == [] and info["failure"] is None
        assert truncated and not terminated and info["success"] is False
        env.close()


def test_infra_failures_are_typed() -> None:
    with pytest.raises(InfraError, match="schema"):
        OpenEnvEnv("http://127.0.0.1:9").reset(seed=0)  # nothing listens on port 9
    with serving(lambda: FlakyEnv(max_turns=4), max_sessions=1) as url:
        env = OpenEnvEnv(url)
        seeds = {}
        probe = FlakyEnv()
        for s in range(50):
            probe.reset(seed=s)
            seeds.setdefault(probe.kind, s)
        env.reset(seed=seeds["infra"])
        with pytest.raises(InfraError, match="sandbox went away"):
            env.step("1")
        env.reset(seed=seeds["crash"])
        with pytest.raises(EnvCodeError, match="ZeroDivisionError"):
            env.step("1")
        second = OpenEnvEnv(url)  # --max-sessions 1: a second session is refused
        with pytest.raises(InfraError, match="CAPACITY_REACHED"):
            second.reset(seed=0)
        env.close()
        second.close()


def test_a_server_that_dies_mid_episode_is_an_infra_failure() -> None:
    server = guess_server()  # its own: this test kills it
    env = OpenEnvEnv(server.url, timeout=10)
    env.reset(seed=0)
    server.stop()
    with pytest.raises(InfraError, match="step failed"):
        env.step('{"guess": 50}')
    with pytest.raises(InfraError):
        env.reset(seed=0)  # a new session cannot open either
    env.close()


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenEnvEnv("127.0.0.1:8000")
    with pytest.raises(ValueError, match="timeout"):
        OpenEnvEnv("http://127.0.0.1:8000", timeout=0)


def test_sessions_end_without_tracebacks_on_the_server(bifurcation: Child) -> None:
    """Closing a session (ours or openenv-core's client) is a session ending, not an error on the
    server's stderr (openenv-core's endpoint raises from its cleanup when both sides close)."""
    for _ in range(3):
        env = OpenEnvEnv(bifurcation.url)
        env.reset(seed=0)
        env.close()
        with client(bifurcation.url) as theirs:
            theirs.reset(seed=0)
    time.sleep(1)
    assert "Traceback" not in "".join(bifurcation.stderr)
