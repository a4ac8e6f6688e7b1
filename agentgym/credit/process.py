"""Turn rewards that come from outside the env: answer consensus (SIOP), per-turn judge scores
(MAPO), tool-call matching against a gold trace (MatchTIR) and an oracle verifier's score of
each candidate action in a state group (VPR).

Both produce one advantage per turn row of a :class:`TurnBatch`, like the estimators in
:mod:`agentgym.credit.estimators`, and follow the same conventions (``include`` is the
per-trajectory statistics mask; rows of left-out trajectories get 0). docs/credit.md#siop and
#mapo state the maths and what is reconstructed.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .batch import TurnBatch
from .estimators import _include, _no_score_penalty, _turn_group_codes
from .progress import MAX_MAGNITUDE, pooled_z_returns
from .segments import VERL_NORM, Norm, segment_mean_std, zscore

__all__ = [
    "ASSIGNMENTS",
    "MAX_MAGNITUDE",
    "answer_clusters",
    "greedy_assignment",
    "mapo",
    "match_tool_calls",
    "matchtir",
    "matchtir_turn_rewards",
    "normalise_answer",
    "optimal_assignment",
    "siop",
    "siop_rewards",
    "sinkhorn_plan",
    "tool_similarity",
    "VPR_MODES",
    "vpr",
]

Equivalent = Callable[[str, str], bool]

_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise_answer(text: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed: SIOP's exact-match normal form."""
    return " ".join(str(text).lower().translate(_PUNCT).split())


def answer_clusters(
    answers: Sequence[str | None],
    groups: Sequence[int] | np.ndarray,
    *,
    equivalent: Equivalent | None = None,
    include: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str | None], np.ndarray]:
    """Cluster each prompt group's final answers; returns (q, reference answer, cluster code) per trajectory.

    Within a group, trajectories are visited in order; an answer not yet clustered opens a cluster
    and every later unclustered answer ``equivalent`` to it joins (SIOP's greedy NLI clustering,
    with a pluggable test; default: equal :func:`normalise_answer` forms). ``q = |c| / K`` with K
    the group's answered trajectories; the reference is the first member's answer, stripped.
    No answer (None or blank), or a trajectory outside ``include``: q = 0, reference None, code −1.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n = len(answers)
    if len(groups) != n:
        raise ValueError(f"answer_clusters: {n} answers for {len(groups)} group codes")
    inc = np.ones(n, dtype=bool) if include is None else np.asarray(include, dtype=bool)
    q = np.zeros(n)
    refs: list[str | None] = [None] * n
    code = np.full(n, -1, dtype=np.int64)
    members: dict[int, list[int]] = {}
    for i, a in enumerate(answers):
        if inc[i] and a is not None and str(a).strip():
            members.setdefault(int(groups[i]), []).append(i)
    next_code = 0
    for idx in members.values():
        clusters: list[list[int]] = []
        if equivalent is None:
            by_key: dict[str, list[int]] = {}
            for i in idx:
                by_key.setdefault(normalise_answer(str(answers[i])), []).append(i)
            clusters = list(by_key.values())  # dicts keep first-seen order: the greedy order
        else:
            open_ = list(idx)
            while open_:
                head, rest = open_[0], open_[1:]
                same = [j for j in rest if equivalent(str(answers[head]).strip(), str(answers[j]).strip())]
                clusters.append([head, *same])
                taken = set(same)
                open_ = [j for j in rest if j not in taken]
        for members_c in clusters:
            for i in members_c:
                q[i] = len(members_c) / len(idx)
                refs[i] = str(answers[members_c[0]]).strip()
                code[i] = next_code
            next_code += 1
    return q, refs, code


def _check_magnitude(values: np.ndarray, mask: np.ndarray, what: str) -> None:
    big = mask & (np.abs(values) > MAX_MAGNITUDE)
    if big.any():
        raise ValueError(f"{what}: |value| {float(np.abs(values[big]).max()):.3g} exceeds {MAX_MAGNITUDE:g}, "
                         "too large to normalise; rescale the scores")


# -- SIOP ----------------------------------------------------------------------------------
def siop_rewards(
    batch: TurnBatch, q: np.ndarray, *, lam: float = 0.5, eps: float = 1e-8
) -> np.ndarray:
    """SIOP's per-turn process reward (before normalisation), one per row.

    ``r_t = q·(log(p̂_t + eps) − log(p̂_{t−1} + eps))`` with ``log p̂_t = batch.ref_logp`` (mean
    log-prob of the trajectory's reference answer after turn t) and ``log p̂_{−1} =
    batch.ref_logp0`` (prompt only); the final turn adds ``(1 − λ)·q``. A term whose log-probs
    are not finite is 0 (SIOP's code skips them). A one-turn trajectory gets only ``(1 − λ)·q``
    (the code scores no context for it). ``q = 0`` (no answer) gives 0 everywhere.
    """
    if batch.ref_logp is None or batch.ref_logp0 is None:
        raise ValueError("SIOP needs reference-answer log-probs (batch.ref_logp): build the batch with ref_logp, "
                         "or run the pipeline with trajectories and a scorer")
    if eps < 0:
        raise ValueError(f"SIOP eps must be ≥ 0, got {eps}")
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (batch.n_traj,):
        raise ValueError(f"SIOP q must have one value per trajectory ({batch.n_traj}), got shape {q.shape}")
    after = batch.ref_logp
    before = np.empty_like(after)
    before[1:] = after[:-1]
    has = batch.lengths > 0
    before[batch.starts[has]] = batch.ref_logp0[has]
    ok = np.isfinite(after) & np.isfinite(before)

    def log_p(x: np.ndarray) -> np.ndarray:
        return np.logaddexp(x, np.log(eps)) if eps > 0 else x

    gain = np.where(ok, log_p(np.where(ok, after, 0.0)) - log_p(np.where(ok, before, 0.0)), 0.0)
    qr = q[batch.traj]
    r = np.where(batch.lengths[batch.traj] > 1, qr * gain, 0.0)
    r = r + np.where(batch.is_last, (1.0 - lam) * qr, 0.0)
    return r


def siop(
    batch: TurnBatch,
    q: np.ndarray,
    *,
    lam: float = 0.5,
    eps: float = 1e-8,
    gamma: float = 1.0,
    std: bool = True,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """SIOP advantage (docs/credit.md#siop): :func:`siop_rewards` z-scored per prompt group, summed backwards.

    As SIOP's released ``compute_siop_turn_level_advantage``: every turn row of the group's
    trajectories is pooled (a trajectory with no answer contributes its zeros), unbiased std,
    a std below 1e-6 counts as 1, ``(r − μ)/(σ + 1e-6)``; then ``A_t = Σ_{k≥t} γ^{k−t} r̃_k``.
    """
    _no_score_penalty(batch, "siop")
    inc = _include(batch, include)
    row_inc = inc[batch.traj]
    r = siop_rewards(batch, q, lam=lam, eps=eps)
    _check_magnitude(r, row_inc, "SIOP turn reward")
    return pooled_z_returns(batch, r, row_inc, gamma=gamma, std=std)


# -- MAPO ----------------------------------------------------------------------------------
def _turn_values(batch: TurnBatch, values: Any, include: Any, method: str, what: str,
                 missing: str) -> tuple[np.ndarray, np.ndarray]:
    """One value per turn row (``values`` or ``batch.turn_score``), checked finite on the included
    rows and zeroed elsewhere, with the included-row mask: MAPO's scores, MatchTIR's rewards."""
    _no_score_penalty(batch, method.lower())
    v = batch.turn_score if values is None else np.asarray(values, dtype=np.float64)
    if v is None:
        raise ValueError(missing)
    if v.shape != (batch.n_rows,):
        raise ValueError(f"{method} {what}s must have one value per turn row ({batch.n_rows}), got shape {v.shape}")
    row_inc = _include(batch, include)[batch.traj]
    bad = row_inc & ~np.isfinite(v)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{method}: trajectory {_label(batch.traj_ids, int(batch.traj[r]))!r} turn "
                         f"{int(batch.turn_index[r])} has {what} {v[r]} ({int(bad.sum())} non-finite {what}s)")
    return np.where(row_inc, v, 0.0), row_inc


def mapo(
    batch: TurnBatch,
    *,
    scores: np.ndarray | None = None,
    gamma: float = 1.0,
    lam: float = 0.5,
    std: bool = True,
    include: np.ndarray | None = None,
    norm: Norm = VERL_NORM,
) -> np.ndarray:
    """MAPO mixed advantage (docs/credit.md#mapo) [recon: the mixing rule is not published in code].

    ``G_t = Σ_{k≥t} γ^{k−t} s_k`` over per-turn scores ``s`` (``scores``, default
    ``batch.turn_score``). ``A^turn`` z-scores G across the rollouts of the prompt group at the
    same turn position; ``A^batch`` z-scores it over every turn row of the batch;
    ``A = λ·A^turn + (1 − λ)·A^batch``. A turn position held by one rollout has ``A^turn = 0``.
    A NaN or infinite score is an error naming the trajectory and turn; so is a return beyond
    :data:`MAX_MAGNITUDE`.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MAPO lam must lie in [0, 1], got {lam}")
    s, row_inc = _turn_values(
        batch, scores, include, "MAPO", "score",
        "MAPO needs per-turn scores (batch.turn_score, e.g. a judge's): build the batch with "
        "turn_score, or give the stage score_key (the trajectory info key holding them)")
    g = batch.suffix_sum(s, gamma)
    _check_magnitude(g, row_inc, "MAPO return")
    codes, n = _turn_group_codes(batch)
    a_turn = zscore(g, codes, n, mask=row_inc, norm=norm, std=std)
    a_batch = zscore(g, np.zeros(batch.n_rows, dtype=np.int64), 1, mask=row_inc, norm=norm, std=std)
    return np.where(row_inc, lam * a_turn + (1.0 - lam) * a_batch, 0.0)


def _label(labels: Any, code: int) -> Any:
    return code if labels is None else str(labels[code])


# -- MatchTIR ------------------------------------------------------------------------------
ASSIGNMENTS = ("hungarian", "greedy", "soft")


def _arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    args = call.get("arguments", call.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return {}
    return dict(args) if isinstance(args, Mapping) else {}


def _key_overlap(gold: list[str], pred: list[str]) -> float:
    """|gold ∩ pred| / |gold ∪ pred| over parameter names (as multisets); 1 when both are equal."""
    if gold == pred:
        return 1.0
    if not gold or not pred:
        return 0.0
    a, b = Counter(gold), Counter(pred)
    inter = sum(min(a[k], b[k]) for k in a.keys() & b.keys())
    return inter / (len(gold) + len(pred) - inter)


def tool_similarity(pred: Mapping[str, Any], gold: Mapping[str, Any]) -> float:
    """MatchTIR's call similarity in [0, 1]: 0 for another tool name (case-insensitive), else
    ``(1 + key overlap + #gold arguments matched exactly) / (2 + #gold arguments)``."""
    if str(pred.get("name", "")).lower() != str(gold.get("name", "")).lower():
        return 0.0
    p, g = _arguments(pred), _arguments(gold)
    exact = sum(1.0 for k, v in g.items() if k in p and p[k] == v)
    return (1.0 + _key_overlap(list(g), list(p)) + exact) / (2.0 + len(g))


def optimal_assignment(score: np.ndarray) -> np.ndarray:
    """Column matched to each row (−1: none) maximising the total score (Hungarian method, exact).

    Shortest augmenting paths with potentials, O(n²m) for n ≤ m rows (the matrix is transposed
    otherwise); plain Python lists, since a trajectory's matrices are small and numpy's per-call
    overhead would dominate. A small exact stand-in for
    ``scipy.optimize.linear_sum_assignment(score, maximize=True)``.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 2:
        raise ValueError("optimal_assignment needs a 2-D score matrix")
    if score.shape[0] > score.shape[1]:
        cols = optimal_assignment(score.T)
        out = np.full(score.shape[0], -1, dtype=np.int64)
        out[cols[cols >= 0]] = np.flatnonzero(cols >= 0)
        return out
    n, m = score.shape
    cost = (-score).tolist()
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    row_of = [0] * (m + 1)  # 1-based row matched to column j; 0 = free
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = row_of[j0], inf, 0
            c, ui = cost[i0 - 1], u[i0]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = c[j - 1] - ui - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    out = np.full(n, -1, dtype=np.int64)
    for j in range(1, m + 1):
        if row_of[j]:
            out[row_of[j] - 1] = j - 1
    return out


def greedy_assignment(score: np.ndarray) -> np.ndarray:
    """MatchTIR's released ``hungarian_assignment``: take pairs by descending score (a stable sort:
    ties go to the earlier row, then the earlier column), each row and column once, only scores
    > 0. Not optimal: a high pair taken first can block a better total."""
    score = np.asarray(score, dtype=np.float64)
    n, m = score.shape
    out = np.full(n, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=bool)
    flat = sorted(((float(score[i, j]), i, j) for i in range(n) for j in range(m)), key=lambda x: x[0], reverse=True)
    for s, i, j in flat:
        if s > 0 and out[i] < 0 and not taken[j]:
            out[i] = j
            taken[j] = True
    return out


def sinkhorn_plan(score: np.ndarray, reg: float = 0.1, iters: int = 1000, tol: float = 1e-9) -> np.ndarray:
    """Entropic optimal transport plan between uniform marginals (1/P per call, 1/G per gold call)
    for cost −score: the Sinkhorn-Knopp iteration with POT's ``ot.sinkhorn`` defaults."""
    p, g = score.shape
    a, b = np.full(p, 1.0 / p), np.full(g, 1.0 / g)
    k = np.exp(score / reg)
    kt, kp = k.T.copy(), k / a[:, None]
    u, v = a.copy(), b.copy()
    for it in range(iters):
        v = b / (kt @ u)
        u = 1.0 / (kp @ v)
        if it % 10 == 0 and np.linalg.norm((u[:, None] * k * v[None, :]).sum(axis=0) - b) < tol:
            break
    return u[:, None] * k * v[None, :]


def match_tool_calls(
    pred: Sequence[Mapping[str, Any]],
    gold: Sequence[Mapping[str, Any]],
    *,
    assignment: str = "hungarian",
    reg: float = 0.1,
) -> np.ndarray:
    """One reward per predicted call from its match to the gold trace (docs/credit.md#matchtir).

    ``hungarian``: the optimal one-to-one assignment; a matched call earns its similarity, an
    unmatched one 0. ``greedy``: the released code's greedy matching. ``soft``: ``Σ_j T_ij S_ij``
    with T the Sinkhorn plan (each call carries mass 1/P, so soft rewards shrink with the number
    of calls, as in the released code). No gold calls: every reward is 0.
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"MatchTIR assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
    for what, calls in (("predicted", pred), ("gold", gold)):
        for c in calls:
            if not isinstance(c, Mapping) or "name" not in c:
                raise ValueError(f"MatchTIR: a {what} tool call must be a mapping with a 'name' "
                                 f"(and 'arguments'), got {c!r}")
    if not pred:
        return np.zeros(0)
    if not gold:
        return np.zeros(len(pred))
    s = np.array([[tool_similarity(p, q) for q in gold] for p in pred], dtype=np.float64)
    if assignment == "soft":
        return (sinkhorn_plan(s, reg=reg) * s).sum(axis=1)
    match = optimal_assignment(s) if assignment == "hungarian" else greedy_assignment(s)
    return np.where(match >= 0, s[np.arange(len(pred)), np.maximum(match, 0)], 0.0)


def matchtir_turn_rewards(
    turn_calls: Sequence[Sequence[Mapping[str, Any]]],
    gold: Sequence[Mapping[str, Any]],
    *,
    assignment: str = "hungarian",
    reg: float = 0.1,
) -> np.ndarray:
    """Per-turn matching reward of one trajectory: all its calls are matched against the gold
    trace at once, and each turn gets the mean reward of its own calls (0 if it made none)."""
    flat = [c for calls in turn_calls for c in calls]
    owner = np.repeat(np.arange(len(turn_calls)), [len(c) for c in turn_calls]).astype(np.int64)
    rewards = match_tool_calls(flat, gold, assignment=assignment, reg=reg)
    total = np.bincount(owner, weights=rewards, minlength=len(turn_calls))
    count = np.bincount(owner, minlength=len(turn_calls))
    return total / np.maximum(count, 1)


def matchtir(
    batch: TurnBatch,
    *,
    rewards: np.ndarray | None = None,
    gamma: float = 0.9,
    mix: float = 0.5,
    std: bool = True,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """MatchTIR dual-level advantage (docs/credit.md#matchtir), as its released GRPO variant computes it.

    Turn rewards ``r`` (``rewards``, default ``batch.turn_score``). Trajectory level: the sum of
    a trajectory's turn rewards z-scored in its prompt group. Turn level: ``G_t = Σ_{k≥t}
    γ^{k−t} r_k`` (γ = 0.9 in the code) z-scored per (prompt, turn position). ``A = mix·A^turn +
    (1 − mix)·A^traj`` (the code averages: mix = 0.5). Unbiased std + 1e-6; a group of one gives 0.
    """
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"MatchTIR mix must lie in [0, 1], got {mix}")
    r, row_inc = _turn_values(
        batch, rewards, include, "MatchTIR", "reward",
        "MatchTIR needs per-turn matching rewards (batch.turn_score or rewards=...); the "
        "matchtir stage computes them from the trajectories' tool calls and gold trace")
    inc = _include(batch, include)
    g = batch.suffix_sum(r, gamma)
    _check_magnitude(g, row_inc, "MatchTIR return")
    total = np.bincount(batch.traj, weights=r, minlength=batch.n_traj)
    _check_magnitude(total, inc, "MatchTIR trajectory reward")
    a_traj = zscore(total, batch.traj_group, batch.n_groups, mask=inc, std=std)[batch.traj]
    codes, n = _turn_group_codes(batch)
    a_turn = zscore(g, codes, n, mask=row_inc, std=std)
    return np.where(row_inc, mix * a_turn + (1.0 - mix) * a_traj, 0.0)


# -- VPR -----------------------------------------------------------------------------------
VPR_MODES = ("group_whiten", "mean_then_batch_whiten")


def vpr(
    batch: TurnBatch,
    *,
    mode: str = "group_whiten",
    eps: float = 1e-8,
    include: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """VPR's state-group advantage (docs/credit.md#vpr), as its released code computes it.

    Each trajectory is one candidate action of a state group (``traj_group``: the records of
    :mod:`agentgym.state_group`); its reward ``r`` is its turn's reward (the oracle's score plus
    the success bonus). Per group, over its candidates in ``include``: ``μ``, population ``σ``.
    ``group_whiten``: ``A = (r − μ) / (σ + eps)``. ``mean_then_batch_whiten``: ``r − μ``, then
    z-scored (population std) over every trained candidate of the batch. A group with fewer than
    two candidates, or ``σ ≤ eps`` (all rewards equal), is not trained: advantage 0 and train
    mask 0. Returns ``(advantages, train_mask)``, one per row.
    """
    if mode not in VPR_MODES:
        raise ValueError(f"VPR mode must be one of {VPR_MODES}, got {mode!r}")
    if not eps > 0:
        raise ValueError(f"VPR eps must be > 0, got {eps}")
    _no_score_penalty(batch, "vpr")
    inc = _include(batch, include)
    multi = inc & (batch.lengths > 1)
    if multi.any():
        i = int(np.flatnonzero(multi)[0])
        raise ValueError(f"VPR scores one candidate action per record, but trajectory "
                         f"{_label(batch.traj_ids, i)!r} has {int(batch.lengths[i])} turns: roll out in state "
                         "groups (agentgym.state_group; the trainer's rollout.mode: state_group)")
    cand = inc[batch.traj]
    r = batch.reward
    _check_magnitude(r, cand, "VPR candidate reward")
    g = batch.group
    mean, sd, count = segment_mean_std(r, g, batch.n_groups, mask=cand, norm=Norm(ddof=0, var_eps=0.0, eps=eps))
    train = cand & ((count >= 2) & (sd > eps))[g]
    centered = np.where(train, r - mean[g], 0.0)
    if mode == "group_whiten":
        return np.where(train, centered / (sd[g] + eps), 0.0), train
    c = centered[train]
    s = float(c.std()) if c.size else 0.0
    if not s > eps:
        return np.zeros(batch.n_rows), train
    return np.where(train, (centered - c.mean()) / (s + eps), 0.0), train
