"""Issue 21, item 3: grading a final answer has a hard time bound in any thread.

sympy (through math-verify) ran 25–40 s on ``\\boxed{9^{9^{9^{9}}}}``, ``2^{2^{2^{2^{2^{2}}}}}`` and
``(10^{10})!`` in rollout worker threads, holding the GIL, so ``env.astep`` froze the whole event
loop and ``asyncio.wait_for`` never fired. Every check runs in a child process with a wall-clock
limit: on code without the bound the child hangs (GIL held, no thread in it could fail the test)
and the limit turns that into a failure instead of a hung test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from agentgym.envs.code.tasks import literal_digits, math_grade, parse_number

pytest.importorskip("math_verify")

ISSUE_ANSWERS = [r"9^{9^{9^{9}}}", r"2^{2^{2^{2^{2^{2}}}}}", r"(10^{10})!"]
# not a single literal tower, so the cheap pre-screen lets them through: only the process bound stops them
UNSCREENED = [r"9^{9^{9^{9}}} + 1", r"(10^{10})! - 1"]


def _child(code: str, limit: float) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter, at most ``limit`` s."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"grading did not finish within {limit:g} s: the process froze")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_issue_answers_graded_from_a_worker_thread_end_in_bounded_time() -> None:
    result = _child(f"""
        import json, threading, time
        from agentgym.envs.code.tasks import math_grade
        out = {{}}
        def grade():
            for answer in {ISSUE_ANSWERS + UNSCREENED!r}:
                start = time.monotonic()
                score, why = math_grade(answer, "42", timeout=2)
                out[answer] = [score, why, time.monotonic() - start]
        worker = threading.Thread(target=grade)
        worker.start()
        worker.join()
        print(json.dumps(out))
    """, limit=90)
    for answer in ISSUE_ANSWERS + UNSCREENED:
        score, why, seconds = result[answer]
        assert score == 0.0 and why, (answer, result[answer])
    for answer in ISSUE_ANSWERS:  # refused by the pre-screen without evaluating anything
        assert "not evaluated" in result[answer][1] and result[answer][2] < 0.5
    for answer in UNSCREENED:  # stopped by the worker's time limit, and it says so
        assert "longer than 2 s" in result[answer][1] and result[answer][2] < 10


def test_env_astep_under_asyncio_never_freezes_the_event_loop() -> None:
    """A dataset PythonTIR env answered with each issue answer through ``env.astep`` (a worker
    thread): the event loop keeps ticking, the step ends within ``asyncio.wait_for``'s bound,
    reward 0, ``failure="agent"`` (not infra) and ``info["grader_error"]`` says why."""
    result = _child(f"""
        import asyncio, json, time
        import agentgym
        async def main():
            env = agentgym.make("agentgym/PythonTIR-v0", dataset=[{{"problem": "6*7?", "answer": "42"}}],
                                grade_timeout=2).unwrapped
            ticks, stop, out = [], False, {{}}
            async def heartbeat():
                while not stop:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.05)
            beat = asyncio.create_task(heartbeat())
            for answer in {ISSUE_ANSWERS + UNSCREENED!r}:
                await env.areset(seed=0)
                _, reward, terminated, _, info = await asyncio.wait_for(env.astep(f"\\\\boxed{{{{{{answer}}}}}}"), 30)
                out[answer] = [reward, terminated, info["failure"], info["grader_error"], info["success"]]
            await env.areset(seed=0)
            out["right"] = list((await asyncio.wait_for(env.astep("\\\\boxed{{42}}"), 30))[1:3])
            stop = True
            await beat
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            out["max_gap"] = max(gaps)
            env.close()
            print(json.dumps(out))
        asyncio.run(main())
    """, limit=120)
    for answer in ISSUE_ANSWERS + UNSCREENED:
        reward, terminated, failure, why, success = result[answer]
        assert reward == 0.0 and terminated and failure == "agent" and why and success is False, (answer, result)
    assert result["right"] == [1.0, True]
    assert result["max_gap"] < 1.5, f"the event loop stalled for {result['max_gap']:.1f} s"


def test_builtin_tasks_refuse_huge_scientific_exponents_without_expanding_them() -> None:
    """``Fraction("1e10000000")`` expands a ten-million-digit integer (minutes, GIL held): the
    built-in tasks' exact numeric match must refuse it at once."""
    result = _child("""
        import json, time
        import agentgym
        env = agentgym.make("agentgym/PythonTIR-v0", source="builtin").unwrapped
        env.reset(seed=0)
        start = time.monotonic()
        reward = env.step("\\\\boxed{1e10000000}")[1]
        print(json.dumps([reward, time.monotonic() - start]))
    """, limit=60)
    assert result[0] == 0.0 and result[1] < 1
    assert parse_number("1e5") == 100000 and parse_number("2.5E-3") * 1000 == parse_number("2.5")


def test_literal_digits_estimates_towers_and_factorials_without_evaluating() -> None:
    assert literal_digits("2^{100}") == pytest.approx(30.1, abs=0.01)
    assert literal_digits("10!") == pytest.approx(6.56, abs=0.01)
    assert literal_digits("(10^{10})!") > 9e10
    assert literal_digits("9^{9^{9^{9}}}") == float("inf") and literal_digits("2**2**2**2**2**2") > 1e6
    assert literal_digits("x+1") is None and literal_digits("2^{10} + 1") is None and literal_digits("(2") is None


def test_large_but_ordinary_answers_are_still_graded() -> None:
    # the pre-screen refuses only numbers of over a million digits; these are compared by math-verify
    assert math_grade("2^{10}", "1024") == (1.0, None)
    assert math_grade("2^{2^{2^{2}}}", "65536") == (1.0, None)
    assert math_grade("5!", "120") == (1.0, None)
    assert math_grade("9^{9^{9^{9}}}", "9^{ 9^{9^{9}} }") == (1.0, None)  # both huge: the same text matches
