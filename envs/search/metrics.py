"""SQuAD-style answer scoring: exact match and token F1, max over gold aliases.

Normalisation (as in the SQuAD script and Search-R1's ``qa_em.py``): lowercase, drop
punctuation, drop the articles a/an/the, collapse whitespace.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

__all__ = ["exact_match", "f1_score", "normalize_answer", "score"]

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation and articles, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def _aliases(golds: str | Iterable[str]) -> Iterable[str]:
    """A bare string is one alias (iterating it would give its characters), as in qa_em.py."""
    return (golds,) if isinstance(golds, str) else golds


def exact_match(prediction: str, golds: str | Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold alias."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _aliases(golds)))


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: str | Iterable[str]) -> float:
    """Token-level F1 (bag of words with counts), the max over gold aliases."""
    return max((_f1(prediction, g) for g in _aliases(golds)), default=0.0)


def score(prediction: str, golds: str | Iterable[str], metric: str = "em") -> float:
    """``metric`` is ``"em"`` or ``"f1"``."""
    if metric == "em":
        return exact_match(prediction, golds)
    if metric == "f1":
        return f1_score(prediction, golds)
    raise ValueError(f"metric must be 'em' or 'f1', got {metric!r}")
