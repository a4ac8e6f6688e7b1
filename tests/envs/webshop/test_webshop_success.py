"""Issue 21, item 4: a random WebShop rollout reported 42.5 % success (outcome > 0) while the env's
own ``info["success"]`` was true for 2 of 40. The summary must count what the env counts."""

from __future__ import annotations

import asyncio

import agentgym
from agentgym.policies import make_policy
from agentgym.rollout import plan, rollout, summarize


def test_random_rollout_summary_success_equals_the_envs_success_flags() -> None:
    items = plan("webshop", tasks=40, group_size=1)
    trajs = asyncio.run(rollout(agentgym.spec("agentgym/WebShop-v0"), make_policy("random", seed=0), items,
                                concurrency=4, env_kwargs={"placement": "local"}))
    assert not any(t.failure for t in trajs)
    flags = [t.success for t in trajs]
    bought = [t for t in trajs if t.terminated]
    # the env's flag, on the step that ended each episode, is reward == 1 (exact match of the goal)
    assert all(t.success == (t.turns[-1].reward == 1.0) for t in bought)
    partial = [t for t in bought if 0 < t.outcome < 1]
    assert partial, "a random policy buys some wrong items for partial reward"
    assert not any(t.success for t in partial)
    summary = summarize(trajs)
    assert summary.successes == sum(flags) < len([t for t in trajs if t.terminated and t.outcome > 0])
