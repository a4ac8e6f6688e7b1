"""Issue 21, item 4: ToolWorld's partial credit is an outcome, not a success; success is the
world's final state equal to the gold plan's (``info["success"]``), stored on the trajectory."""

from __future__ import annotations

import asyncio
from typing import Any

import agentgym
from agentgym.policies import Policy
from agentgym.policies.base import Completion
from agentgym.rollout import plan, rollout, summarize


class HalfDone(Policy):
    """Follows the expert for half of the gold plan's calls, then says it is done."""

    name = "half-done"

    async def act(self, messages: list[Any], env: Any) -> Completion:
        env = env.unwrapped
        if len(env.history) >= max(1, len(env.plan) // 2):
            return Completion("<answer>done</answer>")
        return Completion(env.expert_action())


def test_partial_credit_is_not_success() -> None:
    items = plan("tw", tasks=40, group_size=1)
    trajs = asyncio.run(rollout(agentgym.spec("agentgym/ToolWorld-Hard-v0"), HalfDone(), items, concurrency=4,
                                env_kwargs={"partial_credit": True}))
    assert not any(t.failure for t in trajs)
    partial = [t for t in trajs if 0 < t.outcome < 1]
    assert partial, "some episodes end with a part of the changes made"
    assert not any(t.success for t in partial)
    assert summarize(trajs).successes == sum(t.outcome == 1.0 for t in trajs)
