"""``agentgym serve-openenv``: agentgym envs played to the end by openenv-core's own client over
loopback, concurrent sessions, malformed actions and typed failures."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openenv_support import client, serve_cli, serving
from support import FlakyEnv
from websockets.sync.client import connect

import agentgym
from agentgym.core import TextEnv


@pytest.fixture(scope="module")
def bifurcation_url() -> Iterator[str]:
    """The CLI itself: `agentgym serve-openenv agentgym/Bifurcation-v0 --port 0` in a child process."""
    child = serve_cli("serve-openenv", "agentgym/Bifurcation-v0", "--env-kwarg", "horizon=4", "--seed", "3")
    yield child.url
    child.stop()


def play_in_lockstep(url: str, env_id: str, seed: int, **kwargs: Any) -> tuple[float, int]:
    """Play seed's episode with openenv-core's client, the expert's moves read off an in-process
    twin; every observation, reward and end must be the twin's. Returns (return, turns)."""
    twin: TextEnv = agentgym.make(env_id, **kwargs)
    with client(url) as env:
        result = env.reset(seed=seed)
        text, _ = twin.reset(seed=seed)
        obs = result.observation
        assert (obs["text"], obs["seed"], result.done) == (text, seed, False)
        assert obs["system_prompt"] == twin.system_prompt and obs["legal_actions"] == twin.legal_actions()
        total = 0.0
        while True:
            action = twin.expert_action()
            result = env.step({"message": action})
            text, reward, terminated, truncated, info = twin.step(action)
            obs = result.observation
            assert (obs["text"], result.reward, result.done) == (text, reward, terminated or truncated)
            assert (obs["terminated"], obs["truncated"], obs["turn"], obs["error"]) == (terminated, truncated,
                                                                                       twin.turn, None)
            total += result.reward
            if result.done:
                assert obs["success"] is info["success"] and obs["legal_actions"] is None
                return total, twin.turn
    twin.close()


def test_openenv_client_plays_bifurcation_episodes_to_the_end(bifurcation_url: str) -> None:
    returns = [play_in_lockstep(bifurcation_url, "agentgym/Bifurcation-v0", seed, horizon=4) for seed in range(4)]
    assert all(turns == 4 for _, turns in returns)
    assert any(total == 1.0 for total, _ in returns)  # the expert wins where the twin says it does


def test_openenv_client_plays_sokoban_to_the_goal() -> None:
    with serving(lambda: agentgym.make("agentgym/Sokoban-v0"), name="agentgym/Sokoban-v0") as url:
        total, turns = play_in_lockstep(url, "agentgym/Sokoban-v0", seed=11)
    assert total > 0 and turns >= 1


def test_the_server_describes_itself(bifurcation_url: str) -> None:
    schema = httpx.get(f"{bifurcation_url}/schema", trust_env=False).json()
    assert schema["action"]["required"] == ["message"]
    assert schema["action"]["properties"]["message"]["type"] == "string"
    assert schema["observation"]["required"] == ["text"]
    metadata = httpx.get(f"{bifurcation_url}/metadata", trust_env=False).json()
    assert metadata["name"] == "agentgym/Bifurcation-v0" and metadata["version"] == agentgym.__version__


def test_unseeded_resets_count_up_from_the_servers_seed(bifurcation_url: str) -> None:
    twin = agentgym.make("agentgym/Bifurcation-v0", horizon=4)
    with client(bifurcation_url) as env:
        seeds = [env.reset().observation["seed"] for _ in range(3)]
        assert seeds == [3, 4, 5]  # --seed 3
        assert env.reset().observation["text"] == twin.reset(seed=6)[0]
        state = env.state()
        assert state["seed"] == 6 and state["step_count"] == 0 and state["done"] is False


def test_concurrent_sessions_each_play_their_own_episode() -> None:
    """Eight clients at once, each its own seed, in lockstep with its own twin: no session sees
    another's state; a ninth client beyond --max-sessions is refused with a typed error."""
    kwargs = {"horizon": 6}
    with serving(lambda: agentgym.make("agentgym/Bifurcation-v0", **kwargs), max_sessions=8) as url:
        results: dict[int, Any] = {}
        barrier = threading.Barrier(8)

        def play(seed: int) -> None:
            try:
                barrier.wait(30)
                results[seed] = play_in_lockstep(url, "agentgym/Bifurcation-v0", seed, **kwargs)
            except BaseException as e:  # noqa: BLE001 — reported by the assert below
                results[seed] = e

        threads = [threading.Thread(target=play, args=(seed,)) for seed in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all(isinstance(r, tuple) and r[1] == 6 for r in results.values()), results
        assert len(results) == 8

        held = [client(url) for _ in range(8)]
        for c in held:
            c.reset(seed=0)
        with connect(url.replace("http", "ws") + "/ws", proxy=None) as ninth:  # the server speaks first
            refusal = json.loads(ninth.recv(timeout=30))
        assert refusal["type"] == "error" and refusal["data"]["code"] == "CAPACITY_REACHED"
        for c in held:
            c.close()


@pytest.mark.parametrize("action, problem", [
    ({"message": 5}, "'message' must be a string, got int"),
    ({"message": None}, "no 'message'"),
    ({}, "no 'message'"),
    ({"message": "1", "move": "up"}, "unknown field(s) 'move'"),
])
def test_a_malformed_action_is_a_readable_observation(bifurcation_url: str, action: dict, problem: str) -> None:
    with client(bifurcation_url) as env:
        env.reset(seed=1)
        result = env.step(action)
        obs = result.observation
        assert obs["error"] == "malformed_action" and problem in obs["text"] and '{"message"' in obs["text"]
        assert (result.done, result.reward, obs["turn"]) == (False, None, 0)  # the env never saw it
        assert env.step({"message": "1"}).observation["turn"] == 1  # the session goes on


@pytest.mark.parametrize("data, problem", [
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"seed": "seven"}, "got 'seven'"),
    ({"seed": 1, "options": [1]}, "options must be an object, got list"),
])
def test_a_malformed_reset_is_a_readable_observation(bifurcation_url: str, data: dict, problem: str) -> None:
    with client(bifurcation_url) as env:
        result = env.reset(**data)
        assert result.observation["error"] == "malformed_reset" and problem in result.observation["text"]
        assert env.step({"message": "1"}).observation["error"] == "no_episode"  # no episode was started
        assert env.reset(seed=1).observation["error"] is None


def test_steps_outside_an_episode_are_readable(bifurcation_url: str) -> None:
    with client(bifurcation_url) as env:
        result = env.step({"message": "1"})
        assert result.observation["error"] == "no_episode" and "reset" in result.observation["text"]
        env.reset(seed=2)
        while not env.step({"message": "1"}).done:
            pass
        result = env.step({"message": "1"})
        assert result.done and result.observation["error"] == "episode_over"
        assert "reset" in result.observation["text"]
        assert env.reset(seed=2).observation["turn"] == 0


def seed_of(kind: str) -> int:
    """A seed on which FlakyEnv's step fails with ``kind`` ('infra', 'crash', None: it does not)."""
    env = FlakyEnv()
    return next(s for s in range(50) if env.reset(seed=s) and env.kind == kind)


def test_failures_are_typed_and_the_session_survives_them() -> None:
    with serving(lambda: FlakyEnv(max_turns=4), name="tests/Flaky-v0") as url, client(url) as env:
        env.reset(seed=seed_of("infra"))
        result = env.step({"message": "1"})
        assert result.done and result.observation["failure"] == "infra" and result.observation["error"] == "infra"
        assert "sandbox went away" in result.observation["text"]
        env.reset(seed=seed_of("crash"))
        result = env.step({"message": "1"})
        assert result.done and result.observation["failure"] == "error"
        assert result.observation["error"] == "env_error" and "ZeroDivisionError: env bug" in result.observation["text"]
        env.reset(seed=seed_of(None))  # the same session plays on
        assert env.step({"message": "1"}).observation["error"] is None


def test_a_bad_env_kwarg_fails_before_serving() -> None:
    run = subprocess.run([sys.executable, "-m", "agentgym.cli", "serve-openenv", "agentgym/Bifurcation-v0",
                          "--env-kwarg", "horizon=0", "--port", "0"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "horizon must be ≥ 1" in run.stdout and "openenv_url" not in run.stderr


def test_the_stateless_http_endpoints_answer_too(bifurcation_url: str) -> None:
    reset = httpx.post(f"{bifurcation_url}/reset", json={"seed": 0}, trust_env=False).json()
    assert reset["observation"]["seed"] == 0 and reset["done"] is False
    step = httpx.post(f"{bifurcation_url}/step", json={"action": {"message": "1"}}, trust_env=False).json()
    assert step["observation"]["error"] == "no_episode"  # each HTTP call is a fresh env: use the WebSocket
