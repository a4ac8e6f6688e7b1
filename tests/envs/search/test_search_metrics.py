"""SQuAD-style normalisation, exact match and F1 (max over aliases)."""

from __future__ import annotations

import pytest

from agentgym.envs.search.metrics import exact_match, f1_score, normalize_answer, score


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  a   cat,  AN apple. ", "cat apple"),
        ("Theory of the Atom", "theory of atom"),  # "the" inside words stays: "Theory"
        ("O'Brien-Smith!", "obriensmith"),
        ("\tVel\nDara\t", "vel dara"),
        ("", ""),
        ("the a an", ""),
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_aliases() -> None:
    golds = ["Tavi Melkor", "Melkor"]
    assert exact_match("tavi melkor.", golds) == 1.0
    assert exact_match("The Melkor", golds) == 1.0
    assert exact_match("Tavi", golds) == 0.0
    assert exact_match("Tavi Melkor Jr", golds) == 0.0
    assert exact_match("anything", []) == 0.0


def test_f1() -> None:
    assert f1_score("Tavi Melkor", ["Tavi Melkor"]) == 1.0
    assert f1_score("Tavi", ["Tavi Melkor"]) == pytest.approx(2 / 3)
    assert f1_score("Melkor", ["Tavi Melkor", "Melkor"]) == 1.0  # max over aliases
    assert f1_score("x y", ["z"]) == 0.0
    assert f1_score("the", ["a"]) == 1.0  # both normalise to empty
    assert f1_score("", ["Melkor"]) == 0.0
    assert f1_score("x b b", ["b b c"]) == pytest.approx(2 / 3)  # token counts, not sets


def test_a_bare_string_gold_is_one_alias() -> None:
    """Not iterated by character (then "Paris" would match only "p", "a", ...)."""
    assert exact_match("Paris", "Paris") == 1.0
    assert exact_match("p", "Paris") == 0.0
    assert f1_score("Paris France", "Paris") == pytest.approx(2 / 3)
    assert score("the Paris", "Paris", "em") == 1.0


def test_score_dispatch() -> None:
    assert score("Melkor", ["Tavi Melkor"], "em") == 0.0
    assert score("Melkor", ["Tavi Melkor"], "f1") == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        score("x", ["x"], "bleu")
