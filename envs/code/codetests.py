"""``agentgym/CodeTests-v0`` and ``agentgym/HumanEval-v0``: write code; hidden tests judge it in a sandbox.

The model answers with a ```` ```python ```` block (the first complete block counts; generation
stops at its closing fence, ``stop_sequences``). Of the shared action rule
(:func:`agentgym.parsers.extract_action`) only the reasoning part applies: ``<think>…</think>`` is
dropped and an unclosed ``<think>`` hides the rest; ``Action:``/``<action>`` are not unwrapped,
since code may contain them. Problems are our 32 written ones (call-based
tests) or any dataset :func:`~agentgym.envs.code.datasets.load_code_dataset` reads (``dataset=``:
HumanEval, MBPP, APPS/TACO, LiveCodeBench or our own format). Every submission is judged by
:mod:`~agentgym.envs.code.judge`: the submission runs in its own process, the tests in another
that it cannot touch, and only a verdict carrying the run's secret nonce counts, so exit codes,
printed results and monkeypatching earn nothing.

Reward = the share of tests passed, or 1/0 with ``partial_credit=False`` (pass@1, how
HumanEval is scored); ``info["passed"]``, ``info["total"]``, ``info["all_passed"]``,
``info["test_results"]``. With ``max_attempts > 1`` a failed submission gets feedback (how many
tests passed and why the first failure failed, never the hidden test) and may be resubmitted;
the last attempt's score is the reward. A turn without a complete code block is void and uses
up an attempt. Return values compare with floats within 1e-6 (relative) or 1e-9, bools only
equal to bools, tuples equal to lists.

Sandbox failures raise :class:`~agentgym.core.InfraError` (never a reward of 0); code that
crashes, loops forever or floods stdout only fails its own tests.

**state_key.** ``"start"`` at reset; after an attempt, ``"attempt <k>: <pass/fail bits>"``:
which hidden tests the current code passes (hidden state the env knows; two rollouts whose
code behaves the same on every test are in the same situation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import PythonBlockParser
from agentgym.sandboxes import DEFAULT_IMAGE, SandboxSpec

from .datasets import CodeProblem, from_builtin, load_code_dataset
from .judge import STARTUP_S, VERDICT_BYTES, judge
from .problems import PROBLEMS
from .sandbox import LazySandbox

__all__ = ["SYSTEM_PROMPT", "CodeTestsEnv"]

SYSTEM_PROMPT = (
    "You write Python code. Answer with the complete function or program you are asked for in one ```python "
    "block (only the first block counts). It is run against hidden tests with the standard library only and "
    "no network; your reward is the share of tests it passes."
)


class CodeTestsEnv(TextEnv):
    """Write the asked-for code; reward = share of hidden tests passed (or all-or-nothing).

    ``dataset``: None for our 32 problems, else a path, ``"humaneval"`` or records that
    :func:`~agentgym.envs.code.datasets.load_code_dataset` reads as ``dataset_format``.
    ``problems`` narrows the set by task id; ``partial_credit=False`` scores 1 only when every
    test passes; ``max_attempts`` allows resubmissions with feedback. Sandbox: ``backend``
    (docker, local, or None for auto), Docker ``image``, ``timeout`` for all of a submission's
    tests, ``test_timeout`` per test, ``memory_mb``; ``sandbox_labels`` tag Docker containers.
    """

    system_prompt = SYSTEM_PROMPT
    stop_sequences = PythonBlockParser.stop_sequences

    def __init__(
        self,
        *,
        dataset: str | Path | Iterable[Mapping[str, Any] | CodeProblem] | None = None,
        dataset_format: str = "auto",
        problems: list[str] | None = None,
        partial_credit: bool = True,
        max_attempts: int = 1,
        backend: str | None = None,
        image: str = DEFAULT_IMAGE,
        timeout: float = 10.0,
        test_timeout: float = 1.0,
        memory_mb: int = 512,
        max_action_chars: int = 100_000,
        sandbox_labels: dict[str, str] | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if max_attempts < 1 or timeout <= 0 or test_timeout <= 0:
            raise ValueError("max_attempts must be ≥ 1 and the timeouts > 0")
        catalog = ([from_builtin(p) for p in PROBLEMS] if dataset is None
                   else load_code_dataset(dataset, dataset_format))
        by_id = {p.task_id: p for p in catalog}
        unknown = [name for name in problems or () if name not in by_id]
        if unknown:
            raise ValueError(f"unknown problems {unknown}; choose from {list(by_id)[:20]}")
        self.problems = [by_id[name] for name in problems] if problems else catalog
        self.num_tasks = len(self.problems)
        self.partial_credit = partial_credit
        self.max_attempts, self.timeout, self.test_timeout = max_attempts, float(timeout), float(test_timeout)
        self.parser = PythonBlockParser(max_chars=max_action_chars)
        spec = SandboxSpec(image=image, timeout=self.timeout + self.test_timeout + STARTUP_S, memory_mb=memory_mb,
                           max_output=VERDICT_BYTES)
        self.sandbox = LazySandbox(self, spec, backend=backend, pool="codetests", labels=sandbox_labels)
        self.problem: CodeProblem = self.problems[0]
        self.attempts = 0
        self.state_key = "start"

    def _pick(self, options: dict[str, Any]) -> CodeProblem:
        choice = options.get("task")
        if choice is None:
            return self.problems[self.pool_index(len(self.problems))]
        if isinstance(choice, CodeProblem):
            return choice
        if isinstance(choice, int) and 0 <= choice < len(self.problems):
            return self.problems[choice]
        ids = [p.task_id for p in self.problems]
        if isinstance(choice, str) and choice in ids:
            return self.problems[ids.index(choice)]
        raise ValueError(f"options['task'] must be a problem index or task id, got {choice!r}")

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.problem = self._pick(options)
        self.sandbox.recycle()
        self.attempts, self.state_key = 0, "start"
        info = {"task_id": self.problem.task_id, "num_tests": len(self.problem.tests),
                "state_key": self.state_key}
        return self.problem.prompt, info

    def _step(self, action: str) -> StepResult:
        self.attempts += 1
        final = self.attempts >= self.max_attempts
        parsed = self.parser.parse(action)
        if parsed.kind != "tool_call":
            error = str(parsed.error) if parsed.error else "found no ```python block"
            obs = f"\nInvalid submission: {error}. Put all of your code in one ```python block.\n"
            return obs, 0.0, final, False, {"parse_error": error, "void": True, "state_key": self.state_key,
                                            "success": False}
        code = parsed.tool_calls[0].arguments["code"]
        results, failure = self.run_tests(code)
        passed = sum(results)
        total = len(results)
        self.state_key = f"attempt {self.attempts}: " + "".join("1" if ok else "0" for ok in results)
        done = final or passed == total
        if passed == total:
            obs = f"\nAll {total} hidden tests passed.\n"
        else:
            again = "" if done else " Fix the code and submit it again in one ```python block."
            obs = f"\nPassed {passed} of {total} hidden tests. {failure}.{again}\n"
        info = {
            "tool_calls": [{"name": "python", "arguments": {"code": code}}],
            "role": "tool",
            "state_key": self.state_key,
            "passed": passed,
            "total": total,
            "all_passed": passed == total,
            "success": passed == total,
            "test_results": results,
        }
        score = passed / total if self.partial_credit else float(passed == total)
        return obs, score if done else 0.0, done, False, info

    def run_tests(self, code: str) -> tuple[list[bool], str]:
        """Judge ``code`` on every hidden test: (pass/fail per test, why the first failure failed)."""
        problem = self.problem
        verdict = judge(self.sandbox, code=code, suite=problem.tests, entry_point=problem.entry_point,
                        context=problem.context, test_limit=self.test_timeout, total_limit=self.timeout)
        return verdict.results, verdict.first_failure()

    def expert_action(self) -> str:
        """The reference policy: submit the problem's reference solution."""
        if self.problem.solution is None:
            raise ValueError(f"problem {self.problem.task_id} has no reference solution")
        return f"```python\n{self.problem.solution.rstrip()}\n```"

    def close(self) -> None:
        self.sandbox.close()

