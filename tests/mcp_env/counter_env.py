"""A tiny ToolEnv for the serve-mcp tests: reach the target with ``add`` and answer with it."""

from __future__ import annotations

from typing import Any

from agentgym.core import InfraError
from agentgym.tools import ToolEnv, ToolError, tool


class CounterEnv(ToolEnv):
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.count = 0
        self.target = 0

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.count, self.target = 0, int(self.np_random.integers(3, 20))
        return f"Make the counter reach {self.target}, then answer with it.", {"task_id": f"target-{self.target}"}

    @tool
    def add(self, amount: int) -> str:
        """Add to the counter.

        Args:
            amount: between 1 and 9.
        """
        if not 1 <= amount <= 9:
            raise ToolError("amount must be between 1 and 9")
        self.count += amount
        return f"counter: {self.count}"

    @tool
    def read(self) -> int:
        """The counter's value."""
        return self.count

    @tool
    def explode(self) -> str:
        """An env whose backend fails (infrastructure)."""
        raise InfraError("the backend is gone")

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        solved = answer.strip() == str(self.target) and self.count == self.target
        return ("Solved." if solved else "Wrong."), float(solved), True, {}
