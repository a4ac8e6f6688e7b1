"""The one place the trainer calls the credit library (:mod:`agentgym.credit`).

It turns a batch of trajectories into per-turn advantages, loss masks and clip scales, as lists
aligned with ``trajectory.turns``. Infra failures never teach anything: their loss mask is 0.

Written against the credit library's announced API (``TurnBatch`` + a pipeline built from the
recipe's ``credit`` dict, returning per-turn ``advantages``, ``loss_mask`` and ``clip_scale``
rows aligned with the batch's ``traj_index``/``turn_index``); check it when that API lands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentgym.trajectory import Trajectory

__all__ = ["CreditFn", "TurnCredit", "assign_credit"]


@dataclass
class TurnCredit:
    """Per-turn values, ``values[i][t]`` for turn t of trajectory i."""

    advantages: list[list[float]]
    loss_mask: list[list[float]]
    clip_scale: list[list[float]]
    metrics: dict[str, float] = field(default_factory=dict)


CreditFn = Callable[[list[Trajectory], dict[str, Any], Any], TurnCredit]


def assign_credit(trajs: list[Trajectory], config: dict[str, Any], scorer: Any = None) -> TurnCredit:
    """Run the recipe's credit pipeline; ``scorer`` supplies gold log-probs to IG methods."""
    try:
        from agentgym.credit import TurnBatch, build_pipeline  # type: ignore[attr-defined]
    except ImportError as e:
        raise RuntimeError(f"agentgym.credit does not provide the pipeline API yet ({e})") from None
    batch = TurnBatch.from_trajectories(trajs)
    out = build_pipeline(config)(batch, scorer=scorer)
    shape = [[0.0] * t.num_turns for t in trajs]
    adv, mask, clip = (list(map(list, shape)) for _ in range(3))
    for row, (i, t) in enumerate(zip(batch.traj_index, batch.turn_index, strict=True)):
        adv[i][t] = float(out.advantages[row])
        mask[i][t] = 0.0 if trajs[i].failure == "infra" else float(out.loss_mask[row])
        clip[i][t] = float(out.clip_scale[row])
    return TurnCredit(adv, mask, clip, dict(getattr(out, "metrics", {}) or {}))
