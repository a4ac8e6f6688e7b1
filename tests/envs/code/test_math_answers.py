"""Math answers: math-verify grades equivalent forms as equal (a table of 61 pairs written for agentgym),
the exact-match fallback warns, and PythonTIR-v0 runs a dataset of your own."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

from agentgym.core import TextEnv
from agentgym.envs.code.tasks import load_math_dataset, math_match

MakeEnv = Callable[..., TextEnv]

PAIRS = [
    # numbers: fractions, decimals, integers
    (r"0.5", r"\frac{1}{2}", True),
    (r"1/2", r"\frac{1}{2}", True),
    (r"\dfrac{1}{2}", r"0.5", True),
    (r"\tfrac12", r"1/2", True),
    (r"2/4", r"\frac{1}{2}", True),
    (r"0.25", r"\frac{1}{4}", True),
    (r"-\frac{3}{4}", r"-0.75", True),
    (r"\frac{-3}{4}", r"-\frac{3}{4}", True),
    (r"42", r"42.0", True),
    (r"1,000", r"1000", True),
    (r"3", r"\frac{6}{2}", True),
    (r"0.333", r"\frac{1}{3}", False),
    (r"0.5", r"\frac{1}{3}", False),
    (r"-2", r"2", False),
    (r"41", r"42", False),
    (r"12", r"21", False),
    # radicals, pi, powers
    (r"\sqrt{8}", r"2\sqrt{2}", True),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    (r"2^{10}", r"1024", True),
    (r"\pi", r"\pi", True),
    (r"2\pi", r"\pi \cdot 2", True),
    (r"\sqrt{3}", r"\sqrt{2}", False),
    (r"3\pi", r"\pi", False),
    (r"\sqrt{2}", r"2", False),
    # percent, units, text, degrees
    (r"5 \text{ cm}", r"5", True),
    (r"10\text{ meters}", r"10", True),
    (r"\text{12}", r"12", True),
    (r"30^\circ", r"30", True),
    (r"\$5", r"5", True),
    (r"6 \text{ cm}", r"5", False),
    # expressions
    (r"x+1", r"1+x", True),
    (r"2x+2", r"2(x+1)", True),
    (r"(x+1)^2", r"x^2+2x+1", True),
    (r"\frac{x}{2}", r"0.5x", True),
    (r"x^2-1", r"(x-1)(x+1)", True),
    (r"x+1", r"x-1", False),
    (r"x^2", r"2x", False),
    (r"\frac{1}{x}", r"x", False),
    # equations and assignments
    (r"x = 3", r"3", True),
    (r"y = 2x + 1", r"2x+1", True),
    (r"x = 4", r"3", False),
    # intervals
    (r"[1, 2)", r"[1,2)", True),
    (r"(0, \infty)", r"(0,\infty)", True),
    (r"(-\infty, 3]", r"(-\infty,3]", True),
    (r"[1, 2]", r"[1, 2)", False),
    (r"(0, 1)", r"[0, 1]", False),
    # sets and tuples
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    (r"\{1, 2\}", r"\{1, 2, 3\}", False),
    (r"(1, 2)", r"(1,2)", True),
    (r"(2, 1)", r"(1, 2)", False),
    (r"1, 2, 3", r"3, 2, 1", True),
    # matrices, complex numbers
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True),
    (r"3+4i", r"4i+3", True),
    (r"3-4i", r"3+4i", False),
    # scientific notation, negative zero, infinity
    (r"1.5 \times 10^{3}", r"1500", True),
    (r"-0", r"0", True),
    (r"\infty", r"\infty", True),
    (r"\infty", r"-\infty", False),
    # junk
    (r"", r"5", False),
    (r"I don't know", r"5", False),
    (r"\frac{1}{0}", r"5", False),
]


@pytest.mark.parametrize(("answer", "gold", "same"), PAIRS)
def test_math_verify_decides_every_pair(answer: str, gold: str, same: bool) -> None:
    assert math_match(answer, gold) == float(same)


def test_the_table_is_big_and_balanced() -> None:
    assert len(PAIRS) >= 50 and 20 <= sum(same for _, _, same in PAIRS) <= len(PAIRS) - 20


def test_grading_works_off_the_main_thread() -> None:
    """math-verify's own time limit needs the main thread; elsewhere it runs without one."""
    results: list[float] = []
    worker = threading.Thread(target=lambda: results.extend(math_match(a, g) for a, g, _ in PAIRS[:8]))
    worker.start()
    worker.join()
    assert results == [1.0] * 8


def test_huge_answers_are_wrong_unparsed() -> None:
    assert math_match("9^{9^{9^{9}}}" + " " * 1000, "1") == 0.0


def test_without_math_verify_exact_match_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "math_verify", None)  # as if not installed
    with pytest.warns(UserWarning, match=r"agentgym-rl\[math\]"):
        assert math_match(r"\frac{1}{2}", "0.5") == 1.0  # numbers still compare as numbers
    with pytest.warns(UserWarning):
        assert math_match(r"$x + 1$", "x+1") == 1.0 and math_match("1+x", "x+1") == 0.0  # text only
        assert math_match(r"\left(1,2\right)", "(1, 2)") == 1.0 and math_match("41", "42") == 0.0


RECORDS = [
    {"problem": "What is 1/2 + 1/4? Give a fraction.", "solution": r"It is $\frac{2}{4} + \frac{1}{4} = \boxed{\frac{3}{4}}$."},
    {"question": "Solve x + 2 = 5.", "answer": "3", "id": "linear"},
    {"problem": "Which interval holds every x with 0 <= x < 1?", "answer": r"\boxed{[0, 1)}"},
]


def test_load_math_dataset_fields() -> None:
    tasks = load_math_dataset(RECORDS)
    assert [(t.id, t.answer) for t in tasks] == [("data/0", r"\frac{3}{4}"), ("data/linear", "3"), ("data/2", "[0, 1)")]
    assert tasks[0].question.startswith("What is 1/2") and tasks[0].source == "data"
    with pytest.raises(ValueError, match="record 0 needs"):
        load_math_dataset([{"problem": "no answer", "solution": "none boxed"}])
    with pytest.raises(ValueError, match="no problems"):
        load_math_dataset([])


def test_python_tir_grades_your_dataset_with_math_verify(make_env: MakeEnv) -> None:
    env = make_env("agentgym/PythonTIR-v0", dataset=RECORDS, backend="local")
    obs, info = env.reset(options={"task": 0})
    assert obs.startswith("What is 1/2") and info["gold_answer"] == r"\frac{3}{4}" and info["task_id"] == "data/0"
    assert env.step(r"The sum is \boxed{0.75}")[1] == 1.0
    env.reset(options={"task": 2})
    assert env.step(r"\boxed{[0, 1]}")[1] == 0.0
    env.reset(options={"task": "data/1"})
    _, reward, terminated, _, info = env.step(env.expert_action())  # runs the printing code
    assert not terminated and info["exit_code"] == 0
    _, reward, terminated, _, _ = env.step(env.expert_action())
    assert (reward, terminated) == (1.0, True)
    with pytest.raises(ValueError, match="dataset= replaces"):
        make_env("agentgym/PythonTIR-v0", dataset=RECORDS, source="builtin")
