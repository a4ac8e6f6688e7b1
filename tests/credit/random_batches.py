"""Hypothesis helper shared by the credit tests: random prompt groups of trajectories as
``TurnBatch.from_arrays`` columns (ids, turn indices, ~1 in 6 trajectories an infra failure)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def draw_rows(draw: Any, max_turns: int, **columns: st.SearchStrategy) -> dict[str, list]:
    """1–3 groups of 1–5 trajectories of 1–``max_turns`` turns; each keyword strategy draws one
    value per turn row into the column of that name."""
    rows: dict[str, list] = {"group_id": [], "traj_id": [], "turn_idx": [], "infra": [], **{k: [] for k in columns}}
    for g in range(draw(st.integers(1, 3))):
        for i in range(draw(st.integers(1, 5))):
            infra = draw(st.integers(0, 5)) == 0
            for k in range(draw(st.integers(1, max_turns))):
                rows["group_id"].append(g)
                rows["traj_id"].append(f"{g}-{i}")
                rows["turn_idx"].append(k)
                rows["infra"].append(infra)
                for key, strategy in columns.items():
                    rows[key].append(draw(strategy))
    return rows
