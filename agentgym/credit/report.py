"""Serialisable per-trajectory credit and a summary, for the ``agentgym advantages`` CLI and logs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .pipeline import CreditResult

__all__ = ["credit_records", "summary"]


def credit_records(result: CreditResult) -> list[dict[str, Any]]:
    """One JSON-ready dict per input trajectory: ids and per-turn ``advantages``, ``loss_mask``,
    ``clip_scale`` and each stage's component, lists aligned with the trajectory's turns."""
    b = result.batch
    cols = {"advantages": result.advantages, "loss_mask": result.loss_mask, "clip_scale": result.clip_scale}
    split = {k: b.per_trajectory(v) for k, v in cols.items()}
    comps = {k: b.per_trajectory(v) for k, v in result.components.items()}
    out = []
    for i in range(b.n_traj):
        rec: dict[str, Any] = {
            "traj_id": str(b.traj_ids[i]) if b.traj_ids is not None else i,
            "group_id": str(b.group_ids[b.traj_group[i]]) if b.group_ids is not None else int(b.traj_group[i]),
            "infra": bool(b.infra[i]),
        }
        rec.update({k: v[i] for k, v in split.items()})
        rec["components"] = {k: v[i] for k, v in comps.items()}
        out.append(rec)
    return out


def summary(result: CreditResult) -> dict[str, float]:
    """Headline numbers: sizes, masks, filters, anchors, and |A| per component on trained turns."""
    on = result.loss_mask > 0
    rows: dict[str, float] = {
        "turns": result.batch.n_rows,
        "trajectories": result.batch.n_traj,
        "groups": result.batch.n_groups,
        "trained turn share": float(on.mean()) if on.size else 0.0,
    }
    d = result.diagnostics
    for key in ("infra_trajectories", "void_ratio", "mean_step_group_size", "singleton_anchor_share", "ig_mean",
                "spa_fit_rmse", "spa_outcome_std", "spa_executed_share", "aem_known_share"):
        if key in d:
            rows[key.replace("_", " ")] = float(d[key])
    rows["filtered groups"] = float(len(d.get("filtered_groups", [])))
    for name, values in {"advantage": result.advantages, **result.components}.items():
        v = values[on]
        rows[f"{name} mean"] = float(v.mean()) if v.size else 0.0
        rows[f"{name} |mean|"] = float(np.abs(v).mean()) if v.size else 0.0
    if on.any() and not np.allclose(result.clip_scale, 1.0):
        rows["clip scale min"] = float(result.clip_scale[on].min())
        rows["clip scale max"] = float(result.clip_scale[on].max())
    return rows
