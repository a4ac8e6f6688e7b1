"""The TextEnv contract, checked on every registered env (and on the core's own pieces)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

import agentgym
from agentgym.core import INFO_DEFAULTS, Text, TextEnv
from agentgym.registry import all_specs

ENV_IDS = [s.id for s in all_specs()]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Envs with on-disk caches (Search's BM25 index) write here, never to ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(tmp_path_factory.mktemp("agentgym-cache")))
        yield


def episode_actions(env: TextEnv, rng: random.Random) -> str:
    """Mostly expert, sometimes legal-random, sometimes junk: a mixed but reproducible episode."""
    roll = rng.random()
    if roll < 0.6:
        return env.expert_action()
    if roll < 0.9 and hasattr(env, "legal_actions"):
        return rng.choice(env.legal_actions())
    return rng.choice(["", "???", "<answer>", "\x00"])


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action", [None, 3, 2.5, b"1", ["up"], {"a": 1}])
def test_non_string_action_is_a_parse_error(env_id: str, action: Any) -> None:
    env = agentgym.make(env_id)
    _, info0 = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(obs, str) and "must be a string" in obs and info["parse_error"]
    assert (reward, terminated, truncated, env.turn) == (0.0, False, False, 1)
    env.step(env.expert_action())  # the episode goes on


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_after_done_raises(env_id: str) -> None:
    env = agentgym.make(env_id, max_turns=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("x")  # never reset
    env.reset(seed=0)
    while not any(env.step("junk")[2:4]):
        pass
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.expert_action())
    env.reset(seed=0)  # and reset revives it
    env.step(env.expert_action())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_keys_always_present(env_id: str) -> None:
    env, rng = agentgym.make(env_id), random.Random(1)
    for seed in range(10):
        _, info = env.reset(seed=seed)
        assert INFO_DEFAULTS.keys() <= info.keys() and info["state_key"] is not None
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(episode_actions(env, rng))
            assert INFO_DEFAULTS.keys() <= info.keys() and info["role"] in ("user", "tool")
            assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
            done = terminated or truncated


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_async_twins_match_sync(env_id: str) -> None:
    def actions(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [rng.choice(["junk", "<answer>1</answer>", "up", "2", "left"]) for _ in range(6)]

    sync_env, async_env = agentgym.make(env_id), agentgym.make(env_id)
    expected = []
    for seed in range(5):
        expected.append(sync_env.reset(seed=seed))
        for action in actions(seed):
            if sync_env.done:
                break
            expected.append(sync_env.step(action))

    async def run() -> list:
        got = []
        for seed in range(5):
            got.append(await async_env.areset(seed=seed))
            for action in actions(seed):
                if async_env.done:
                    break
                got.append(await async_env.astep(action))
        await async_env.aclose()
        return got

    assert asyncio.run(run()) == expected


def test_max_turns_does_not_override_termination() -> None:
    env = agentgym.make("agentgym/Bifurcation-v0", horizon=2, max_turns=2)
    env.reset(seed=0)
    assert env.step("1")[2:4] == (False, False)
    assert env.step("1")[2:4] == (True, False)  # the last allowed turn ended the task: not truncated


def test_render_ansi_returns_the_last_observation() -> None:
    env = agentgym.make("agentgym/Sokoban-v0", render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs
    obs = env.step("up")[0]
    assert env.render() == obs
    assert agentgym.make("agentgym/Sokoban-v0").render() is None
    with pytest.raises(ValueError, match="render_mode"):
        agentgym.make("agentgym/Sokoban-v0", render_mode="human")


def test_text_space_contains_any_unicode() -> None:
    space = Text(max_length=5)
    assert space.contains("") and space.contains("🙂\x00\ud800é") and not space.contains("abcdef")
    assert not space.contains(b"ab") and not space.contains(None)
    sample = Text(seed=0).sample()
    assert isinstance(sample, str) and Text().contains(sample)


def test_failure_and_truncation_reason_are_enums_that_read_and_write_as_strings() -> None:
    import json

    from agentgym import Failure, Trajectory, TruncationReason

    traj = Trajectory("t", "g", "task", "env", 0, "p", failure="infra", truncation_reason="context_length")
    assert traj.failure is Failure.INFRA and traj.truncation_reason is TruncationReason.CONTEXT_LENGTH
    line = json.dumps(traj.to_dict())
    assert '"failure": "infra"' in line and '"truncation_reason": "context_length"' in line
    assert f"{traj.failure}" == str(traj.failure) == "infra"
    back = Trajectory.from_dict(json.loads(line))
    assert back.failure is Failure.INFRA and back.truncation_reason is TruncationReason.CONTEXT_LENGTH
    with pytest.raises(ValueError, match="not a valid"):
        Trajectory("t", "g", "task", "env", 0, "p", truncation_reason="tired")
