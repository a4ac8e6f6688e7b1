"""verifiers environments as agentgym envs (agentgym.envs.verifiers), against the real verifiers
package: full episodes through the env API (single-turn, multi-turn, tools), the rubric's score
as the reward, typed errors for a broken rubric, `agentgym rollout`, `check` and `train` on a
``verifiers/<module>-v0`` id. Run in .venv-verifiers (bash scripts/setup_verifiers.sh): -m verifiers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.verifiers
vf = pytest.importorskip("verifiers")

import vf_arith  # noqa: E402  (this folder is on sys.path: pytest's rootdir-relative import)

import agentgym  # noqa: E402
from agentgym.core import Failure, InfraError  # noqa: E402
from agentgym.envs.verifiers import VerifiersEnv, load  # noqa: E402
from agentgym.errors import ConfigError, EnvCodeError  # noqa: E402
from agentgym.redteam import GENERIC_ATTACKS  # noqa: E402

HERE = Path(__file__).parent


def _env(kind: str, **kwargs) -> VerifiersEnv:
    return load(vf_arith.load_environment(kind), **kwargs)


def test_single_turn_rubric_score_is_the_reward_and_pass_threshold_the_success():
    env = _env("single")
    assert env.num_tasks == 6 and env.max_turns == 1
    assert env.system_prompt == "Answer with <answer>NUMBER</answer>."
    seen = {}
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        assert obs.startswith("What is ") and info["task_id"] == f"SingleTurnEnv-{info['example_id']}"
        seen[info["task_id"]] = obs
        a, b = (int(x) for x in obs.removeprefix("What is ").removesuffix("?").split(" + "))
        _, reward, terminated, truncated, info = env.step(f"<answer>{a + b}</answer>")
        assert (reward, terminated, truncated, info["success"]) == (pytest.approx(1.2), True, False, True)
        assert info["metrics"]["correct"] == 1.0 and info["metrics"]["formatted"] == 1.0
        assert info["stop_condition"] == "max_turns_reached"
    assert len(seen) == 6  # six seeds, six rows: the pool is covered once
    env.reset(seed=0)
    _, reward, _, _, info = env.step("<answer>999</answer>")  # well formatted, wrong: 0.2 < pass_threshold 0.5
    assert reward == pytest.approx(0.2) and info["success"] is False
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert first == again
    env.close()


def test_multi_turn_env_response_is_the_next_observation_and_a_stop_condition_ends_it():
    env = _env("guess")
    obs, info = env.reset(seed=0)
    assert "Guess it" in obs and env.max_turns == 6
    secret = int(env.state["answer"])
    keys = {info["state_key"]}
    low, high, turns = 1, 8, 0
    while True:
        guess = (low + high) // 2
        obs, reward, terminated, truncated, info = env.step(str(guess))
        turns += 1
        keys.add(info["state_key"])
        if terminated or truncated:
            break
        assert reward == 0.0 and info["role"] == "user" and info["success"] is None
        assert obs in ("Higher.", "Lower.")
        low, high = (guess + 1, high) if obs == "Higher." else (low, guess - 1)
    assert guess == secret and terminated and not truncated
    assert reward == 1.0 and info["success"] is True and info["stop_condition"] == "solved"
    assert len(keys) == turns + 1  # every turn is a new situation
    # a reply that is not a number: the env's own message, the episode goes on; then the turn limit
    env.reset(seed=1)
    obs, reward, terminated, truncated, _ = env.step("no idea")
    assert obs == "Reply with a single number from 1 to 8." and not (terminated or truncated)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step("no idea")
    assert truncated and not terminated and reward == 0.0 and info["success"] is False
    env.close()


def test_a_final_env_response_ends_the_episode_and_is_the_last_observation():
    env = _env("guess_final")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.state["answer"])
    assert (obs, reward, terminated, truncated) == ("Correct!", 1.0, True, False)
    assert info["stop_condition"] == "has_final_env_response" and info["success"] is True
    env.close()


def test_tool_env_runs_calls_written_in_the_action_and_scores_the_answer():
    env = _env("tools")
    assert '"name": "lookup"' in env.system_prompt and "<tool_call>" in env.system_prompt
    assert {s["function"]["name"] for s in env.tool_schemas()} == {"lookup", "add"}
    obs, _ = env.reset(seed=0)
    names = [w for w in vf_arith.SECRETS if f"the {w} number" in obs]
    calls = "".join(f'<tool_call>{{"name": "lookup", "arguments": {{"name": "{n}"}}}}</tool_call>' for n in names)
    obs, reward, terminated, _, info = env.step(calls)
    values = [vf_arith.SECRETS[n] for n in names]
    assert not terminated and info["role"] == "tool" and reward == 0.0
    assert [c["result"] for c in info["tool_calls"]] == [str(v) for v in values]
    assert obs == f"[tool] {values[0]}\n\n[tool] {values[1]}"
    obs, _, terminated, _, info = env.step(f'<tool_call>{{"name": "add", "arguments": {{"a": {values[0]}, '
                                           f'"b": {values[1]}}}}}</tool_call>')
    assert obs == str(sum(values)) and not terminated
    # a call with a bad argument: verifiers' ToolEnv shows the error as the tool result
    obs, _, terminated, _, _ = env.step('<tool_call>{"name": "lookup", "arguments": {"name": "purple"}}</tool_call>')
    assert "purple" in obs and not terminated
    obs, reward, terminated, truncated, info = env.step(f"<answer>{sum(values)}</answer>")  # no call: the end
    assert terminated and reward == 1.0 and info["success"] is True and info["stop_condition"] == "no_tools_called"
    env.close()


def test_a_stateful_tool_env_injects_state_into_its_tools():
    env = _env("notes")
    assert [s["function"]["parameters"]["required"] for s in env.tool_schemas()] == [["text"]]  # notes hidden
    obs, _ = env.reset(seed=0)
    word = env.state["answer"]
    call = f'<tool_call>{{"name": "note", "arguments": {{"text": "{word}"}}}}</tool_call>'
    assert env.step(call)[0] == "1 notes"
    assert env.step(call)[0] == "2 notes"
    _, reward, terminated, _, info = env.step("done")
    assert terminated and reward == 1.0 and info["success"] is True
    env.close()


def test_a_tool_error_the_env_stops_on_is_the_agents_fault_and_still_scored():
    env = _env("stop_on_tool_error")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step('<tool_call>{"name": "lookup", "arguments": {"name": "x"}}</tool_call>')
    assert terminated and info["failure"] == Failure.AGENT and reward == 0.0 and info["success"] is False
    env.close()


def test_a_rubric_that_raises_is_an_env_code_error_not_a_reward_of_zero():
    env = _env("raising")
    env.reset(seed=0)
    with pytest.raises(EnvCodeError, match="reward function broken raised ZeroDivisionError"):
        env.step("<answer>5</answer>")
    env.close()


def test_group_reward_functions_are_refused_and_bad_references_are_clear():
    def together(completions, answers) -> list[float]:
        return [0.0] * len(completions)

    group = vf_arith.load_environment("single")
    group.rubric.add_reward_func(together)
    with pytest.raises(ConfigError, match="group reward functions"):
        load(group)
    with pytest.raises(ValueError, match="unknown kind"):
        VerifiersEnv("vf_arith", env_args={"kind": "nope"})
    with pytest.raises(ModuleNotFoundError):
        VerifiersEnv("no_such_vf_module")
    with pytest.raises(ValueError, match="split"):
        VerifiersEnv("vf_arith", split="test")


def test_cleanup_handlers_run_once_per_episode_finished_or_abandoned():
    env = _env("guess")
    vf_arith.GuessEnv.released.clear()
    env.reset(seed=0)
    env.step(env.state["answer"])  # solved: cleanup ran before scoring
    env.reset(seed=1)
    env.step("1")
    env.reset(seed=2)  # the seed-1 episode was left unfinished: released here
    env.close()  # and the seed-2 one on close
    assert len(vf_arith.GuessEnv.released) == 3 and len(set(vf_arith.GuessEnv.released)) == 3
    env.close()  # closing twice is fine
    assert len(vf_arith.GuessEnv.released) == 3


def test_an_unreachable_judge_is_infra_and_envs_that_skip_env_response_are_refused():
    def judge(completion) -> float:
        raise ConnectionError("judge model unreachable")

    vf_env = vf_arith.load_environment("single")
    vf_env.rubric.add_reward_func(judge)
    env = load(vf_env)
    env.reset(seed=0)
    with pytest.raises(InfraError, match="judge model unreachable"):
        env.step("<answer>5</answer>")

    class OwnLoop(vf.SingleTurnEnv):
        async def rollout(self, input, client, model, sampling_args=None):
            raise NotImplementedError

    with pytest.raises(ConfigError, match="env_response"):
        load(OwnLoop(dataset=vf_env.get_dataset(), rubric=vf.Rubric(funcs=[judge])))


@pytest.mark.parametrize("kind", ["single", "guess", "tools"])
def test_malformed_actions_never_crash(kind):
    env = _env(kind)
    for attack in GENERIC_ATTACKS:
        obs, _ = env.reset(seed=0)
        for action in attack.script(env, obs)[: env.max_turns]:
            *_, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                assert isinstance(info["success"], bool)
                break
    env.reset(seed=0)
    obs, *_ = env.step(b"\xff bytes")  # type: ignore[arg-type]
    assert "Invalid action" in obs
    env.close()


@pytest.mark.parametrize("kind", ["single", "guess", "notes"])
def test_agentgym_check_passes(kind):
    from agentgym.envcheck import run_checks

    results = run_checks(agentgym.spec("verifiers/vf_arith-v0"), {"env_args": {"kind": kind}})
    assert not [r for r in results if r.status == "FAIL"], [r for r in results if r.status == "FAIL"]
    assert {r.name for r in results if r.status == "PASS"} >= {"gymnasium-checker", "state_key", "task_id",
                                                               "success", "task-pool", "malformed-actions", "redteam"}


def test_registry_id_builds_the_env_of_a_module():
    env = agentgym.make("verifiers/vf_arith-v0", env_args={"kind": "guess", "rows": 2})
    assert isinstance(env, VerifiersEnv) and env.num_tasks == 2
    assert agentgym.spec("verifiers/vf_arith-v0").kwargs == {"environment": "vf_arith"}
    env.close()


def test_an_env_file_declares_a_verifiers_env_from_a_file(tmp_path):
    from agentgym import registry

    (tmp_path / "envs.yaml").write_text(
        "envs:\n  - id: mine/Guess-v0\n    entry_point: agentgym.envs.verifiers:VerifiersEnv\n"
        f"    kwargs: {{environment: '{HERE / 'vf_arith.py'}:load_environment', env_args: {{kind: guess}}}}\n")
    (declared,) = registry.load_yaml(tmp_path / "envs.yaml")
    try:
        env = agentgym.make("mine/Guess-v0")
        obs, info = env.reset(seed=0)
        assert "Guess it" in obs and info["task_id"] == f"vf_arith-{info['example_id']}"
        env.close()
    finally:
        registry.unregister(declared.id)


def _cli(*args: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(HERE), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], env=environ, capture_output=True,
                          text=True, timeout=300)


def test_agentgym_rollout_and_check_on_a_verifiers_id(tmp_path):
    done = _cli("rollout", "--env", "verifiers/vf_arith-v0", "--env-kwarg", "env_args={kind: guess, rows: 3}",
                "--policy", "random", "--tasks", "3", "--group-size", "2", "--out", str(tmp_path / "run"), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    trajs = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 6 and all(t["failure"] is None and len(t["turns"]) >= 1 for t in trajs)
    assert len({t["task_id"] for t in trajs}) == 3
    checked = _cli("check", "verifiers/vf_arith-v0", "--env-kwarg", "env_args={kind: tools}")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = _cli("rollout", "--env", "verifiers/vf_arith-v0", "--env-kwarg", "env_args={kind: raising}",
                  "--policy", "random", "--tasks", "2", "--out", str(tmp_path / "broken"), "-q")
    assert broken.returncode != 0
    trajs = [json.loads(line) for line in (tmp_path / "broken" / "trajectories.jsonl").read_text().splitlines()]
    assert trajs and all(t["failure"] == "error" and "ZeroDivisionError" in t["failure_detail"] for t in trajs)


def test_agentgym_train_runs_an_iteration_on_a_verifiers_env(tmp_path):
    import typer
    from typer.testing import CliRunner

    from agentgym.trainers.cli import train

    app = typer.Typer()
    app.command("train")(train)
    app.command("other")(lambda: None)  # two commands: typer keeps "train" as a subcommand name
    result = CliRunner().invoke(app, [
        "train", "gigpo_toolworld", f"model.path={tmp_path / 'tiny'}", "model.device=cpu", "train.iterations=1",
        f"train.out_dir={tmp_path / 'run'}", "train.tensorboard=false", "train.plot=false",
        "env.id=verifiers/vf_arith-v0", "env.kwargs={env_args: {kind: guess}}", "env.max_turns=4",
        "sft.steps=0", "rollout.tasks_per_iter=2", "rollout.group_size=2", "rollout.task_pool=5",
        "generation.sampling.max_new_tokens=8",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["rollout/infra_failures"] == 0 and rows[1]["rollout/turns_mean"] >= 1
    assert "rollout/success_rate" in rows[1] and rows[1]["batch/loss_tokens"] > 0


def test_an_openai_policy_calls_a_verifiers_tool_env_through_function_calling(monkeypatch):
    """The policy sends the env's tool schemas; the server's structured tool_calls come back as the
    action's Hermes text, verifiers' ToolEnv runs them, and the next request carries one tool
    message per call id (the loopback server rejects anything else)."""
    import asyncio

    monkeypatch.syspath_prepend(str(HERE.parents[1] / "policies"))
    from openai_server import ChatServer, Reply

    from agentgym.policies import OpenAIChatPolicy
    from agentgym.rollout import plan, run_episode

    env = _env("tools")
    obs, _ = env.reset(seed=0)
    names = [w for w in vf_arith.SECRETS if f"the {w} number" in obs]
    total = sum(vf_arith.SECRETS[n] for n in names)
    with ChatServer() as server:
        server.script(Reply(tool_calls=[{"name": "lookup", "arguments": {"name": n}} for n in names]),
                      Reply(text=f"<answer>{total}</answer>"))

        async def episode():
            async with OpenAIChatPolicy(server.url, "tiny", timeout=5.0) as policy:
                return await run_episode(env, policy, plan("vf", tasks=1, group_size=1)[0],
                                         env_id="verifiers/vf_arith-v0")

        traj = asyncio.run(episode())
        requests = list(server.requests)
    assert traj.failure is None and traj.num_turns == 2 and traj.outcome == 1.0 and traj.success
    assert [c["result"] for c in traj.turns[0].tool_calls] == [str(vf_arith.SECRETS[n]) for n in names]
    assert all(r["body"]["tools"] == env.tool_schemas() for r in requests)
    history = requests[1]["body"]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool", "tool"]
    env.close()
