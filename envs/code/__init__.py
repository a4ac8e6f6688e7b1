"""Code-execution environments: ``agentgym/PythonTIR-v0`` and ``agentgym/CodeTests-v0``.

Modules: ``tir`` (tool-integrated math/logic, SimpleTIR protocol), ``tasks`` (its built-in
templates and the reasoning-gym source), ``codetests`` (write a function, hidden unit tests),
``problems`` (CodeTests' problems), ``sandbox`` (the lazy per-env sandbox). Nothing heavy is
imported here: reasoning-gym loads when a PythonTIR env is built, the docker SDK when code runs.
"""

from __future__ import annotations

__all__ = ["register_code_envs"]


def register_code_envs() -> None:
    """Register ``agentgym/PythonTIR-v0`` and ``agentgym/CodeTests-v0`` (idempotent)."""
    from agentgym.registry import register

    register(
        "agentgym/PythonTIR-v0",
        "agentgym.envs.code.tir:PythonTIREnv",
        max_turns=5,
        description="Math/logic with a persistent Python sandbox, SimpleTIR protocol (```python blocks, "
        "\\boxed{} answers, void turns end the episode); reasoning-gym + built-in tasks.",
    )
    register(
        "agentgym/CodeTests-v0",
        "agentgym.envs.code.codetests:CodeTestsEnv",
        description="Write a Python function; hidden unit tests run in a sandbox; reward = share passed "
        "(info all_passed); 32 built-in problems.",
    )
