"""ToolWorld (agentgym/ToolWorld-v0): stateful tool use in a generated shop + calendar world,
judged by the final state against the state a hidden gold plan produces, with a scripted user.

Modules: ``world`` (state, the tools' semantics, generation), ``tasks`` (request templates, gold
plans, the simulated user), ``env`` (the env). Registered ids: ``agentgym/ToolWorld-v0``
(medium) and ``agentgym/ToolWorld-Easy-v0`` / ``agentgym/ToolWorld-Hard-v0``.
"""

from __future__ import annotations

__all__ = ["register_toolworld_envs"]


def register_toolworld_envs() -> None:
    """Register ToolWorld and its difficulty variants (idempotent)."""
    from agentgym.registry import register

    entry = "agentgym.envs.toolworld.env:ToolWorldEnv"
    register("agentgym/ToolWorld-v0", entry, kwargs={"difficulty": "medium"}, max_turns=None,
             description="Stateful tool use (shop + calendar, 15 tools), judged by final state vs a gold plan's; "
             "half the requests need facts from a simulated user.")
    register("agentgym/ToolWorld-Easy-v0", entry, kwargs={"difficulty": "easy"}, max_turns=None,
             description="ToolWorld, one request, no dialogue, small world.")
    register("agentgym/ToolWorld-Hard-v0", entry, kwargs={"difficulty": "hard"}, max_turns=None,
             description="ToolWorld, two requests (shop + calendar), mostly needing dialogue, bigger world.")
