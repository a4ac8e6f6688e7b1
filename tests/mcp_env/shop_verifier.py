"""The verifier of the shop tasks: the final basket must be the goal, and the answer its total."""

from __future__ import annotations

import json
from typing import Any


def reward(task: dict[str, Any], answer: str, env: Any) -> float:
    basket = json.loads(env.call_tool("view_basket", {}))
    total = int(env.call_tool("total", {}))
    return float(basket == task["goal"] and answer.strip() == str(total))
