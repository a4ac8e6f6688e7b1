"""The gold-answer scorer interface for information-gain credit (docs/credit.md#gold-answer-probe).

The trainer owns the model, so it implements the scorer: teacher-forced, length-normalised mean
log-prob of the gold answer given a context, computed with the rollout policy and no gradient.
The credit library only asks for ``ℓ_{i,k}`` (k = 0: prompt only; k = t: everything up to the
observation before turn t's action) and turns them into IG rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "GoldAnswerScorer",
    "LookupScorer",
    "gold_answer",
    "gold_logprobs",
    "gold_token_range",
    "text_contexts",
]


@runtime_checkable
class GoldAnswerScorer(Protocol):
    """Mean log-prob of each gold answer given its context, one float per (context, gold) pair.

    A context is whatever the implementation understands (token ids for the trainer, text
    here). A scorer may also offer ``trajectory_gold_logprobs(trajectories) -> list[list[float]]``
    (ℓ_0 … ℓ_{T−1} per trajectory) when it builds contexts itself; :func:`gold_logprobs` then
    uses it, so token contexts are never rebuilt from text.
    """

    def score(self, contexts: Sequence[Any], golds: Sequence[str]) -> Sequence[float]: ...


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, Mapping) else getattr(obj, key, default)


def gold_answer(trajectory: Any, keys: Sequence[str] = ("gold_answers", "gold_answer", "gold")) -> str:
    """The gold answer in the trajectory's ``info``; the first alias of a list (as IGPO does)."""
    info = _get(trajectory, "info", {}) or {}
    for key in keys:
        value = info.get(key)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value:
            return str(value)
    raise KeyError(f"{_get(trajectory, 'traj_id')}: no gold answer in info (looked for {list(keys)})")


def text_contexts(trajectory: Any, sep: str = "\n") -> list[str]:
    """Text contexts k = 0 … T−1: observation 0, then each action and the next observation."""
    turns = _get(trajectory, "turns", []) or []
    out, parts = [], []
    for k, turn in enumerate(turns):
        if k:
            parts.append(str(_get(turns[k - 1], "action", "")))
        parts.append(str(_get(turn, "observation", "")))
        out.append(sep.join(parts))
    return out


def gold_logprobs(
    trajectories: Sequence[Any],
    scorer: GoldAnswerScorer,
    *,
    contexts: Callable[[Any], list[Any]] = text_contexts,
    gold: Callable[[Any], str] = gold_answer,
) -> list[list[float]]:
    """ℓ_0 … ℓ_{T−1} for every trajectory, in one batched ``scorer.score`` call.

    Infra failures and trajectories with no turns get no scoring (empty list / NaNs are fine
    downstream: they are out of the statistics anyway).
    """
    if hasattr(scorer, "trajectory_gold_logprobs"):
        return [list(map(float, row)) for row in scorer.trajectory_gold_logprobs(list(trajectories))]
    flat_ctx: list[Any] = []
    flat_gold: list[str] = []
    sizes = []
    for traj in trajectories:
        if _get(traj, "failure") == "infra" or not (_get(traj, "turns") or []):
            sizes.append(0)
            continue
        ctx = contexts(traj)
        flat_ctx += ctx
        flat_gold += [gold(traj)] * len(ctx)
        sizes.append(len(ctx))
    flat = [float(x) for x in scorer.score(flat_ctx, flat_gold)] if flat_ctx else []
    out, pos = [], 0
    for traj, n in zip(trajectories, sizes, strict=True):
        T = len(_get(traj, "turns", []) or [])
        out.append(flat[pos : pos + n] if n else [float("nan")] * T)
        pos += n
    return out


class LookupScorer:
    """A deterministic test scorer: ``table[(context, gold)]``, else ``default(context, gold)``.

    The default is a pure function of the text (a stable hash mapped to (−5, 0)), so the same
    context always scores the same: good enough to exercise the plumbing without a model.
    """

    def __init__(self, table: Mapping[tuple[str, str], float] | None = None,
                 default: Callable[[str, str], float] | None = None):
        self.table = dict(table or {})
        self.default = default or _hash_logprob
        self.calls = 0

    def score(self, contexts: Sequence[Any], golds: Sequence[str]) -> list[float]:
        self.calls += 1
        out = []
        for c, g in zip(contexts, golds, strict=True):
            key = (str(c), g)
            out.append(self.table[key] if key in self.table else self.default(*key))
        return out


def _hash_logprob(context: str, gold: str) -> float:
    import zlib

    return -5.0 * (zlib.crc32(f"{context}\x00{gold}".encode()) % 10_000 + 1) / 10_001


def gold_token_range(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Token range ``[lo, hi)`` of the gold answer at characters ``[start, end)`` of the
    pseudo-response, from a tokenizer's ``offset_mapping``.

    A token overlapping the gold span counts as gold (e.g. ``"\\nParis"`` merged into one token);
    tokens wholly inside the template's prefix or suffix do not (docs/credit.md#gold-answer-probe, #properties).
    """
    inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
    if not inside:
        raise ValueError("the gold answer has no tokens")
    return inside[0], inside[-1] + 1
