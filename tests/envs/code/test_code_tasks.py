"""PythonTIR's task sources (built-in templates, exact numeric match) and the lazy sandbox's recycling."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest

from agentgym.core import TextEnv
from agentgym.envs.code.tasks import (
    BUILTIN_TEMPLATES,
    ReasoningGymSource,
    builtin_task,
    numeric_match,
    parse_number,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", Fraction(42)), (" -3.5 ", Fraction(-7, 2)), ("1,234", Fraction(1234)), ("5/36", Fraction(5, 36)),
        ("\\frac{5}{36}", Fraction(5, 36)), ("$\\dfrac{5}{36}$", Fraction(5, 36)), ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("\\text{12}", Fraction(12)), ("1e3", Fraction(1000)), ("1\\,000", Fraction(1000)),
        ("", None), ("x", None), ("1/0", None), ("2 or 3", None), ("9" * 5000, None), ("\\frac{1}{}", None),
    ],
)
def test_parse_number(text: str, value: Fraction | None) -> None:
    assert parse_number(text) == value


def test_numeric_match_is_exact() -> None:
    assert numeric_match("0.5", "1/2") == 1.0 and numeric_match("2.0", "2") == 1.0
    assert numeric_match("0.333333", "1/3") == 0.0 and numeric_match("3", "2") == 0.0


def test_builtin_tasks_are_seeded_and_varied() -> None:
    first = [builtin_task(i) for i in range(2 * len(BUILTIN_TEMPLATES))]
    assert first == [builtin_task(i) for i in range(2 * len(BUILTIN_TEMPLATES))]
    assert len({t.question for t in first}) == len(first) and all(t.source == "builtin" for t in first)
    assert builtin_task(5, seed=1) != builtin_task(5, seed=0)
    assert {t.id for t in first[:3]} == {"builtin/0", "builtin/1", "builtin/2"}


def test_reasoning_gym_tasks_use_the_generators_scorer() -> None:
    source = ReasoningGymSource(["gcd", "knights_knaves"], size=50, seed=0)
    task = source.task("gcd", 3)
    assert task.id == "rg/gcd/3" and task == source.task("gcd", 3) and task.entry is not None
    assert source.score(task, task.answer) == 1.0 and source.score(task, "not a number") == 0.0
    logic = source.task("knights_knaves", 0)
    assert source.score(logic, logic.answer) == 1.0


def test_a_used_sandbox_is_recycled_between_episodes(make_env: Callable[..., TextEnv], backend: str) -> None:
    env = make_env("agentgym/PythonTIR-v0", source="builtin", backend=backend)
    env.reset(seed=0)
    env.step("```python\nimport os\nos.makedirs('locked')\nopen('locked/f', 'w').close()\n"
             "os.chmod('locked', 0o500)\nsecret = 1\n```")
    env.reset(seed=0)  # cleaned, or (if the files resist) replaced by a fresh sandbox
    obs = env.step("```python\nimport os\nprint(os.listdir('.'), 'secret' in globals())\n```")[0]
    assert obs == "\nCode execution result: [] False\n"
