"""agentgym/PythonTIR-v0: SimpleTIR protocol, persistent session, void turns, infra typing."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest
from support import container_gone

import agentgym
from agentgym.core import InfraError, TextEnv
from agentgym.envs.code.tasks import BUILTIN_TEMPLATES, DEFAULT_FAMILIES
from agentgym.envs.code.tir import PythonTIREnv
from agentgym.parsers import PythonBlockParser
from agentgym.policies.base import Completion, Policy
from agentgym.rollout import WorkItem, run_episode

ENV_ID = "agentgym/PythonTIR-v0"
MakeEnv = Callable[..., TextEnv]


def code(source: str) -> str:
    return f"Let me run this.\n```python\n{source}\n```"


@pytest.mark.parametrize("source", ["builtin", "reasoning_gym"])
def test_expert_solves_95_percent(make_env: MakeEnv, run_expert: Callable[..., float], backend: str,
                                  source: str) -> None:
    env = make_env(ENV_ID, source=source, backend=backend)
    per_source = 3 * len(BUILTIN_TEMPLATES) if source == "builtin" else 3  # each template / family 3 times
    tasks = [s * env.tasks_per_source + i for s in range(len(env.sources)) for i in range(per_source)]
    solved = sum(run_expert(env, task=t) >= 1.0 for t in tasks)
    assert solved >= 0.95 * len(tasks), f"{solved}/{len(tasks)}"


def test_variables_and_imports_persist_across_turns_but_not_episodes(make_env: MakeEnv, backend: str) -> None:
    env = make_env(ENV_ID, source="builtin", backend=backend)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(code("import math\nx = 41\nopen('note.txt', 'w').write('hi')"))
    assert "no output" in obs and info["role"] == "tool" and not terminated and reward == 0.0
    assert info["tool_calls"] == [{"name": "python", "arguments": {"code": "import math\nx = 41\nopen('note.txt', "
                                                                           "'w').write('hi')"}}]
    obs = env.step(code("print(math.gcd(x + 1, 28), open('note.txt').read())"))[0]
    assert obs == "\nCode execution result: 14 hi\n"
    env.reset(seed=1)  # a new episode: fresh session and an empty work dir
    obs = env.step(code("import os\nprint(sorted(os.listdir('.')))\nprint(x)"))[0]
    assert obs == "\nCode execution result: []\nNameError: name 'x' is not defined\n"


def test_infinite_loop_gets_a_timeout_observation(make_env: MakeEnv, backend: str) -> None:
    env = make_env(ENV_ID, source="builtin", backend=backend, timeout=1)
    env.reset(seed=0)
    env.step(code("y = 5"))
    obs, reward, terminated, truncated, info = env.step(code("print('start')\nwhile True:\n    pass"))
    assert obs.startswith("\nCode execution result: start\nTimeoutError: the code ran longer than 1 s")
    assert "variables and imports are gone" in obs and info["timed_out"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "NameError" in env.step(code("print(y)"))[0]  # the session restarted, as the observation said
    assert env.step(code("print(2 + 2)"))[0] == "\nCode execution result: 4\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 / 0", "ZeroDivisionError: division by zero"),
        ("print('partial')\nraise ValueError('bad value')", "partial\nValueError: bad value"),
        ("def f(:\n    pass", "SyntaxError: invalid syntax"),
        ("import sys\nsys.exit(3)", "the code exited with status 3"),
        ("import os\nos._exit(0)", "the session ended"),
    ],
)
def test_crashing_code_shows_the_last_error_line(make_env: MakeEnv, source: str, expected: str) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local")
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(code(source))
    assert obs.startswith("\nCode execution result: ") and expected in obs and "Traceback" not in obs
    assert (reward, terminated, info["void"]) == (0.0, False, False)
    assert env.step(code("print('alive')"))[0] == "\nCode execution result: alive\n"


def test_huge_output_is_capped(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local", max_output_chars=200)
    env.reset(seed=0)
    obs, _, terminated, _, _ = env.step(code("print('a' * 10**7)\nprint('tail')"))
    assert len(obs) < 400 and obs.count("a") >= 90 and "characters cut" in obs and not terminated
    assert obs.rstrip().endswith("[the rest of the output was dropped]")
    obs = env.step(code("print('\\n'.join(str(i) for i in range(5000)))"))[0]
    assert "result: 0\n1\n" in obs and obs.rstrip().endswith("4999") and len(obs) < 400


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("I think the answer is 12.", "no ```python block and no \\boxed{} answer"),
        ("", "no ```python block"),
        ("```python\nprint(1)\n", "never closed"),
        ("```python\n\n   \n```", "the code block is empty"),
        ("```bash\nls\n```", "no ```python block"),
        ("\\boxed{}", "\\boxed{} is empty"),
        ("\\boxed{12", "never closed"),
        ("x" * 200_000, "200000 characters long"),
        ("\x00\ufeff🙂 <answer>1</answer>", "no ```python block"),
        ("<think>```python\nprint(1)\n```</think> so the answer is clear", "no ```python block"),
    ],
)
def test_void_turns_end_the_episode_with_a_readable_message(make_env: MakeEnv, action: str, error: str) -> None:
    env = make_env(ENV_ID, source="builtin")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert error in info["parse_error"] and error in obs and "\\boxed{answer}" in obs
    assert (reward, terminated, truncated, info["void"], info["role"]) == (0.0, True, False, True, "user")
    assert env.sandbox.current is None  # nothing ran, so no sandbox was made


def test_final_answers_are_scored(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local")
    env.reset(options={"task": "builtin/10"})  # the dice template: a fraction answer
    gold = env.task.answer
    num, den = gold.split("/")
    for answer, reward in [(gold, 1.0), (f"\\frac{{{num}}}{{{den}}}", 1.0), (str(int(num) / int(den)), 0.0),
                           ("7", 0.0), ("many", 0.0)]:
        env.reset(options={"task": "builtin/10"})
        obs, r, terminated, _, info = env.step(f"So the probability is $\\boxed{{{answer}}}$.")
        assert (r, terminated, info["answer"], info["correct"]) == (reward, True, answer, reward == 1.0)
    env.reset(options={"task": "builtin/0"})
    assert env.step("The sum is \\boxed{" + f"{int(env.task.answer):,}" + "}")[1] == 1.0  # 1,234 style


def test_boxed_answers_in_prose_and_printed_output(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local")
    env.reset(options={"task": "builtin/3"})
    gold = env.task.answer
    # A box before the code block is the answer; the code is not run.
    obs, reward, terminated, _, info = env.step(f"\\boxed{{{gold}}}\n```python\nprint(1)\n```")
    assert (obs, reward, terminated, info["tool_calls"]) == ("", 1.0, True, ())
    # A box printed by the code ends the episode too (SimpleTIR); the observation shows the output.
    env.reset(options={"task": "builtin/3"})
    obs, reward, terminated, _, info = env.step(code(f"print('\\\\boxed{{{gold}}}')"))
    assert (reward, terminated, info["answer"]) == (1.0, True, gold) and gold in obs
    # A box in the code that is not printed, or one after the block, is not an answer.
    env.reset(options={"task": "builtin/3"})
    obs, reward, terminated, _, _ = env.step(code(f"s = '\\\\boxed{{{gold}}}'") + f"\n\\boxed{{{gold}}}")
    assert (reward, terminated) == (0.0, False) and "no output" in obs


first_python_block = PythonBlockParser().block_span


def test_only_the_first_python_block_runs() -> None:
    text = "intro\n```text\nnot code\n```\n```py\nprint(1)\n```\n```python\nprint(2)\n```"
    start, end = first_python_block(text)
    assert text[start:end] == "```py\nprint(1)\n```"
    assert first_python_block("```python\nunterminated") is None
    assert first_python_block("```text\na\n```\n```python\nb") is None


def test_thinking_is_stripped_once(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local")
    env.reset(seed=0)  # a closing think tag inside the code is code, not the end of a thinking block
    obs = env.step("<think>plan</think>\n```python\nprint('</think>')\n```")[0]
    assert obs == "\nCode execution result: </think>\n"
    env.reset(seed=0)  # long thinking is not what makes a turn void
    info = env.step("<think>" + "x" * 150_000 + "</think>I need no code.")[4]
    assert info["void"] and "no ```python block" in info["parse_error"]


def test_generation_stops_at_the_first_blocks_closing_fence(make_env: MakeEnv) -> None:
    (stop,) = PythonTIREnv.stop_sequences
    text = "intro\n```python\nprint(6 * 7)\n```\nmore\n```python\nprint(0)\n```\n"
    assert text.index(stop) + len(stop) == first_python_block(text)[1] + 1  # not at the opening fence
    env = make_env(ENV_ID, source="builtin", backend="local")
    # What a stopping policy returns, and a completion that ended (EOS) right after the fence.
    for action in (text[: text.index(stop) + len(stop)], "intro\n```python\nprint(6 * 7)\n```"):
        env.reset(options={"task": "builtin/0"})
        obs, reward, terminated, _, info = env.step(action)
        assert (obs, terminated, info["void"]) == ("\nCode execution result: 42\n", False, False)
        assert info["tool_calls"] == [{"name": "python", "arguments": {"code": "print(6 * 7)"}}]
    # A policy that cannot tell a stop from a natural end (OpenAI) may append it to an answer.
    env.reset(options={"task": "builtin/3"})
    assert env.step(f"\\boxed{{{env.task.answer}}}{stop}")[1:3] == (1.0, True)


def test_state_key_digests_what_the_tool_returned(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID, source="builtin", backend="local")
    keys = []
    for source in ("print(6 * 7)", "x = 42\nprint(x)", "print(41)"):
        _, info = env.reset(seed=3)
        assert info["state_key"] == "start"
        keys.append(env.step(code(source))[4]["state_key"])
    assert keys[0] == keys[1] != keys[2]  # the same output from different code is the same situation
    assert env.step(code("print(1)"))[4]["state_key"] not in keys  # history counts


def test_tasks_are_seeded_and_addressable(make_env: MakeEnv) -> None:
    env = make_env(ENV_ID)
    assert env.sources[0] == "builtin" and {f"rg/{f}" for f in DEFAULT_FAMILIES} == set(env.sources[1:])
    seen = {env.reset(seed=s)[1]["source"] for s in range(200)}
    assert len(seen) == len(env.sources)  # every source gets picked
    _, info = env.reset(options={"task": "rg/gcd/7"})
    assert (info["task_id"], info["source"]) == ("rg/gcd/7", "rg/gcd")
    assert env.reset(options={"task": env.tasks_per_source + 7})[1]["task_id"] == f"rg/{env.sources[1][3:]}/7"
    for bad in ("rg/nope/1", "builtin/x", f"builtin/{env.tasks_per_source}", -1, env.num_tasks, 2.5):
        with pytest.raises(ValueError):
            env.reset(options={"task": bad})
    with pytest.raises(ValueError, match="unknown reasoning-gym"):
        PythonTIREnv(families=["no_such_family"])


def test_degrades_to_builtin_tasks_without_reasoning_gym(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import reasoning_gym now fails
    with caplog.at_level(logging.WARNING, logger="agentgym.envs.code"):
        env = PythonTIREnv()
    assert env.sources == ["builtin"] and env.rg is None
    assert "reasoning-gym cannot be imported" in caplog.text and "agentgym-rl[code]" in caplog.text
    assert env.reset(seed=0)[1]["source"] == "builtin"
    with pytest.raises(ImportError, match="needs reasoning-gym"):
        PythonTIREnv(source="reasoning_gym")


@pytest.mark.docker
def test_killed_container_is_an_infra_failure_not_reward_zero(make_env: MakeEnv, docker_client: Any, sandbox_image: str) -> None:
    env = make_env(ENV_ID, source="builtin", backend="docker")
    env.reset(seed=0)
    env.step(code("x = 1"))
    first = env.sandbox.current
    docker_client.containers.get(first.container_id).kill()
    with pytest.raises(InfraError):
        env.step(code("print(x)"))
    assert env.sandbox.current is None  # the dead sandbox was dropped ...
    assert container_gone(docker_client, first.container_id)
    env.reset(seed=0)
    obs = env.step(code("print(2)"))[0]  # ... and the next episode gets a fresh one
    assert obs == "\nCode execution result: 2\n" and env.sandbox.current is not first


@pytest.mark.docker
def test_rollout_records_a_killed_sandbox_as_infra(make_env: MakeEnv, docker_client: Any, sandbox_image: str) -> None:
    class KillThenRun(Policy):
        name = "kill-then-run"

        async def act(self, messages: list, env: TextEnv) -> Completion:
            box = env.sandbox.current
            if box is None:
                return Completion(text=code("x = 1"))
            docker_client.containers.get(box.container_id).kill()
            return Completion(text=code("print(x)"))

    env = make_env(ENV_ID, source="builtin", backend="docker")
    traj = asyncio.run(run_episode(env, KillThenRun(), WorkItem(0, 0, 0, "g", "t"), env_id=ENV_ID))
    assert traj.failure == "infra" and "SandboxCrashed" in traj.failure_detail
    assert len(traj.turns) == 1 and traj.outcome == 0.0


@pytest.mark.docker
def test_sandbox_that_cannot_start_is_an_infra_failure(make_env: MakeEnv, docker_client: Any, sandbox_image: str) -> None:
    env = make_env(ENV_ID, source="builtin", backend="docker", image="agentgym/no-such-image:0")
    env.reset(seed=0)
    with pytest.raises(InfraError, match="no-such-image"):
        env.step(code("print(1)"))


@pytest.mark.docker
def test_close_and_garbage_collection_remove_the_container(docker_client: Any, sandbox_image: str) -> None:
    def live(container_id: str) -> bool:
        return bool(docker_client.api.containers(all=True, filters={"id": container_id}))

    ids = []
    for closing in (True, False):
        env = agentgym.make(ENV_ID, source="builtin", backend="docker", sandbox_labels={"agentgym.test": "1"})
        env.reset(seed=0)
        env.step(code("print(1)"))
        ids.append(env.sandbox.current.container_id)
        assert live(ids[-1])
        if closing:
            env.close()
            env.close()  # idempotent
        del env
        gc.collect()
        assert container_gone(docker_client, ids[-1])
