"""Segmented statistics: the one place for grouped mean/std and per-trajectory discounted sums.

Every estimator groups rows by integer codes (prompt group, anchor state, (prompt, turn index))
and normalises within the group, or accumulates rewards backwards along a trajectory. Both are
done here with ``np.bincount`` and a loop over *turn depth* (at most the longest trajectory, each
step vectorised over all trajectories), never a Python loop over turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IGPO_NORM",
    "VERL_NORM",
    "Norm",
    "discounted_suffix_sum",
    "segment_mean_std",
    "zscore",
]


@dataclass(frozen=True)
class Norm:
    """How a group's spread is measured; the released codes differ and the numbers depend on it.

    ``ddof``: 1 = unbiased (torch.std), 0 = population. ``var_eps`` is added under the square
    root, ``eps`` to the denominator. A group with at most one member uses std = 1 (and, being
    its own mean, gets 0).
    """

    ddof: int = 1
    var_eps: float = 0.0
    eps: float = 1e-6


VERL_NORM = Norm(ddof=1, var_eps=0.0, eps=1e-6)
"""verl GRPO and verl-agent GiGPO: unbiased std, ``(x − μ) / (σ + 1e-6)``."""

IGPO_NORM = Norm(ddof=0, var_eps=1e-8, eps=1e-6)
"""IGPO and A²TGPO: population std, ``σ = sqrt(var + 1e-8)``, ``(x − μ) / (σ + 1e-6)``."""


def segment_mean_std(
    values: np.ndarray,
    codes: np.ndarray,
    n: int,
    *,
    mask: np.ndarray | None = None,
    norm: Norm = VERL_NORM,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-segment (mean, std, count) of ``values`` grouped by ``codes`` in ``[0, n)``.

    Only entries with ``mask`` True are counted; masked-out entries may hold NaN. A segment with
    count ≤ 1 gets std 1 (count 0: mean 0).
    """
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        w = None
        x = values
    else:
        w = mask.astype(np.float64)
        x = np.where(mask, values, 0.0)
    count = np.bincount(codes, weights=w, minlength=n)
    mean = np.bincount(codes, weights=x, minlength=n) / np.maximum(count, 1.0)
    dev = x - mean[codes]
    if w is not None:
        dev *= w
    ss = np.bincount(codes, weights=dev * dev, minlength=n)
    var = ss / np.maximum(count - norm.ddof, 1.0)
    std = np.where(count > 1, np.sqrt(var + norm.var_eps), 1.0)
    return mean, std, count


def zscore(
    values: np.ndarray,
    codes: np.ndarray,
    n: int,
    *,
    mask: np.ndarray | None = None,
    norm: Norm = VERL_NORM,
    std: bool = True,
) -> np.ndarray:
    """``(x − μ_g) / (σ_g + eps)`` (or ``x − μ_g`` with ``std=False``); 0 where ``mask`` is False."""
    mean, sd, _ = segment_mean_std(values, codes, n, mask=mask, norm=norm)
    out = np.asarray(values, dtype=np.float64) - mean[codes]
    if std:
        out /= sd[codes] + norm.eps
    if mask is not None:
        out = np.where(mask, out, 0.0)
    return out


def discounted_suffix_sum(values: np.ndarray, ends: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """``R_t = Σ_{k≥t} γ^{k−t} v_k`` within each trajectory, for rows stored contiguously.

    ``values`` are in canonical order (trajectory by trajectory, turns ascending); ``ends[j]`` is
    one past the last row of trajectory j and ``lengths[j]`` its number of rows. The recursion
    ``R_t = v_t + γ R_{t+1}`` runs over depth-from-the-end, vectorised across trajectories:
    exact for any γ (no γ^{-t} rescaling, which overflows on long horizons) and
    O(longest trajectory) numpy calls.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    if out.size == 0:
        return out
    by_len = np.argsort(-lengths, kind="stable")
    ends_sorted = ends[by_len]
    len_sorted = lengths[by_len]
    max_len = int(len_sorted[0]) if len_sorted.size else 0
    # number of trajectories longer than k, for each depth k (lengths sorted descending)
    longer = np.searchsorted(-len_sorted, -np.arange(1, max_len + 1), side="right")
    for k in range(1, max_len):
        rows = ends_sorted[: longer[k]] - 1 - k
        out[rows] += gamma * out[rows + 1]
    return out
