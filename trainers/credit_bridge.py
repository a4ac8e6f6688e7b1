"""The one place the trainer calls the credit library (:mod:`agentgym.credit`).

It turns a batch of trajectories into per-turn advantages, loss masks and clip scales, as lists
aligned with ``trajectory.turns``. Infra failures never teach anything: their loss mask is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentgym.trajectory import Trajectory

__all__ = ["TurnCredit", "assign_credit"]


@dataclass
class TurnCredit:
    advantages: list[list[float]]
    loss_mask: list[list[float]]
    clip_scale: list[list[float]]
    metrics: dict[str, float] = field(default_factory=dict)


def assign_credit(trajs: list[Trajectory], config: dict[str, Any], scorer: Any = None) -> TurnCredit:
    raise NotImplementedError("waiting for agentgym.credit")
