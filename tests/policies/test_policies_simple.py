"""RandomPolicy and ScriptedPolicy on small envs defined here."""

from __future__ import annotations

import asyncio
import string
from collections import Counter
from typing import Any

import gymnasium
import pytest

from agentgym.core import StepResult, TextEnv
from agentgym.policies import POLICIES, Policy, RandomPolicy, ScriptedPolicy, make_policy
from agentgym.rollout import plan, run_episode

MESSAGES = [{"role": "user", "content": "go"}]


class PickEnv(TextEnv):
    """Pick the right door of five; the expert knows it."""

    threaded_async = False
    doors = ("a", "b", "c", "d", "e")

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.answer = self.doors[int(self.np_random.integers(len(self.doors)))]
        return "Pick a door: a-e.", {}

    def _step(self, action: str) -> StepResult:
        solved = action == self.answer
        return "Open." if solved else "Locked.", float(solved), solved, False, {}

    def expert_action(self) -> str:
        return self.answer

    def legal_actions(self) -> list[str]:
        return list(self.doors)


class FreeTextEnv(TextEnv):
    """Neither an expert nor a list of legal actions."""

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "Say anything.", {}

    def _step(self, action: str) -> StepResult:
        return "Ok.", 0.0, True, False, {}


def pick_env(seed: int = 0) -> PickEnv:
    env = PickEnv()
    env.reset(seed=seed)
    return env


def texts(policy: Policy, env: TextEnv, n: int) -> list[str]:
    return [policy.act_sync(MESSAGES, env).text for _ in range(n)]


def test_random_is_uniform_over_legal_actions_and_seeded() -> None:
    env = pick_env()
    counts = Counter(texts(RandomPolicy(seed=1), env, 2000))
    assert set(counts) == set(PickEnv.doors)
    assert all(300 < c < 500 for c in counts.values())  # 400 expected each
    assert texts(RandomPolicy(seed=7), env, 50) == texts(RandomPolicy(seed=7), env, 50)
    assert texts(RandomPolicy(seed=7), env, 50) != texts(RandomPolicy(seed=8), env, 50)


@pytest.mark.parametrize(("env", "valid_only"), [(FreeTextEnv(), True), (pick_env(), False)])
def test_random_text_when_no_legal_actions_or_not_valid_only(env: TextEnv, valid_only: bool) -> None:
    actions = texts(RandomPolicy(seed=0, valid_only=valid_only), env, 200)
    assert all(1 <= len(a) <= 32 and set(a) <= set(string.printable) for a in actions)
    assert len(set(actions)) > 190


def test_random_looks_through_gymnasium_wrappers() -> None:
    wrapped = gymnasium.wrappers.OrderEnforcing(pick_env())
    assert set(texts(RandomPolicy(seed=0), wrapped, 100)) == set(PickEnv.doors)
    assert ScriptedPolicy().act_sync(MESSAGES, wrapped).text == wrapped.unwrapped.answer


def test_scripted_follows_the_expert() -> None:
    env = pick_env(3)
    assert set(texts(ScriptedPolicy(), env, 20)) == {env.answer}
    completion = asyncio.run(ScriptedPolicy().act(MESSAGES, env))
    assert completion.text == env.answer and completion.token_ids is None


def test_scripted_epsilon_greedy_is_seeded_and_takes_random_legal_actions() -> None:
    env = pick_env(3)
    actions = texts(ScriptedPolicy(epsilon=0.3, seed=0), env, 4000)
    off_expert = sum(a != env.answer for a in actions) / len(actions)
    assert 0.2 < off_expert < 0.28  # epsilon * 4/5 of random picks miss the expert's door
    assert set(actions) == set(PickEnv.doors)
    assert actions[:100] == texts(ScriptedPolicy(epsilon=0.3, seed=0), env, 100)
    assert all(a in PickEnv.doors for a in texts(ScriptedPolicy(epsilon=1.0, seed=1), env, 100))


def test_scripted_needs_an_expert_and_a_valid_epsilon() -> None:
    with pytest.raises(TypeError, match="FreeTextEnv has no expert_action"):
        ScriptedPolicy().act_sync(MESSAGES, FreeTextEnv())
    for epsilon in (-0.1, 1.5):
        with pytest.raises(ValueError, match="epsilon"):
            ScriptedPolicy(epsilon=epsilon)


def test_make_policy_builds_the_cli_names() -> None:
    assert set(POLICIES) == {"random", "scripted", "openai"}
    scripted = make_policy("scripted", epsilon=0.2, seed=1)
    assert isinstance(scripted, ScriptedPolicy) and scripted.name == "scripted-eps0.2"
    assert make_policy("random", seed=0).name == "random"
    with pytest.raises(ValueError, match="unknown policy 'greedy'"):
        make_policy("greedy")
    with pytest.raises(TypeError):
        make_policy("random", temperature=0.5)


def test_rollout_with_scripted_and_random_policies() -> None:
    async def outcomes(policy: Policy, n: int) -> list[float]:
        items = plan("r", tasks=n, group_size=1)
        trajs = [await run_episode(PickEnv(max_turns=1), policy, item, env_id="tests/Pick-v0") for item in items]
        return [t.outcome for t in trajs]

    assert asyncio.run(outcomes(ScriptedPolicy(), 10)) == [1.0] * 10
    assert 0 < sum(asyncio.run(outcomes(RandomPolicy(seed=0), 100))) < 40  # about 20 of 100


def test_a_seed_run_twice_in_one_plan_explores_differently_but_reproducibly() -> None:
    """A trainer cycling a small task pool plans one seed many times: a seeded random policy
    must not replay the same moves for each (the warm start's demonstrations would collapse to
    one per task), yet the whole plan must repeat exactly."""
    async def actions(policy: Policy) -> list[str]:
        items = plan("r", seeds=[7] * 30, group_size=1)
        trajs = [await run_episode(PickEnv(max_turns=1), policy, item, env_id="tests/Pick-v0") for item in items]
        return [t.turns[0].action for t in trajs]

    first = asyncio.run(actions(RandomPolicy(seed=0)))
    assert len(set(first)) == 5  # all five doors, not one door thirty times
    assert asyncio.run(actions(RandomPolicy(seed=0))) == first
