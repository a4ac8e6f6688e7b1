"""Credit from the policy's own signals: SPA-RL's stepwise progress attribution and AEM's
response-surprisal advantage modulation.

SPA-RL (Wang et al. 2025, released code ``WangHanLinHenry/SPA-RL-Agent``): a progress estimator
gives each turn a contribution ``c_t`` trained so that ``Σ_t c_t`` regresses the trajectory's
final reward; the turn reward is ``c_t`` plus a grounding bonus for an action the env executed.
AEM (arXiv 2605.00425): each response's surprisal relative to its prompt group rescales the
advantage [recon: the paper's exact rule was not reachable; see docs/credit.md#aem].

Same conventions as :mod:`agentgym.credit.estimators`: one value per turn row of a
:class:`TurnBatch`, ``include`` is the per-trajectory statistics mask, rows of left-out
trajectories get 0 (AEM: weight 1). docs/credit.md#spa-rl and #aem state the maths.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .batch import TurnBatch
from .estimators import _include, _no_score_penalty
from .segments import VERL_NORM, segment_mean_std

__all__ = [
    "SPA_GROUNDING",
    "aem",
    "aem_weights",
    "fit_progress",
    "pooled_z_returns",
    "response_surprisal",
    "spa",
    "spa_rewards",
    "text_features",
]

SPA_GROUNDING = 0.5
"""The grounding bonus of an executed action in SPA-RL's released reward script."""

MAX_MAGNITUDE = 1e150
"""Largest turn reward, return or feature a z-score or fit accepts: beyond it squared deviations overflow."""
_WORD = re.compile(r"\w+")


def _check(values: np.ndarray, mask: np.ndarray, batch: TurnBatch, what: str) -> None:
    """Finite and below :data:`MAX_MAGNITUDE` on ``mask`` rows, else a ValueError naming the first bad turn."""
    bad = mask & ~(np.abs(values) <= MAX_MAGNITUDE)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        i = int(batch.traj[r])
        label = str(batch.traj_ids[i]) if batch.traj_ids is not None else i
        raise ValueError(f"{what}: trajectory {label!r} turn {int(batch.turn_index[r])} has {values[r]} "
                         f"({int(bad.sum())} non-finite or beyond {MAX_MAGNITUDE:g})")


def _rows(batch: TurnBatch, values: Any, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (batch.n_rows,):
        raise ValueError(f"{what} must have one value per turn row ({batch.n_rows}), got shape {v.shape}")
    return v


def pooled_z_returns(batch: TurnBatch, r: np.ndarray, row_inc: np.ndarray, *, gamma: float, std: bool) -> np.ndarray:
    """Turn rewards z-scored over every included turn row of their prompt group (unbiased std, a
    std below 1e-6 counts as 1, ``(r − μ)/(σ + 1e-6)``), then ``Σ_{k≥t} γ^{k−t} r̃_k``; 0 off ``row_inc``."""
    mean, sd, _ = segment_mean_std(r, batch.group, batch.n_groups, mask=row_inc, norm=VERL_NORM)
    sd = np.where(sd < VERL_NORM.eps, 1.0, sd)
    z = r - mean[batch.group]
    if std:
        z = z / (sd[batch.group] + VERL_NORM.eps)
    z = np.where(row_inc, z, 0.0)
    return np.where(row_inc, batch.suffix_sum(z, gamma), 0.0)


# -- SPA-RL ----------------------------------------------------------------------------------
def text_features(trajectory: Any, dim: int = 1024) -> np.ndarray:
    """A model-free stand-in for the estimator's hidden state: per turn, hashed word counts of the
    observation the turn answered and of its action (separate halves), ``[T, dim]``, L2-normalised.

    CRC32 hashing, so features do not depend on the Python process (``hash`` is salted).
    """
    if dim < 2:
        raise ValueError(f"text feature dim must be ≥ 2, got {dim}")
    turns = (trajectory.get("turns") if isinstance(trajectory, Mapping) else getattr(trajectory, "turns", None)) or []
    out = np.zeros((len(turns), dim))
    half = dim // 2
    for t, turn in enumerate(turns):
        for k, key in enumerate(("observation", "action")):
            text = turn.get(key) if isinstance(turn, Mapping) else getattr(turn, key, "")
            for word in _WORD.findall(str(text or "").lower()):
                out[t, k * half + zlib.crc32(word.encode()) % half] += 1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def fit_progress(
    batch: TurnBatch, features: np.ndarray, *, ridge: float = 1.0, include: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """SPA's progress estimator on this batch: a linear head ``c_t = w·h_t + b`` fitted so that
    ``Σ_t c_t`` regresses the trajectory's outcome (least squares with an L2 penalty ``ridge``
    on ``(w, b)``, solved in closed form); returns ``(c per row, fit metrics)``.

    With ``S_i = Σ_t [h_t, 1]`` the objective ``Σ_i (S_i·θ − R_i)² + ridge·|θ|²`` is the MSE of
    the released code's estimator, whose head is linear too; the solution is
    ``θ = (SᵀS + ridge·I)⁻¹SᵀR = Sᵀ(S Sᵀ + ridge·I)⁻¹R``, solved in whichever form is the smaller
    system. Left-out and empty trajectories are not fitted; their rows get c = 0.
    """
    if not ridge > 0:
        raise ValueError(f"SPA ridge must be > 0 (the fit is under-determined without it), got {ridge}")
    h = np.asarray(features, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] != batch.n_rows:
        raise ValueError(f"SPA features must be [turn rows ({batch.n_rows}), dim], got shape {h.shape}")
    inc = _include(batch, include) & (batch.lengths > 0)
    row_inc = inc[batch.traj]
    if h.size and not np.abs(h).max() <= MAX_MAGNITUDE:  # one flat pass; name the turn only when it fails
        _check(np.abs(h).max(axis=1), row_inc, batch, "SPA feature")  # a NaN propagates through max
    _check(batch.outcome[batch.traj], row_inc, batch, "SPA outcome")
    idx = np.flatnonzero(inc)
    if idx.size == 0:
        return np.zeros(batch.n_rows), {"spa_fit_rmse": 0.0, "spa_outcome_std": 0.0}
    has = batch.lengths > 0  # rows are trajectory-contiguous: one reduceat segment per trajectory with turns
    hs = np.zeros((batch.n_traj, h.shape[1]))
    hs[has] = np.add.reduceat(h if row_inc.all() else np.where(row_inc[:, None], h, 0.0), batch.starts[has], axis=0)
    s = np.concatenate([hs, batch.lengths[:, None].astype(np.float64)], axis=1)[idx]  # Σ_t [h_t, 1]
    y = batch.outcome[idx]
    eye = ridge * np.eye(min(s.shape))
    theta = (np.linalg.solve(s.T @ s + eye, s.T @ y) if s.shape[0] > s.shape[1]  # primal: (SᵀS + ρI)⁻¹SᵀR
             else s.T @ np.linalg.solve(s @ s.T + eye, y))  # dual, the same θ
    c = np.where(row_inc, h @ theta[:-1] + theta[-1], 0.0)
    pred = np.bincount(batch.traj, weights=c, minlength=batch.n_traj)[idx]
    return c, {"spa_fit_rmse": float(np.sqrt(np.mean((pred - y) ** 2))), "spa_outcome_std": float(y.std())}


def spa_rewards(
    batch: TurnBatch, contributions: np.ndarray, *, grounding: float = SPA_GROUNDING,
    executed: np.ndarray | None = None,
) -> np.ndarray:
    """SPA's per-turn reward ``r_t = c_t + grounding·g_t`` with ``g_t = 1`` when the env executed
    turn t's action (default: no parse error, ``~batch.invalid``), else 0."""
    c = _rows(batch, contributions, "SPA contributions")
    g = ~batch.invalid if executed is None else _rows(batch, executed, "SPA executed flags") != 0
    return c + grounding * g


def spa(
    batch: TurnBatch,
    contributions: np.ndarray,
    *,
    grounding: float = SPA_GROUNDING,
    executed: np.ndarray | None = None,
    gamma: float = 1.0,
    std: bool = True,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """SPA-RL advantage (docs/credit.md#spa-rl): :func:`spa_rewards`, z-scored over the prompt
    group's turn rows and summed backwards (:func:`pooled_z_returns`): a critic-free stand-in for
    the paper's PPO + GAE on the same rewards. Non-finite or huge rewards on included rows are a
    ValueError naming the turn."""
    _no_score_penalty(batch, "spa")
    row_inc = _include(batch, include)[batch.traj]
    r = spa_rewards(batch, contributions, grounding=grounding, executed=executed)
    _check(r, row_inc, batch, "SPA turn reward")
    _check(batch.suffix_sum(np.where(row_inc, np.abs(r), 0.0), 1.0), row_inc, batch, "SPA return")
    return pooled_z_returns(batch, np.where(row_inc, r, 0.0), row_inc, gamma=gamma, std=std)


# -- AEM -------------------------------------------------------------------------------------
def response_surprisal(logprobs: Sequence[Sequence[float] | None]) -> np.ndarray:
    """Per response (turn), the mean negative log-prob of its sampled tokens; NaN where unknown
    (no log-probs: a text-only backend or a re-tokenised turn), +inf where a log-prob is NaN or
    ±inf (so :func:`aem_weights` rejects it rather than taking it for unknown)."""
    out = np.full(len(logprobs), np.nan)
    for k, lp in enumerate(logprobs):
        if lp is not None and len(lp):
            u = -float(np.mean(np.asarray(lp, dtype=np.float64)))
            out[k] = u if np.isfinite(u) else np.inf
    return out


def aem_weights(
    batch: TurnBatch,
    surprisal: np.ndarray,
    *,
    beta: float = 0.2,
    clip: float = 3.0,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """AEM's per-turn advantage scale [recon]: ``w = exp(−β·clip(z, ±clip))`` where ``z`` is the
    turn's response surprisal z-scored over the known, included turn rows of its prompt group
    (unbiased std; a std below 1e-6 counts as 1, so a group of one response has z = 0).

    Confident responses (z < 0) are amplified, surprising ones damped: with mostly negative
    samples (early) that raises entropy, with mostly positive ones (late) it lowers it.
    Unknown surprisal (NaN) or a left-out trajectory: weight 1. ±inf surprisal, or one beyond
    1e150, is a ValueError naming the turn.
    """
    if beta < 0 or clip <= 0:
        raise ValueError(f"AEM needs beta ≥ 0 and clip > 0, got beta={beta}, clip={clip}")
    u = _rows(batch, surprisal, "AEM surprisal")
    row_inc = _include(batch, include)[batch.traj]
    known = row_inc & ~np.isnan(u)
    _check(u, known, batch, "AEM response surprisal")
    u0 = np.where(known, u, 0.0)
    mean, sd, _ = segment_mean_std(u0, batch.group, batch.n_groups, mask=known, norm=VERL_NORM)
    sd = np.where(sd < VERL_NORM.eps, 1.0, sd)
    z = (u0 - mean[batch.group]) / (sd[batch.group] + VERL_NORM.eps)
    return np.where(known, np.exp(-beta * np.clip(z, -clip, clip)), 1.0)


def aem(
    batch: TurnBatch,
    advantages: np.ndarray,
    surprisal: np.ndarray,
    *,
    beta: float = 0.2,
    clip: float = 3.0,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """AEM [recon] (docs/credit.md#aem): ``A'_t = w_t·A_t`` with :func:`aem_weights`, on top of
    any base advantage."""
    a = _rows(batch, advantages, "AEM base advantages")
    return a * aem_weights(batch, surprisal, beta=beta, clip=clip, include=include)
