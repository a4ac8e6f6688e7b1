"""``TurnBatch``: the flat, columnar input of every credit estimator (one row per turn).

A turn is identified by the explicit pair (trajectory, turn index) and nothing else: never by
reward or advantage values (the released IGPO/A²TGPO code merges turns that way:
docs/credit.md#igpo-accumulation and #a2tgpo). Rows are kept in canonical order (trajectory by
trajectory, turns ascending); builders sort once and record the permutation so results can be
mapped back to the caller's row order.

Per-trajectory columns are indexed by trajectory code (``traj_group``, ``outcome``, ``infra``,
``gold_logp0``). Trajectories with ``failure == "infra"`` stay in the batch (so outputs align with
the input) but are flagged in ``infra``: every estimator leaves them out of its statistics and the
pipeline gives them advantage 0 and loss mask 0 (an infra error is not a reward of 0).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from agentgym.trajectory import canonical_key

__all__ = ["TurnBatch"]

_MISSING = -1  # state code of a turn without a state_key: it matches no other turn


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _key_codes(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, labels) of anchor keys compared by content (:func:`agentgym.trajectory.canonical_key`).

    The one place keys become codes, for every builder and so every estimator. A 1-D numpy array of
    a plain dtype (ints, strings, …) is already exact and of one type, so it is coded as is; any
    other sequence is canonicalised element by element (an ndarray element is one key, whatever its
    shape). ``None`` gets code ``_MISSING`` (−1: matches no other turn). ``labels[code]`` is the
    canonical key: the text itself for ``str`` keys.
    """
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 1:
        labels, inv = np.unique(values, return_inverse=True)
        return inv.reshape(-1).astype(np.int64), labels
    keys = [canonical_key(k) for k in values]
    codes = np.full(len(keys), _MISSING, dtype=np.int64)
    present = [k for k in keys if k is not None]
    labels = np.asarray(sorted(set(present)), dtype=object)
    if present:
        lookup = {k: c for c, k in enumerate(labels)}
        codes = np.array([_MISSING if k is None else lookup[k] for k in keys], dtype=np.int64)
    return codes, labels


def _codes(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, labels) with ``labels[codes] == values``; labels sorted, so codes do not depend on row order."""
    arr = np.asarray(values)
    if arr.dtype == object:
        labels, inv = np.unique(arr.astype(str), return_inverse=True)
        return inv.reshape(-1).astype(np.int64), labels
    labels, inv = np.unique(arr, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), labels


@dataclass(eq=False)
class TurnBatch:
    """One row per turn, rows in canonical (trajectory, turn) order.

    Row columns: ``traj`` (trajectory code), ``turn_idx`` (explicit turn index), ``reward`` (env
    reward of the turn), ``state`` (anchor code, −1 = no state key), ``void``, ``invalid``
    (the parser reported an error), ``gold_logp`` (ℓ after the turn; NaN where unknown),
    ``branch`` (code of the turn's canonical (action, next observation), for prefix trees),
    ``score_penalty`` (subtracted from this row's own episode score and step return only:
    verl-agent's invalid-action penalty, see :func:`~agentgym.credit.invalid_action_penalty`),
    ``turn_score`` (a per-turn score from outside the env, e.g. a judge's: MAPO's input; NaN
    where unknown), ``ref_logp`` (like ``gold_logp`` but for the trajectory's SIOP reference
    answer). Trajectory columns: ``traj_group`` (group code), ``outcome`` (episode return),
    ``infra``, ``gold_logp0`` (ℓ_0, prompt only), ``ref_logp0``, ``answers`` (the final answer
    text, None when the trajectory gave none: SIOP's input). Labels: ``traj_ids``, ``group_ids``, ``state_keys``
    (``state_keys[code]`` is the original key, used by the similarity mode).
    ``row_order[i]`` is the canonical row of the caller's i-th input row (identity for batches
    built from trajectories).
    """

    traj: np.ndarray
    turn_idx: np.ndarray
    reward: np.ndarray
    state: np.ndarray
    void: np.ndarray
    invalid: np.ndarray
    traj_group: np.ndarray
    outcome: np.ndarray
    infra: np.ndarray
    gold_logp: np.ndarray | None = None
    gold_logp0: np.ndarray | None = None
    traj_ids: np.ndarray | None = None
    group_ids: np.ndarray | None = None
    state_keys: np.ndarray | None = None
    row_order: np.ndarray | None = None
    branch: np.ndarray | None = None
    score_penalty: np.ndarray | None = None
    turn_score: np.ndarray | None = None
    ref_logp: np.ndarray | None = None
    ref_logp0: np.ndarray | None = None
    answers: np.ndarray | None = None
    trajectories: Sequence[Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.traj)
        self.traj = np.asarray(self.traj, dtype=np.int64)
        self.turn_idx = np.asarray(self.turn_idx, dtype=np.int64)
        self.reward = np.asarray(self.reward, dtype=np.float64)
        self.state = np.asarray(self.state, dtype=np.int64)
        self.void = np.asarray(self.void, dtype=bool)
        self.invalid = np.asarray(self.invalid, dtype=bool)
        self.traj_group = np.asarray(self.traj_group, dtype=np.int64)
        self.outcome = np.asarray(self.outcome, dtype=np.float64)
        self.infra = np.asarray(self.infra, dtype=bool)
        for name in ("turn_idx", "reward", "state", "void", "invalid"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TurnBatch.{name} has {len(getattr(self, name))} rows, expected {n}")
        nt = len(self.traj_group)
        for name in ("outcome", "infra"):
            if len(getattr(self, name)) != nt:
                raise ValueError(f"TurnBatch.{name} has {len(getattr(self, name))} entries, expected {nt}")
        if self.branch is not None:
            self.branch = np.asarray(self.branch, dtype=np.int64)
            if len(self.branch) != n:
                raise ValueError("TurnBatch.branch must have one code per row")
        if self.score_penalty is not None:
            self.score_penalty = np.asarray(self.score_penalty, dtype=np.float64)
            if len(self.score_penalty) != n:
                raise ValueError("TurnBatch.score_penalty must have one value per row")
        if self.gold_logp is not None:
            self.gold_logp = np.asarray(self.gold_logp, dtype=np.float64)
            if len(self.gold_logp) != n:
                raise ValueError("TurnBatch.gold_logp must have one value per row")
            if self.gold_logp0 is None or len(self.gold_logp0) != nt:
                raise ValueError("TurnBatch.gold_logp needs gold_logp0 (ℓ_0) for every trajectory")
            self.gold_logp0 = np.asarray(self.gold_logp0, dtype=np.float64)
        if self.turn_score is not None:
            self.turn_score = np.asarray(self.turn_score, dtype=np.float64)
            if len(self.turn_score) != n:
                raise ValueError("TurnBatch.turn_score must have one value per row")
        if self.ref_logp is not None:
            self.ref_logp = np.asarray(self.ref_logp, dtype=np.float64)
            if len(self.ref_logp) != n:
                raise ValueError("TurnBatch.ref_logp must have one value per row")
            if self.ref_logp0 is None or len(self.ref_logp0) != nt:
                raise ValueError("TurnBatch.ref_logp needs ref_logp0 (prompt-only value) for every trajectory")
            self.ref_logp0 = np.asarray(self.ref_logp0, dtype=np.float64)
        if self.answers is not None:
            self.answers = np.asarray(list(self.answers), dtype=object)
            if len(self.answers) != nt:
                raise ValueError(f"TurnBatch.answers has {len(self.answers)} entries, expected {nt}")
        if n:
            if self.traj.min() < 0 or self.traj.max() >= nt:
                raise ValueError("TurnBatch.traj codes must lie in [0, number of trajectories)")
            d_traj = np.diff(self.traj)
            if (d_traj < 0).any() or ((d_traj == 0) & (np.diff(self.turn_idx) <= 0)).any():
                raise ValueError(
                    "TurnBatch rows must be in (trajectory, turn) order with unique turn indices; "
                    "use TurnBatch.from_arrays to sort arbitrary rows"
                )

    # -- builders -----------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        group_id: Any,
        traj_id: Any,
        turn_idx: Any,
        reward: Any,
        state_key: Any = None,
        void: Any = None,
        invalid: Any = None,
        outcome: Any = None,
        infra: Any = None,
        gold_logp: Any = None,
        gold_logp0: Any = None,
        branch_key: Any = None,
        turn_score: Any = None,
        answer: Any = None,
        ref_logp: Any = None,
        ref_logp0: Any = None,
    ) -> TurnBatch:
        """Build from flat per-row arrays in any row order.

        Ids may be any sortable labels (ints or strings). Per-trajectory values (``outcome``,
        ``infra``, ``gold_logp0``, ``answer``, ``ref_logp0``) are given per row, repeated on every
        row of the trajectory.
        ``outcome`` defaults to the sum of the trajectory's rewards. ``state_key`` entries that
        are None never match another turn. Results of estimators are in canonical order; use
        ``batch.to_input_order(x)`` to get them back in the caller's order.
        """
        traj_code, traj_labels = _codes(traj_id)
        turn = np.asarray(turn_idx, dtype=np.int64)
        n = len(turn)
        order = np.lexsort((turn, traj_code))
        if (np.diff(order) == 1).all():
            order = np.arange(n)
        row_order = np.empty(n, dtype=np.int64)
        row_order[order] = np.arange(n)

        def rows(x: Any, dtype: Any, default: Any) -> np.ndarray:
            return np.full(n, default, dtype=dtype) if x is None else np.asarray(x, dtype=dtype)[order]

        traj = traj_code[order]
        nt = len(traj_labels)
        first = np.searchsorted(traj, np.arange(nt))  # first canonical row of each trajectory
        group_code, group_labels = _codes(np.asarray(group_id)[order])
        traj_group = group_code[first]
        if (traj_group[traj] != group_code).any():
            raise ValueError("a trajectory's rows carry different group ids")
        rew = rows(reward, np.float64, 0.0)
        if outcome is None:
            out = np.bincount(traj, weights=rew, minlength=nt)
        else:
            out_rows = rows(outcome, np.float64, 0.0)
            out = out_rows[first]
            if not np.array_equal(out[traj], out_rows, equal_nan=True):
                raise ValueError("outcome must be constant over the rows of a trajectory")
        if state_key is None:
            state, keys = np.full(n, _MISSING, dtype=np.int64), None
        else:
            state, keys = _key_codes(_reorder(state_key, order))
        g0 = None
        glp = None
        if gold_logp is not None:
            glp = rows(gold_logp, np.float64, np.nan)
            if gold_logp0 is None:
                raise ValueError("gold_logp needs gold_logp0 (ℓ_0 per trajectory, repeated per row)")
            g0 = rows(gold_logp0, np.float64, np.nan)[first]
        rlp = r0 = None
        if ref_logp is not None:
            if ref_logp0 is None:
                raise ValueError("ref_logp needs ref_logp0 (prompt-only value per trajectory, repeated per row)")
            rlp, r0 = rows(ref_logp, np.float64, np.nan), rows(ref_logp0, np.float64, np.nan)[first]
        answers = None
        if answer is not None:
            ans_rows = _reorder(answer, order)
            answers = np.asarray([ans_rows[int(f)] for f in first], dtype=object)
            if any(ans_rows[r] != answers[traj[r]] for r in range(n)):
                raise ValueError("answer must be the same on every row of a trajectory")
        return cls(
            traj=traj,
            turn_idx=turn[order],
            reward=rew,
            state=state,
            void=rows(void, bool, False),
            invalid=rows(invalid, bool, False),
            traj_group=traj_group,
            outcome=out,
            infra=rows(infra, bool, False)[first] if infra is not None else np.zeros(nt, dtype=bool),
            gold_logp=glp,
            gold_logp0=g0,
            traj_ids=traj_labels,
            group_ids=group_labels,
            state_keys=keys,
            row_order=row_order,
            branch=None if branch_key is None else _branch_codes(_key_codes(_reorder(branch_key, order))[0]),
            turn_score=None if turn_score is None else rows(turn_score, np.float64, np.nan),
            ref_logp=rlp,
            ref_logp0=r0,
            answers=answers,
        )

    @classmethod
    def from_trajectories(
        cls, trajectories: Sequence[Any], *, gold_logp: Sequence[Sequence[float]] | None = None
    ) -> TurnBatch:
        """Build from trajectory dicts (the JSONL schema) or ``agentgym.Trajectory`` objects.

        Trajectory code i is the i-th input trajectory (``batch.traj_index``); turns keep their
        list order (``batch.turn_index``). ``failure == "infra"`` sets ``infra``: the trajectory is
        left out of statistics and masked, never scored as reward 0. ``gold_logp[i]`` lists
        ℓ_0 … ℓ_{T−1} (what a scorer returns: the prompt before each turn's action), optionally
        followed by ℓ_T.
        """
        traj, turn, reward, state_raw, void, invalid, branch_raw = [], [], [], [], [], [], []
        group_raw, outcome, infra, traj_ids, answers = [], [], [], [], []
        for i, t in enumerate(trajectories):
            turns = _get(t, "turns", []) or []
            traj_ids.append(str(_get(t, "traj_id", i)))
            group_raw.append(str(_get(t, "group_id")))
            outcome.append(float(_get(t, "outcome", 0.0) or 0.0))
            infra.append(_get(t, "failure") == "infra")
            answers.append(_final_answer(t, turns))
            for k, u in enumerate(turns):
                traj.append(i)
                turn.append(k)
                reward.append(float(_get(u, "reward", 0.0) or 0.0))
                state_raw.append(_get(u, "state_key"))
                void.append(bool(_get(u, "void", False)))
                invalid.append(_get(u, "parse_error") is not None)
                nxt = turns[k + 1] if k + 1 < len(turns) else None
                next_obs = _get(nxt, "observation", "") if nxt is not None else _get(t, "final_observation", "")
                branch_raw.append(f"{_get(u, 'action', '')}\x00{next_obs}")
        n = len(traj)
        state, keys = _key_codes(state_raw)
        group_code, group_labels = _codes(np.asarray(group_raw, dtype=object)) if group_raw else (
            np.zeros(0, dtype=np.int64), np.asarray([], dtype=object))
        batch = cls(
            traj=np.asarray(traj, dtype=np.int64),
            turn_idx=np.asarray(turn, dtype=np.int64),
            reward=np.asarray(reward, dtype=np.float64),
            state=state,
            void=np.asarray(void, dtype=bool),
            invalid=np.asarray(invalid, dtype=bool),
            traj_group=group_code,
            outcome=np.asarray(outcome, dtype=np.float64),
            infra=np.asarray(infra, dtype=bool),
            traj_ids=np.asarray(traj_ids, dtype=object),
            group_ids=group_labels,
            state_keys=keys,
            row_order=None,
            branch=_codes(np.asarray(branch_raw, dtype=object))[0] if n else np.zeros(0, dtype=np.int64),
            answers=np.asarray(answers, dtype=object),
            trajectories=trajectories,
        )
        return batch if gold_logp is None else batch.with_gold_logp(gold_logp)

    def with_gold_logp(self, gold_logp: Sequence[Sequence[float]]) -> TurnBatch:
        """A copy with gold log-probs from per-trajectory lists ℓ_0 … ℓ_{T−1} (optionally ℓ_T).

        ℓ_0 goes to ``gold_logp0``; ℓ_{t+1} to the row of turn t. Without ℓ_T the outcome turn
        holds NaN (it needs none).
        """
        glp, g0 = self._logp_rows(gold_logp, "gold log-probs")
        new = self.replace(gold_logp=glp, gold_logp0=g0)
        new.__post_init__()
        return new

    def with_ref_logp(self, ref_logp: Sequence[Sequence[float]]) -> TurnBatch:
        """A copy with SIOP reference-answer log-probs, laid out as in :meth:`with_gold_logp`.

        SIOP also scores the context after the final turn, so give T + 1 values per trajectory
        (with T the final turn's row holds NaN and its information-gain term is 0).
        """
        rlp, r0 = self._logp_rows(ref_logp, "reference log-probs")
        new = self.replace(ref_logp=rlp, ref_logp0=r0)
        new.__post_init__()
        return new

    def with_turn_scores(self, scores: Sequence[Sequence[float]]) -> TurnBatch:
        """A copy with per-turn scores (one list of T values per trajectory) in ``turn_score``."""
        if len(scores) != self.n_traj:
            raise ValueError(f"turn scores: {len(scores)} lists for {self.n_traj} trajectories")
        out = np.full(self.n_rows, np.nan)
        for i, (start, T, row) in enumerate(zip(self.starts.tolist(), self.lengths.tolist(), scores, strict=True)):
            if len(row) != T:
                raise ValueError(f"trajectory {self._label(self.traj_ids, i)!r}: {len(row)} turn scores for {T} turns")
            out[start : start + T] = np.asarray(row, dtype=np.float64)
        return self.replace(turn_score=out)

    def _logp_rows(self, lists: Sequence[Sequence[float]], what: str) -> tuple[np.ndarray, np.ndarray]:
        if len(lists) != self.n_traj:
            raise ValueError(f"{what}: {len(lists)} lists for {self.n_traj} trajectories")
        rows = np.full(self.n_rows, np.nan)
        first = np.full(self.n_traj, np.nan)
        for i, (start, T, ells) in enumerate(zip(self.starts.tolist(), self.lengths.tolist(), lists, strict=True)):
            if len(ells) not in (T, T + 1) and not (T == 0 and len(ells) <= 1):
                raise ValueError(f"trajectory {i}: {len(ells)} {what} for {T} turns (need T or T+1)")
            if len(ells):
                first[i] = ells[0]
                rows[start : start + len(ells) - 1] = ells[1:]
        return rows, first

    # -- shape ------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return len(self.traj)

    @property
    def n_traj(self) -> int:
        return len(self.traj_group)

    @cached_property
    def n_groups(self) -> int:
        return int(self.traj_group.max()) + 1 if self.n_traj else 0

    @property
    def traj_index(self) -> np.ndarray:
        """Row → trajectory position in the input list (alias of ``traj``)."""
        return self.traj

    @cached_property
    def turn_index(self) -> np.ndarray:
        """Row → position of the turn within its trajectory (0 … T−1)."""
        return np.arange(self.n_rows) - self.starts[self.traj]

    @cached_property
    def group(self) -> np.ndarray:
        """Row → group code."""
        return self.traj_group[self.traj]

    @cached_property
    def lengths(self) -> np.ndarray:
        """Turns per trajectory."""
        return np.bincount(self.traj, minlength=self.n_traj)

    @cached_property
    def ends(self) -> np.ndarray:
        """One past the last row of each trajectory."""
        return np.cumsum(self.lengths)

    @cached_property
    def starts(self) -> np.ndarray:
        return self.ends - self.lengths

    @cached_property
    def is_last(self) -> np.ndarray:
        """Row is the final turn of its trajectory (the outcome / answer turn)."""
        last = np.zeros(self.n_rows, dtype=bool)
        last[self.ends[self.lengths > 0] - 1] = True
        return last

    @cached_property
    def void_traj(self) -> np.ndarray:
        """Trajectory has at least one void turn."""
        return np.bincount(self.traj, weights=self.void, minlength=self.n_traj) > 0

    # -- validation -------------------------------------------------------------------------
    def nonfinite_traj(self) -> np.ndarray:
        """Per trajectory: a reward of one of its turns, or its outcome, is NaN or ±inf."""
        bad_rows = ~np.isfinite(self.reward)
        bad = ~np.isfinite(self.outcome)
        if bad_rows.any():
            bad = bad | (np.bincount(self.traj, weights=bad_rows, minlength=self.n_traj) > 0)
        return bad

    def check_finite(self, include: np.ndarray | None = None) -> None:
        """Raise ``ValueError`` naming the trajectory (and turn) of the first non-finite reward or
        outcome among the trajectories in ``include`` (default: all but infra failures).

        One NaN reward would make every advantage of its group NaN, and an inf one ``[nan, nan,
        −inf, −inf]``; such a value is a bug upstream (a reward function, a parser), never a score.
        """
        inc = ~self.infra if include is None else np.asarray(include, dtype=bool)
        bad = self.nonfinite_traj() & inc
        if not bad.any():
            return
        j = int(np.flatnonzero(bad)[0])
        rows = np.flatnonzero((self.traj == j) & ~np.isfinite(self.reward))
        where = f"trajectory {self._label(self.traj_ids, j)!r} (group {self._label(self.group_ids, int(self.traj_group[j]))!r})"
        if rows.size:
            r = int(rows[0])
            what = f"turn {int(self.turn_idx[r])} has reward {self.reward[r]}"
        else:
            what = f"has outcome {self.outcome[j]}"
        raise ValueError(f"non-finite credit input: {where} {what} ({int(bad.sum())} trajectories affected); "
                         "fix the reward, or set on_nonfinite='mask_group' to drop such groups")

    @staticmethod
    def _label(labels: np.ndarray | None, code: int) -> Any:
        return code if labels is None else str(labels[code])

    # -- helpers ----------------------------------------------------------------------------
    def suffix_sum(self, values: np.ndarray, gamma: float) -> np.ndarray:
        """Per-trajectory ``Σ_{k≥t} γ^{k−t} v_k`` of a row array."""
        from .segments import discounted_suffix_sum

        return discounted_suffix_sum(values, self.ends, self.lengths, gamma)

    def replace(self, **changes: Any) -> TurnBatch:
        """A shallow copy with some columns replaced; structure (rows, codes) must not change."""
        new = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise AttributeError(key)
            setattr(new, key, value)
        return new

    def to_input_order(self, values: np.ndarray) -> np.ndarray:
        """Map a canonical-order row array back to the row order given to ``from_arrays``."""
        return values if self.row_order is None else np.asarray(values)[self.row_order]

    def per_trajectory(self, values: np.ndarray) -> list[list[float]]:
        """Split a row array into ``[trajectory][turn]`` lists (input trajectory order)."""
        vals = np.asarray(values, dtype=np.float64)
        return [vals[s:e].tolist() for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]


def _final_answer(traj: Any, turns: Sequence[Any]) -> str | None:
    """The trajectory's final answer: the last turn's parsed ``answer``, else ``info["answer"]``."""
    ans = _get(turns[-1], "answer") if turns else None
    if ans is None:
        ans = (_get(traj, "info", {}) or {}).get("answer")
    return None if ans is None else str(ans)


def _reorder(values: Any, order: np.ndarray) -> Any:
    """``values`` (an array, or any sequence of keys, e.g. a list of ndarrays) in row ``order``."""
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 1:
        return values[order]
    items = list(values)
    if len(items) != len(order):
        raise ValueError(f"got {len(items)} keys for {len(order)} rows")
    return [items[i] for i in order]


def _branch_codes(codes: np.ndarray) -> np.ndarray:
    """Branch codes with a missing (None) key made a branch of its own per row, never shared."""
    missing = codes == _MISSING
    if missing.any():
        codes = codes.copy()
        codes[missing] = codes.max() + 1 + np.arange(int(missing.sum()))
    return codes
