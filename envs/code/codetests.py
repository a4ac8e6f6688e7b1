"""``agentgym/CodeTests-v0``: write a function; hidden unit tests run it in a sandbox.

The model answers with a ```` ```python ```` block defining the function (the first complete
block counts; generation stops at its closing fence, ``stop_sequences``). The env runs a
harness in a fresh sandbox process: it executes the submission, then calls the function on
each test's arguments under a per-test time limit and streams each return value back as JSON.
**Expected values never enter the sandbox**: results are compared on the host, so code that
tampers with the harness can at worst lose its own tests.

Reward = the share of tests passed (``info["passed"]``, ``info["total"]``, ``info["all_passed"]``,
``info["test_results"]``). With ``max_attempts > 1`` a failed submission gets feedback (how many
tests passed and why the first failure failed, never the hidden inputs) and may be resubmitted;
the last attempt's share is the reward. A turn without a complete code block is void and uses
up an attempt. Comparison: floats within 1e-6 (relative) or 1e-9; bools only equal bools;
tuples come back as lists.

Sandbox failures raise :class:`~agentgym.core.InfraError` (never a reward of 0); code that
crashes, loops forever or floods stdout only fails its own tests.

**state_key.** ``"start"`` at reset; after an attempt, ``"attempt <k>: <pass/fail bits>"``:
which hidden tests the current code passes (hidden state the env knows; two rollouts whose
code behaves the same on every test are in the same situation).
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import PythonBlockParser
from agentgym.sandboxes import DEFAULT_IMAGE, SandboxSpec

from .problems import PROBLEMS, Problem
from .sandbox import LazySandbox

__all__ = ["SYSTEM_PROMPT", "CodeTestsEnv", "harness_source", "same_value"]

SYSTEM_PROMPT = (
    "You write Python functions. Answer with the complete function in one ```python block (only the "
    "first block counts). It is run against hidden unit tests with the standard library only, no input "
    "and no network; your reward is the share of tests it passes."
)
MARK = "\x1eagentgym-test "  # prefixes the harness's result lines on stdout

# Runs inside the sandbox (any Python >= 3.8, stdlib only). __SPEC__ becomes a string literal.
_HARNESS = r'''
import json, os, signal, sys

spec = json.loads(__SPEC__)
real_stdout = os.dup(1)
sys.stdout = open(os.devnull, "w")  # the submission's prints are not results


def emit(record):
    os.write(real_stdout, (spec["mark"] + json.dumps(record) + "\n").encode())


def plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    raise TypeError("returned a %s, which the tests cannot compare" % type(value).__name__)


def alarm(signum, frame):
    raise TimeoutError("timed out after %g s" % spec["limit"])


def describe(exc):
    return ("%s: %s" % (type(exc).__name__, exc))[:300]


signal.signal(signal.SIGALRM, alarm)
namespace = {"__name__": "__submission__"}
try:
    signal.setitimer(signal.ITIMER_REAL, spec["limit"])
    exec(compile(spec["code"], "<submission>", "exec"), namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    function = namespace.get(spec["name"])
    if not callable(function):
        raise NameError("the code defines no function named %s" % spec["name"])
except BaseException as exc:
    signal.setitimer(signal.ITIMER_REAL, 0)
    emit({"load_error": describe(exc)})
    os._exit(0)
for index, args in enumerate(spec["cases"]):
    try:
        signal.setitimer(signal.ITIMER_REAL, spec["limit"])
        value = function(*args)
        signal.setitimer(signal.ITIMER_REAL, 0)
        record = {"i": index, "value": plain(value)}
        json.dumps(record)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        record = {"i": index, "error": describe(exc)}
    emit(record)
os._exit(0)
'''


def harness_source(code: str, entry_point: str, cases: list[list[Any]], limit: float) -> str:
    """The harness program for one submission: test *arguments* only, never expected values."""
    spec = {"code": code, "name": entry_point, "cases": cases, "limit": limit, "mark": MARK}
    return _HARNESS.replace("__SPEC__", repr(json.dumps(spec)))


def same_value(got: Any, want: Any) -> bool:
    """Test equality on JSON values: floats approximately, bools only with bools."""
    if isinstance(got, bool) or isinstance(want, bool):
        return type(got) is type(want) and got == want
    if isinstance(got, (int, float)) and isinstance(want, (int, float)):
        if isinstance(got, int) and isinstance(want, int):
            return got == want
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(got) and math.isnan(want))
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(same_value(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(same_value(got[k], want[k]) for k in got)
    return type(got) is type(want) and got == want


class CodeTestsEnv(TextEnv):
    """Write the asked-for function; reward = share of hidden tests passed.

    ``problems`` narrows the set by function name; ``max_attempts`` allows resubmissions with
    feedback. Sandbox: ``backend`` (docker, local, or None for auto), Docker ``image``,
    ``timeout`` for a whole run, ``test_timeout`` per test, ``memory_mb``; ``sandbox_labels``
    tag Docker containers.
    """

    system_prompt = SYSTEM_PROMPT
    stop_sequences = PythonBlockParser.stop_sequences

    def __init__(
        self,
        *,
        problems: list[str] | None = None,
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
        by_name = {p.entry_point: p for p in PROBLEMS}
        unknown = sorted(set(problems or ()) - set(by_name))
        if unknown:
            raise ValueError(f"unknown problems {unknown}; choose from {sorted(by_name)}")
        if max_attempts < 1 or timeout <= 0 or test_timeout <= 0:
            raise ValueError("max_attempts must be ≥ 1 and the timeouts > 0")
        self.problems = [by_name[name] for name in problems] if problems else list(PROBLEMS)
        self.max_attempts, self.timeout, self.test_timeout = max_attempts, float(timeout), float(test_timeout)
        self.parser = PythonBlockParser(max_chars=max_action_chars)
        spec = SandboxSpec(image=image, timeout=self.timeout, memory_mb=memory_mb, max_output=1 << 20)
        self.sandbox = LazySandbox(self, spec, backend=backend, pool="codetests", labels=sandbox_labels)
        self.problem: Problem = self.problems[0]
        self.attempts = 0
        self.state_key = "start"

    def _pick(self, options: dict[str, Any]) -> Problem:
        choice = options.get("task")
        if choice is None:
            return self.problems[int(self.np_random.integers(len(self.problems)))]
        if isinstance(choice, Problem):
            return choice
        if isinstance(choice, int) and 0 <= choice < len(self.problems):
            return self.problems[choice]
        names = [p.entry_point for p in self.problems]
        if isinstance(choice, str) and choice in names:
            return self.problems[names.index(choice)]
        raise ValueError(f"options['task'] must be a problem index or function name, got {choice!r}")

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.problem = self._pick(options)
        self.sandbox.recycle()
        self.attempts, self.state_key = 0, "start"
        info = {"task_id": self.problem.entry_point, "num_tests": len(self.problem.tests),
                "state_key": self.state_key}
        return self.problem.prompt, info

    def _step(self, action: str) -> StepResult:
        self.attempts += 1
        final = self.attempts >= self.max_attempts
        parsed = self.parser.parse(action)
        if parsed.kind != "tool_call":
            error = str(parsed.error) if parsed.error else "found no ```python block"
            obs = f"\nInvalid submission: {error}. Put the whole function in one ```python block.\n"
            return obs, 0.0, final, False, {"parse_error": error, "void": True, "state_key": self.state_key}
        code = parsed.tool_calls[0].arguments["code"]
        results, failure = self.run_tests(code)
        passed = sum(results)
        total = len(results)
        self.state_key = f"attempt {self.attempts}: " + "".join("1" if ok else "0" for ok in results)
        done = final or passed == total
        if passed == total:
            obs = f"\nAll {total} hidden tests passed.\n"
        else:
            again = "" if done else " Fix the function and submit it again in one ```python block."
            obs = f"\nPassed {passed} of {total} hidden tests. {failure}.{again}\n"
        info = {
            "tool_calls": [{"name": "python", "arguments": {"code": code}}],
            "role": "tool",
            "state_key": self.state_key,
            "passed": passed,
            "total": total,
            "all_passed": passed == total,
            "test_results": results,
        }
        return obs, passed / total if done else 0.0, done, False, info

    def run_tests(self, code: str) -> tuple[list[bool], str]:
        """Run every hidden test on ``code``: (pass/fail per test, why the first failure failed)."""
        problem = self.problem
        cases = [args for args, _ in problem.tests]
        source = harness_source(code, problem.entry_point, cases, self.test_timeout)
        result = self.sandbox.run_python(source, timeout=self.timeout)
        records: dict[int, dict[str, Any]] = {}
        for line in result.stdout.split("\n"):  # not splitlines(): MARK starts with \x1e
            if not line.startswith(MARK):
                continue
            try:
                record = json.loads(line[len(MARK) :])
            except (ValueError, RecursionError):  # the submission can write lines that look like ours
                continue
            if not isinstance(record, dict):
                continue
            if "load_error" in record:
                reason = f"The code failed before any test ran: {record['load_error']}"
                return [False] * len(cases), reason
            if isinstance(record.get("i"), int):
                records.setdefault(record["i"], record)
        results, reason = [], ""
        for i, (_, expected) in enumerate(problem.tests):
            record = records.get(i)
            ok = record is not None and "value" in record and same_value(record["value"], _json(expected))
            results.append(ok)
            if not ok and not reason:
                if record is None:
                    why = "timed out" if result.timed_out else "exited early"
                    reason = f"Test {i + 1}: no result (the run {why})"
                else:
                    reason = f"Test {i + 1}: {record.get('error', 'wrong answer')}"
        return results, reason

    def expert_action(self) -> str:
        """The reference policy: submit the problem's reference solution."""
        return f"```python\n{self.problem.solution}```"

    def close(self) -> None:
        self.sandbox.close()


def _json(value: Any) -> Any:
    """``value`` as it looks after a JSON round trip (what the sandbox sends back)."""
    return json.loads(json.dumps(value))
