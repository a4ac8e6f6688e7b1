"""The one place the trainer calls the credit library (:mod:`agentgym.credit`).

A recipe's ``credit`` section is a :func:`agentgym.credit.build_pipeline` config; its result is
turned into per-turn lists aligned with ``trajectory.turns`` (the library already gives infra
failures advantage 0 and loss mask 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentgym.credit import build_pipeline
from agentgym.trajectory import Trajectory

__all__ = ["CreditFn", "TurnCredit", "assign_credit"]


@dataclass
class TurnCredit:
    """Per-turn values, ``values[i][t]`` for turn t of trajectory i."""

    advantages: list[list[float]]
    loss_mask: list[list[float]]
    clip_scale: list[list[float]]
    metrics: dict[str, float] = field(default_factory=dict)


CreditFn = Callable[[list[Trajectory], Any, Any], TurnCredit]


def assign_credit(trajs: list[Trajectory], config: Any, scorer: Any = None) -> TurnCredit:
    """Run the credit pipeline (a config dict or a built ``Pipeline``); ``scorer`` supplies gold
    log-probs to information-gain stages."""
    out = build_pipeline(config)(trajs, scorer=scorer)
    return TurnCredit(out.per_trajectory("advantages"), out.per_trajectory("loss_mask"),
                      out.per_trajectory("clip_scale"), dict(out.metrics))
