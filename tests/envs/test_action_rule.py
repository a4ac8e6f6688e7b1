"""The one action rule (issue 21, item 6), on every registered env: ``<think>…</think>`` is dropped,
one ``<action>…</action>`` or an ``Action:`` prefix is unwrapped, and an unclosed ``<think>`` or
two ``<action>`` blocks are a parse error that changes nothing. The code envs apply only the
reasoning part (their code may legitimately contain ``Action:`` lines or ``<action>`` strings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentgym
from agentgym.core import TextEnv
from agentgym.registry import all_specs

ENV_IDS = [s.id for s in all_specs()]
CODE_ENVS = {"agentgym/PythonTIR-v0", "agentgym/CodeTests-v0", "agentgym/HumanEval-v0"}
# TextWorld variants differ only in generator settings; two ids run in the default pass (as in
# test_registered_envs.py), each on a pool of one game.
TEXTWORLD_DEFAULT_PASS = {"agentgym/TextWorld-v0", "agentgym/TextWorld-TreasureHunter-Easy-v0"}
PARAMS = [pytest.param(i, marks=pytest.mark.slow)
          if i.startswith("agentgym/TextWorld-") and i not in TEXTWORLD_DEFAULT_PASS else i for i in ENV_IDS]
WRAPPERS = {
    "think": "<think>Let me weigh the options. Maybe not that one.</think>\n{a}",
    "prompt-side-think": "the opening tag was in the prompt</think>{a}",
    "action-prefix": "Action: {a}",
    "react": "Thought: this is the step to take.\nAction: {a}",
    "action-tag": "I choose this.\n<action>{a}</action>",
    "think-then-tag": "<think>or <action>something else</action>?</think><action>{a}</action>",
}
REFUSED = {
    "unclosed-think": "<think>I am still thinking... {a}",
    "two-actions": "<action>{a}</action>\n<action>{a}</action>",
    "unclosed-action": "<action>{a}",
}


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(tmp_path_factory.mktemp("agentgym-cache")))
        yield


def _make(env_id: str) -> TextEnv:
    kwargs: dict = {}
    if env_id.startswith("agentgym/TextWorld-"):
        kwargs["num_games"] = 1
    if env_id in CODE_ENVS:
        kwargs["backend"] = "local"
    return agentgym.make(env_id, **kwargs)


def _outcome(env: TextEnv, action: str) -> tuple:
    _, reward, terminated, truncated, info = env.step(action)
    return reward, terminated, truncated, info["state_key"], info["parse_error"], info["void"]


@pytest.mark.parametrize("env_id", PARAMS)
def test_wrapped_actions_act_like_the_bare_action(env_id: str) -> None:
    env = _make(env_id)
    try:
        env.reset(seed=1)
        bare = env.expert_action()
        expected = _outcome(env, bare)
        assert expected[4] is None, f"the expert's own action failed to parse: {expected}"
        wrappers = {"think": WRAPPERS["think"], "prompt-side-think": WRAPPERS["prompt-side-think"]} \
            if env_id in CODE_ENVS else WRAPPERS
        for name, template in wrappers.items():
            env.reset(seed=1)
            assert env.expert_action() == bare
            assert _outcome(env, template.format(a=bare)) == expected, (env_id, name)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", PARAMS)
def test_unclosed_reasoning_and_several_actions_change_nothing(env_id: str) -> None:
    env = _make(env_id)
    try:
        refused = {"unclosed-think": REFUSED["unclosed-think"]} if env_id in CODE_ENVS else REFUSED
        for name, template in refused.items():
            _, start = env.reset(seed=1)
            _, reward, _, _, info = env.step(template.format(a=env.expert_action()))
            assert info["parse_error"] and reward == 0.0, (env_id, name, info["parse_error"])
            assert info["state_key"] == start["state_key"] and not info["tool_calls"], (env_id, name)
    finally:
        env.close()
