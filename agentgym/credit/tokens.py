"""From per-turn credit to per-token arrays, by explicit spans only (docs/credit.md#properties).

Turns are located by their ``action_span`` (``[start, end)`` token offsets), never by where the
advantage or reward changes value: two adjacent turns with equal advantages stay two turns, and
a turn whose IG is exactly 0 stays indexed. numpy references of what the trainer does in torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["token_turn_ids", "broadcast_to_tokens", "turn_level_ratio"]


def token_turn_ids(action_spans: Sequence[tuple[int, int]], length: int) -> np.ndarray:
    """Turn index of every token; −1 on observation/prompt tokens (not trained)."""
    ids = np.full(length, -1, dtype=np.int64)
    for t, (start, end) in enumerate(action_spans):
        if not 0 <= start <= end <= length:
            raise ValueError(f"turn {t}: span {(start, end)} outside [0, {length}]")
        if (ids[start:end] != -1).any():
            raise ValueError(f"turn {t}: span {(start, end)} overlaps another turn")
        ids[start:end] = t
    return ids


def broadcast_to_tokens(turn_values: Sequence[float], action_spans: Sequence[tuple[int, int]], length: int,
                        fill: float = 0.0) -> np.ndarray:
    """Each turn's value on all of its action tokens; ``fill`` elsewhere."""
    ids = token_turn_ids(action_spans, length)
    vals = np.asarray(turn_values, dtype=np.float64)
    if len(vals) != len(action_spans):
        raise ValueError(f"{len(vals)} values for {len(action_spans)} turns")
    return np.where(ids >= 0, vals[np.maximum(ids, 0)] if len(vals) else fill, fill)


def turn_level_ratio(logp_new: np.ndarray, logp_old: np.ndarray, turn_ids: np.ndarray,
                     max_log: float = 10.0) -> np.ndarray:
    """The GSPO-turn importance-ratio *value* per token: ``exp(mean_{turn}(logp_new − logp_old))``,
    log clamped at ``max_log``; 1 on tokens outside turns. Grouped by ``turn_ids``."""
    on = turn_ids >= 0
    diff = np.where(on, np.asarray(logp_new) - np.asarray(logp_old), 0.0)
    n = int(turn_ids.max()) + 1 if on.any() else 0
    codes = np.maximum(turn_ids, 0)
    mean = np.bincount(codes, weights=diff, minlength=n) / np.maximum(np.bincount(codes, weights=on, minlength=n), 1)
    return np.where(on, np.exp(np.minimum(mean[codes], max_log)), 1.0)
