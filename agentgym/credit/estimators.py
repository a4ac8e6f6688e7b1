"""Turn-level advantage estimators as pure functions of a :class:`TurnBatch` (docs/credit.md).

Each returns a float array with one value per row (canonical row order). ``include`` is a
per-trajectory mask of the trajectories that enter the group statistics; infra failures are
always left out. Rows of left-out trajectories get 0 (the pipeline also masks their loss).

Conventions (they change the numbers, so they are explicit):
* GRPO / RLOO / GiGPO use verl's unbiased std (``VERL_NORM``); IGPO and A²TGPO use the
  population std with ``sqrt(var + 1e-8)`` (``IGPO_NORM``), as their released code does.
* A group with a single member is its own baseline: advantage 0. (verl's GRPO sets the mean of
  a size-1 group to 0 instead, which turns a lone rollout's raw reward into its advantage; we do
  not copy that.)
* The last turn of every trajectory is its outcome (answer) turn, whatever it contains: a void
  turn or a turn cut by ``max_turns`` is scored with the trajectory's outcome there. All earlier
  turns are information-gain turns. This is agentgym's definition of the case IGPO's code handles
  by a turn-count mismatch fallback (docs/credit.md#turn-reward) [recon].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from agentgym.trajectory import KEY_TAG

from .batch import TurnBatch
from .segments import IGPO_NORM, VERL_NORM, Norm, segment_mean_std, zscore

__all__ = [
    "a2tgpo",
    "anchor_groups",
    "gigpo",
    "group_filter",
    "grpo",
    "igpo",
    "information_gain",
    "invalid_action_penalty",
    "invalid_turn_penalty",
    "rloo",
    "tempo",
    "void_loss_mask",
]

IGType = Literal["log_prob_diff", "prob_diff"]
IGNorm = Literal["separate", "joint", "turn_group"]


def _include(batch: TurnBatch, include: np.ndarray | None) -> np.ndarray:
    """Per-trajectory statistics mask: never an infra failure; and the finiteness gate.

    Every estimator starts here, so a non-finite reward or outcome of a trajectory that would
    enter the statistics raises (:meth:`TurnBatch.check_finite`) before it can turn its whole
    group's advantages into NaN. Trajectories left out by ``include`` (e.g. the pipeline's
    ``on_nonfinite="mask_group"``) are not checked: they never touch the statistics.
    """
    inc = ~batch.infra
    if include is not None:
        inc = inc & np.asarray(include, dtype=bool)
    batch.check_finite(inc)
    return inc


def _pair_codes(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, int]:
    """Dense codes for pairs (a, b) with 0 ≤ b < nb: direct when small, else via np.unique."""
    na = int(a.max()) + 1 if a.size else 0
    if na * nb <= 4 * a.size + 1024:
        return a * nb + b, na * nb
    uniq, inv = np.unique(a * nb + b, return_inverse=True)
    return inv.reshape(-1), len(uniq)


# -- outcome baselines ---------------------------------------------------------------------
def grpo(
    batch: TurnBatch, *, std: bool = True, include: np.ndarray | None = None, norm: Norm = VERL_NORM
) -> np.ndarray:
    """GRPO: the trajectory outcome z-scored within its prompt group, on every turn.

    ``std=False`` is the Dr.GRPO form (mean-centred only, no length or std normalisation at
    the turn level). Each trajectory counts once in the statistics. A row's ``score_penalty``
    (verl-agent's invalid-action penalty) makes that row's score ``R − c``, normalised by the
    group's statistics (which count each trajectory once, unpenalised).

    Trajectories with no turns (an episode the env ended at reset, or a prompt that did not
    fit) have no rows, so no advantage, but their outcome *does* enter their group's mean and
    std here and in every outcome statistic (GiGPO's trajectory-level A^E, IGPO's and A²TGPO's
    outcome z-score, TEMPO's root, the group filters): they are rollouts of the prompt like any
    other, and dropping them would let a prompt that often fails before acting look easy. Only
    statistics over *rows* (GiGPO ``episode_stats="step"``, anchor groups, IG pools) have no
    place for them.
    """
    inc = _include(batch, include)
    adv = zscore(batch.outcome, batch.traj_group, batch.n_groups, mask=inc, norm=norm, std=std)[batch.traj]
    if batch.score_penalty is not None:  # the penalised row's score is R − c (verl-agent)
        _, sd, _ = segment_mean_std(batch.outcome, batch.traj_group, batch.n_groups, mask=inc, norm=norm)
        scale = sd[batch.group] + norm.eps if std else 1.0
        adv = np.where(inc[batch.traj], adv - batch.score_penalty / scale, 0.0)
    return adv


def _no_score_penalty(batch: TurnBatch, method: str) -> None:
    if batch.score_penalty is not None and np.any(batch.score_penalty != 0):
        raise ValueError(f"{method} has no per-row episode score, so verl-agent's invalid_action_penalty "
                         "is undefined for it; use it with gigpo or grpo, or use invalid_turn_penalty")


def rloo(batch: TurnBatch, *, include: np.ndarray | None = None) -> np.ndarray:
    """RLOO: outcome minus the mean of the *other* rollouts of the group, ``G/(G−1)·(r − mean)``."""
    _no_score_penalty(batch, "rloo")
    inc = _include(batch, include)
    mean, _, count = segment_mean_std(batch.outcome, batch.traj_group, batch.n_groups, mask=inc)
    g = count[batch.traj_group]
    adv = np.where(inc & (g > 1), (batch.outcome - mean[batch.traj_group]) * g / np.maximum(g - 1, 1), 0.0)
    return adv[batch.traj]


# -- GiGPO -------------------------------------------------------------------------------------
def anchor_groups(
    batch: TurnBatch, *, similarity: float | None = None, include: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """(anchor code per row, number of codes): GiGPO's step groups, always within a prompt group.

    Exact mode pools turns whose ``state_key`` is equal *by content*: keys are compared in their
    canonical, type-tagged form (:func:`agentgym.trajectory.canonical_key`, applied by the batch
    builders), never through ``str()``. With ``similarity`` = a threshold in (0, 1], distinct text
    keys of a prompt group are clustered greedily: each joins the first cluster whose
    representative (its first member) has ``difflib.SequenceMatcher.ratio() ≥ threshold``
    (structured keys are an error there). verl-agent visits observations in rollout order; we
    visit the distinct keys in sorted order so the clusters do not depend on how rollouts are
    ordered [recon]. A turn without a state key, or of a trajectory outside ``include``, is an
    anchor of its own.

    ``SequenceMatcher(autojunk=False)``, deliberately unlike verl-agent (which keeps the default
    ``autojunk=True``): with autojunk, any character that makes up over 1% of a text longer than
    200 characters is "popular" and ignored, which in prose means spaces and common letters. A
    263-character observation and a copy with two characters changed then score 0.099 and land
    in different anchors; without autojunk they score 0.992, as the threshold intends. Ours is
    the better choice for observation text; it is a documented departure.
    """
    row_inc = _include(batch, include)[batch.traj]
    keyed = (batch.state >= 0) & row_inc
    n_states = int(batch.state.max()) + 1 if batch.n_rows else 0
    if similarity is not None:
        state = _similarity_clusters(batch, keyed, float(similarity))
        n_states = int(state.max()) + 1 if state.size else 0
    else:
        state = batch.state
    pair = batch.group * max(n_states, 1) + np.maximum(state, 0)
    key = np.where(keyed, pair, -1 - np.arange(batch.n_rows))  # unkeyed rows: unique negative keys
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.reshape(-1), len(uniq)


def _similarity_clusters(batch: TurnBatch, keyed: np.ndarray, threshold: float) -> np.ndarray:
    """Row → cluster code (codes unique across groups); −1 for unkeyed rows."""
    from difflib import SequenceMatcher

    if batch.state_keys is None:
        raise ValueError("similarity anchors need the original state keys (batch.state_keys)")
    n_states = int(batch.state.max()) + 1
    pairs = np.unique(batch.group[keyed] * n_states + batch.state[keyed])
    cluster_of: dict[int, int] = {}
    next_id = 0
    groups = pairs // n_states
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for chunk in np.split(pairs, bounds):
        texts = sorted((_text_key(batch.state_keys[p % n_states]), int(p)) for p in chunk)
        reps: list[tuple[SequenceMatcher, int]] = []
        for text, p in texts:
            for matcher, cid in reps:
                matcher.set_seq2(text)
                if (matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold
                        and matcher.ratio() >= threshold):
                    cluster_of[p] = cid
                    break
            else:
                reps.append((SequenceMatcher(None, text, autojunk=False), next_id))
                cluster_of[p] = next_id
                next_id += 1
    out = np.full(batch.n_rows, -1, dtype=np.int64)
    if cluster_of:
        keys = np.fromiter(cluster_of.keys(), dtype=np.int64)
        vals = np.fromiter(cluster_of.values(), dtype=np.int64)
        order = np.argsort(keys)
        pair_rows = batch.group[keyed] * n_states + batch.state[keyed]
        out[keyed] = vals[order][np.searchsorted(keys[order], pair_rows)]
    return out


def _text_key(key: object) -> str:
    """Similarity compares text: a non-text anchor key (a tuple, an array) is an error, not its repr."""
    if not isinstance(key, str) or key.startswith(KEY_TAG):
        raise ValueError(f"similarity anchors compare text state keys; got a non-text key {key!r}: "
                         "use exact anchors (similarity=None) for structured keys")
    return key


def gigpo(
    batch: TurnBatch,
    *,
    gamma: float = 0.95,
    omega: float = 1.0,
    std: bool = False,
    episode_stats: Literal["trajectory", "step"] = "trajectory",
    episode_weight: float = 1.0,
    similarity: float | None = None,
    include: np.ndarray | None = None,
    anchors: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """GiGPO: ``A = A^E + ω·A^S`` (docs/credit.md#gigpo), on the env's per-turn rewards.

    A^E: the episode return ``Σ_t r_t`` normalised in the prompt group. ``episode_stats``
    picks whose statistics: ``"trajectory"`` counts each trajectory once (paper Eq. 3, the worked
    example); ``"step"`` counts every turn row, so long trajectories weigh more (verl-agent's
    default ``compute_mean_std_cross_steps=True``). A^S: the discounted return from the turn
    minus the mean over its anchor group (``anchor_groups``). ``std=False`` is F_norm = 1
    ("mean_norm", the default here and in the worked example); ``std=True`` divides both levels by
    the unbiased std + 1e-6. ``episode_weight=0`` keeps only the step term, for composing with a
    separate outcome stage.

    A row's ``score_penalty`` (verl-agent's invalid-action penalty) is subtracted from that
    row's own episode score (``R − c``) and step return (``G_t − c``) before normalisation and
    is never discounted back to earlier turns; with ``episode_stats="step"`` this is exactly
    verl-agent's GiGPO (with ``"trajectory"`` the statistics count each trajectory once,
    unpenalised).
    """
    inc = _include(batch, include)
    row_inc = inc[batch.traj]
    ret = np.bincount(batch.traj, weights=batch.reward, minlength=batch.n_traj)
    pen = batch.score_penalty if batch.score_penalty is not None else np.zeros(batch.n_rows)
    if episode_stats == "trajectory":
        a_ep = zscore(ret, batch.traj_group, batch.n_groups, mask=inc, std=std)[batch.traj]
        if pen.any():
            _, sd, _ = segment_mean_std(ret, batch.traj_group, batch.n_groups, mask=inc)
            a_ep = a_ep - pen / (sd[batch.group] + VERL_NORM.eps if std else 1.0)
    elif episode_stats == "step":
        a_ep = zscore(ret[batch.traj] - pen, batch.group, batch.n_groups, mask=row_inc, std=std)
    else:
        raise ValueError(f"episode_stats must be 'trajectory' or 'step', got {episode_stats!r}")
    step_return = batch.suffix_sum(batch.reward, gamma) - pen
    codes, n = anchors if anchors is not None else anchor_groups(batch, similarity=similarity, include=include)
    a_step = zscore(step_return, codes, n, mask=row_inc, std=std)
    return np.where(row_inc, episode_weight * a_ep + omega * a_step, 0.0)


# -- information gain ----------------------------------------------------------------------
def information_gain(batch: TurnBatch, *, ig_type: IGType = "log_prob_diff") -> np.ndarray:
    """Per-turn IG ``ℓ_t − ℓ_{t−1}`` (or ``exp ℓ_t − exp ℓ_{t−1}``); NaN on the outcome turn.

    ``ℓ_t`` = ``batch.gold_logp`` (after turn t), ``ℓ_{−1}`` = ``batch.gold_logp0`` (prompt
    only). T turns give T−1 values; they telescope to ``ℓ_{T−1} − ℓ_0``.
    """
    if batch.gold_logp is None or batch.gold_logp0 is None:
        raise ValueError("information gain needs gold log-probs: build the batch with gold_logp or pass a scorer")
    after = batch.gold_logp
    before = np.empty_like(after)
    before[1:] = after[:-1]
    has = batch.lengths > 0
    before[batch.starts[has]] = batch.gold_logp0[has]
    if ig_type == "log_prob_diff":
        ig = after - before
    elif ig_type == "prob_diff":
        ig = np.exp(after) - np.exp(before)
    else:
        raise ValueError(f"ig_type must be 'log_prob_diff' or 'prob_diff', got {ig_type!r}")
    ig[batch.is_last] = np.nan
    return ig


def _turn_group_codes(batch: TurnBatch) -> tuple[np.ndarray, int]:
    """Codes of (prompt group, turn position): A²TGPO's comparison groups."""
    max_len = int(batch.lengths.max()) if batch.n_traj else 1
    return _pair_codes(batch.group, batch.turn_index, max(max_len, 1))


def igpo(
    batch: TurnBatch,
    *,
    ig_type: IGType = "log_prob_diff",
    norm: IGNorm = "separate",
    gamma: float = 1.0,
    std: bool = True,
    outcome: bool = True,
    outcome_weight: float = 1.0,
    ig_weight: float = 1.0,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """IGPO (docs/credit.md#igpo): normalised IG turn rewards plus the outcome, accumulated backwards.

    ``norm``: ``"separate"`` z-scores the IG values pooled over all turns and rollouts of the
    prompt, and the outcomes over the rollouts, apart (v2, the default); ``"joint"`` pools both
    (v1); ``"turn_group"`` z-scores IG per (prompt, turn position) as A²TGPO does. Population std,
    ``sqrt(var + 1e-8)``, ``/(σ + 1e-6)``. Then ``R̃_t = Σ_{k≥t} γ^{k−t} r̃_k``, where the last
    turn holds the normalised outcome. ``outcome=False`` zeroes that outcome term after
    normalisation (to add IG on top of another stage that already credits the outcome).
    ``outcome_weight`` / ``ig_weight`` scale the raw rewards before normalisation (IGPO's
    optional curriculum). Non-finite IG values are skipped: out of the statistics, r̃ = 0 [recon].
    """
    _no_score_penalty(batch, "igpo")
    inc = _include(batch, include)
    row_inc = inc[batch.traj]
    ig = information_gain(batch, ig_type=ig_type) * ig_weight
    last = batch.is_last
    is_ig = ~last & np.isfinite(ig) & row_inc
    r_out = batch.outcome * outcome_weight
    rt = np.zeros(batch.n_rows)
    if norm == "joint":
        pooled = np.where(last, r_out[batch.traj], ig)
        z = zscore(pooled, batch.group, batch.n_groups, mask=is_ig | (last & row_inc), norm=IGPO_NORM, std=std)
        rt = np.where(is_ig | last, z, 0.0)
    elif norm in ("separate", "turn_group"):
        codes, n = (batch.group, batch.n_groups) if norm == "separate" else _turn_group_codes(batch)
        rt = zscore(ig, codes, n, mask=is_ig, norm=IGPO_NORM, std=std)
        z_out = zscore(r_out, batch.traj_group, batch.n_groups, mask=inc, norm=IGPO_NORM, std=std)
        rt[last] = z_out[batch.traj[last]]
    else:
        raise ValueError(f"norm must be 'separate', 'joint' or 'turn_group', got {norm!r}")
    if not outcome:
        rt[last] = 0.0
    return np.where(row_inc, batch.suffix_sum(rt, gamma), 0.0)


def a2tgpo(
    batch: TurnBatch,
    *,
    alpha: float = 0.3,
    beta: float = 0.3,
    gamma: float = 1.0,
    ig_type: IGType = "log_prob_diff",
    std: bool = True,
    outcome: bool = True,
    include: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A²TGPO (docs/credit.md#a2tgpo): returns (advantage, clip scale) per row.

    IG is z-scored per (prompt, turn position) → ñ. ``D_t = Σ_{j≥t} γ^{j−t} ñ_j`` over IG turns
    only, ``A_t = α·D_t/√(n−t) + Â^O`` with n the trajectory's IG-turn count, and the outcome
    turn gets ``Â^O`` (the outcome z-scored in the prompt group, population std). Clip scale
    ``c_t = 1 + β(2σ(ñ_t) − 1) ∈ (1−β, 1+β)``, 1 on the outcome turn; the loss multiplies its
    clip range by it. ``outcome=False`` drops ``Â^O`` (composition with another outcome stage).
    """
    _no_score_penalty(batch, "a2tgpo")
    inc = _include(batch, include)
    row_inc = inc[batch.traj]
    ig = information_gain(batch, ig_type=ig_type)
    last = batch.is_last
    is_ig = ~last & np.isfinite(ig) & row_inc
    codes, n = _turn_group_codes(batch)
    n_tilde = zscore(ig, codes, n, mask=is_ig, norm=IGPO_NORM, std=std)
    d = batch.suffix_sum(n_tilde, gamma)
    remaining = (batch.lengths - 1)[batch.traj] - batch.turn_index
    a_out = zscore(batch.outcome, batch.traj_group, batch.n_groups, mask=inc, norm=IGPO_NORM)[batch.traj]
    if not outcome:
        a_out = np.zeros(batch.n_rows)
    adv = np.where(last, a_out, alpha * d / np.sqrt(np.maximum(remaining, 1)) + a_out)
    clip = np.where(is_ig, 1.0 + beta * (2.0 / (1.0 + np.exp(-n_tilde)) - 1.0), 1.0)
    return np.where(row_inc, adv, 0.0), np.where(row_inc, clip, 1.0)


def tempo(batch: TurnBatch, *, lam: float = 1.0, include: np.ndarray | None = None) -> np.ndarray:
    """TEMPO / prefix-to-tree at the turn level (docs/credit.md#tempo) [recon: no released code].

    Trajectories of a prompt group are inserted in a trie whose edges are turns keyed by
    ``batch.branch`` (canonical (action, next observation), docs/credit.md's turn-level adaptation).
    ``r̃`` is the outcome z-scored in the group (population std + 1e-6: the reviewer's "divided by
    std(r)"); λ = 1 by default (the paper's weighting is unverified). ``V(node)`` is the mean ``r̃`` of the trajectories through it;
    ``δ_t = V(after turn t) − V(before turn t)`` and ``A_t = r̃ + λ·δ_t``. δ is 0 exactly where a
    node has a single child, and ``Σ_t δ_t = V(leaf) − V(root)``. The trie is built depth by
    depth with ``np.unique`` (vectorised over trajectories).
    """
    if batch.branch is None:
        raise ValueError("tempo needs per-turn branch keys (batch.branch)")
    _no_score_penalty(batch, "tempo")
    inc = _include(batch, include)
    row_inc = inc[batch.traj]
    r = zscore(batch.outcome, batch.traj_group, batch.n_groups, mask=inc, norm=Norm(ddof=0, var_eps=0.0))
    node = np.empty(batch.n_rows, dtype=np.int64)
    parent = np.empty(batch.n_rows, dtype=np.int64)
    nb = int(batch.branch.max()) + 1 if batch.n_rows else 1
    next_id = batch.n_groups  # ids 0 … n_groups−1 are the roots
    starts = batch.starts
    for k in range(int(batch.lengths.max()) if batch.n_traj else 0):
        rows = starts[batch.lengths > k] + k
        par = batch.traj_group[batch.traj[rows]] if k == 0 else node[rows - 1]
        uniq, inv = np.unique(par * nb + batch.branch[rows], return_inverse=True)
        node[rows] = next_id + inv.reshape(-1)
        parent[rows] = par
        next_id += len(uniq)
    w = row_inc.astype(np.float64)
    total = np.bincount(node, weights=w * r[batch.traj], minlength=next_id)
    count = np.bincount(node, weights=w, minlength=next_id)
    total[: batch.n_groups] = np.bincount(batch.traj_group, weights=np.where(inc, r, 0.0), minlength=batch.n_groups)
    count[: batch.n_groups] = np.bincount(batch.traj_group, weights=inc, minlength=batch.n_groups)
    value = total / np.maximum(count, 1.0)
    delta = value[node] - value[parent]
    return np.where(row_inc, r[batch.traj] + lam * delta, 0.0)


# -- masks, filters, penalties ------------------------------------------------------------
def void_loss_mask(batch: TurnBatch) -> np.ndarray:
    """SimpleTIR: 0 on every turn of a trajectory with a void turn, else 1 (docs/credit.md#void-masking).

    The per-turn ``void`` flag comes from the env's parser. Whether void trajectories stay in the
    group statistics is the caller's ``include`` choice (the pipeline's ``void_in_group_stats``).
    """
    return np.where(batch.void_traj[batch.traj], 0.0, 1.0)


def group_filter(
    batch: TurnBatch,
    *,
    zero_variance: bool = True,
    std_threshold: float = 1e-3,
    accuracy: Sequence[float] | None = None,
    min_valid: int | None = None,
    include: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-group keep flags (SimpleTIR / DAPO-style dynamic sampling filters).

    ``zero_variance`` drops groups whose outcome population std is below ``std_threshold`` (all
    right or all wrong: no learning signal; a lone rollout counts as zero variance).
    ``accuracy=(low, high)`` keeps groups whose mean outcome lies in [low, high] (for binary
    outcomes the accuracy). ``min_valid`` drops groups with fewer trajectories still trainable
    (``valid``, per trajectory). Statistics use the trajectories in ``include``.
    """
    inc = _include(batch, include)
    mean, sd, count = segment_mean_std(batch.outcome, batch.traj_group, batch.n_groups, mask=inc,
                                       norm=Norm(ddof=0, var_eps=0.0))
    sd = np.where(count > 1, sd, 0.0)
    keep = count > 0
    if zero_variance:
        keep &= sd >= std_threshold
    if accuracy is not None:
        low, high = accuracy
        keep &= (mean >= low) & (mean <= high)
    if min_valid is not None:
        ok = inc if valid is None else inc & np.asarray(valid, dtype=bool)
        keep &= np.bincount(batch.traj_group, weights=ok, minlength=batch.n_groups) >= min_valid
    return keep


def invalid_action_penalty(batch: TurnBatch, penalty: float = 0.1) -> TurnBatch:
    """verl-agent's invalid-action penalty (``invalid_action_penalty_coef``, 0.1 in its scripts).

    verl-agent subtracts the penalty on the invalid step's own row only: that row's episode
    score becomes ``R − c`` and its step return ``G_t − c``; nothing is discounted back to
    earlier steps and the other rows of the trajectory keep ``R``. Recorded as the batch's
    per-row ``score_penalty``; :func:`gigpo` (exactly verl-agent with ``episode_stats="step"``)
    and :func:`grpo` apply it, the other estimators refuse it. Example (mean-norm, γ = 0.95,
    step statistics, T1's last step invalid, reward 1 at T1's end, T2 reward 0): T1 = (1.000,
    0.425), T2 = (−0.950, −0.475).
    """
    pen = np.where(batch.invalid, float(penalty), 0.0)
    if batch.score_penalty is not None:
        pen = pen + batch.score_penalty
    return batch.replace(score_penalty=pen)


def invalid_turn_penalty(batch: TurnBatch, penalty: float = 0.1) -> TurnBatch:
    """agentgym's own rule: subtract ``penalty`` from the *reward* of every turn the parser
    rejected, and from the trajectory's outcome once per such turn.

    Unlike :func:`invalid_action_penalty` this is a reward change: it is discounted back to
    earlier turns (GiGPO's step returns) and lowers every row's episode score, and it works with
    every estimator (it changes the outcome IGPO/A²TGPO/TEMPO normalise). Same example: T1 =
    (0.8775, 0.450), T2 = (−0.8775, −0.450).
    """
    pen = np.where(batch.invalid, float(penalty), 0.0)
    per_traj = np.bincount(batch.traj, weights=pen, minlength=batch.n_traj)
    return batch.replace(reward=batch.reward - pen, outcome=batch.outcome - per_traj)
