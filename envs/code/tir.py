"""``agentgym/PythonTIR-v0``: math and logic with a Python tool, SimpleTIR's protocol.

Reasoning (``<think>…</think>``; an unclosed ``<think>`` hides the rest) is dropped first, the
only part of the shared action rule (:func:`agentgym.parsers.extract_action`) that applies to
code. A turn is text that ends at its first complete ```` ```python ```` block: generation stops
right after its closing fence on its own line (``stop_sequences = ("\\n```\\n",)``, kept in
the action; a block closed by ```` ``` ```` and the end of the text is complete too), and
anything a policy still writes after the block is ignored. The block runs in the episode's
persistent Python session, so variables and imports survive between turns, and the observation
(role ``tool``) is ``"\\nCode execution result: …\\n"``: what the code printed, cut to
``max_output_chars`` (head and tail kept), then the last line of stderr if the code failed, or
a timeout notice (a timeout restarts the session: its variables are gone, and the observation
says so).

A ``\\boxed{...}`` in the text before the block (or in the code's printed output, as SimpleTIR
allows) is the final answer: the episode ends and is scored — exact numeric match for our
built-in tasks, the generator's own scorer for reasoning-gym ones, :func:`~.tasks.math_match`
(math-verify) for a ``dataset=`` of your own. A turn with neither a
complete block nor a boxed answer (prose, an unterminated fence, an empty block, an empty or
unclosed box) is a **void turn**: ``info["void"] = True``, a readable ``parse_error``, and the
episode ends with reward 0, as in SimpleTIR (whose trainer masks such trajectories).
This ``void`` flag (``void_rule="agentgym"``, the default) is what the env can act on; SimpleTIR's
own regex (:func:`agentgym.credit.is_void_simpletir`) differs on five cases, listed in
``agentgym/credit/void.py``; ``void_rule="simpletir"`` sets the flag by that regex instead (the
episode itself runs the same way).

**Infra.** The sandbox is made at the first code execution (Docker when an engine and the
image are there, else LocalSandbox). A sandbox machinery failure raises
:class:`~agentgym.core.InfraError` from ``step`` (the rollout engine records
``failure="infra"``; never a reward of 0) and the dead sandbox is dropped, so the next
episode starts a fresh one.

**state_key (GiGPO anchors).** ``"start"`` at reset; after code runs, a digest of every
execution result so far: what the agent has learned from its tool, whatever code produced it
(two rollouts that printed the same values are in the same situation). Turns that end the
episode keep the last key.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.core import Failure, StepResult, TextEnv
from agentgym.credit.void import VOID_RULES, is_void_simpletir
from agentgym.grading import GRADE_TIMEOUT
from agentgym.parsers import BoxedParser, PythonBlockParser, strip_think
from agentgym.sandboxes import DEFAULT_IMAGE, ExecResult, SandboxSpec

from .sandbox import LazySandbox
from .tasks import (
    DEFAULT_FAMILIES,
    MathTask,
    ReasoningGymSource,
    builtin_task,
    load_math_dataset,
    math_grade,
    numeric_match,
)

__all__ = ["SYSTEM_PROMPT", "PythonTIREnv", "format_execution", "truncate_middle"]

log = logging.getLogger("agentgym.envs.code")

SYSTEM_PROMPT = (
    "Solve the problem. You can run Python: write code in a ```python block and end your message "
    "there. It runs in a persistent Python session (variables and imports carry over between blocks; "
    "the standard library, numpy and sympy are available; there is no network), and you get back "
    "'Code execution result:' with what the code printed (use print), or the last line of the error. "
    "Only the first code block of a message runs. Put your final answer in \\boxed{}. A message with "
    "neither a code block nor a \\boxed{} answer ends the episode."
)
VOID_HINT = "Write Python in a ```python block to run it, or give the final answer as \\boxed{answer}."
SOURCES = ("auto", "builtin", "reasoning_gym")
INSTALL_HINT = "pip install 'agentgym-rl[code]'"


@functools.lru_cache(maxsize=4)
def _warn_once(message: str) -> None:
    log.warning(message)


def truncate_middle(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its head and tail (where results are)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n…[{len(text) - 2 * half} characters cut]…\n{text[len(text) - half:]}"


def format_execution(result: ExecResult, limit: int, timeout: float) -> str:
    """SimpleTIR's observation: printed output, then the last stderr line on failure."""
    stdout = result.stdout.rstrip("\n") + ("\n…[the rest of the output was dropped]" if result.stdout_truncated else "")
    parts = [truncate_middle(stdout, limit)] if stdout.strip() else []
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if result.timed_out:
        parts.append(f"TimeoutError: the code ran longer than {timeout:g} s and was stopped; the session "
                     "restarted, so earlier variables and imports are gone")
    elif result.exit_code != 0 or (errors and errors[-1].startswith("[sandbox]")):  # e.g. the session died
        parts.append(truncate_middle(errors[-1], limit) if errors else f"the code exited with status {result.exit_code}")
    body = "\n".join(parts) if parts else "(no output; print the values you want to see)"
    return f"\nCode execution result: {body}\n"


class PythonTIREnv(TextEnv):
    """Tool-integrated reasoning: solve math/logic tasks with a persistent Python session.

    Tasks (``source``): ``"builtin"`` (our 17 seeded templates), ``"reasoning_gym"`` (the
    ``families`` generators, seeded with ``data_seed``), or ``"auto"`` (both; built-in only,
    with a logged warning, when reasoning-gym is not installed). A seed picks a source
    uniformly, then one of its ``tasks_per_source`` tasks. ``dataset`` (a file or records that
    :func:`~.tasks.load_math_dataset` reads) replaces them all with your problems, graded by
    :func:`~.tasks.math_match`. Sandbox: ``backend`` (docker, local,
    or None for auto), Docker ``image``, per-call ``timeout`` in seconds, ``memory_mb``;
    ``sandbox_labels`` tag Docker containers. ``max_output_chars`` caps the output an
    observation shows. ``grade_timeout``: seconds grading one final answer may take (a hard bound
    in any thread); an answer that runs out of it scores 0 with ``info["grader_error"]`` and
    ``failure="agent"``. ``info["success"]``: the answer is correct (reward 1).
    """

    system_prompt = SYSTEM_PROMPT
    stop_sequences = PythonBlockParser.stop_sequences

    def __init__(
        self,
        *,
        source: str = "auto",
        dataset: str | Path | Iterable[Mapping[str, Any]] | None = None,
        families: Sequence[str] = DEFAULT_FAMILIES,
        tasks_per_source: int = 1000,
        data_seed: int = 0,
        backend: str | None = None,
        image: str = DEFAULT_IMAGE,
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_output_chars: int = 512,
        max_action_chars: int = 100_000,
        sandbox_labels: dict[str, str] | None = None,
        max_turns: int | None = 5,
        render_mode: str | None = None,
        void_rule: str = "agentgym",
        grade_timeout: float = GRADE_TIMEOUT,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if void_rule not in VOID_RULES:
            raise ValueError(f"void_rule must be one of {VOID_RULES}, got {void_rule!r}")
        self.void_rule = void_rule
        if grade_timeout <= 0:
            raise ValueError("grade_timeout must be > 0")
        self.grade_timeout = float(grade_timeout)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if tasks_per_source < 1 or timeout <= 0 or max_output_chars < 32:
            raise ValueError("tasks_per_source must be ≥ 1, timeout > 0 and max_output_chars ≥ 32")
        self.data = load_math_dataset(dataset) if dataset is not None else []
        if self.data and source != "auto":
            raise ValueError("dataset= replaces the task sources: leave source at 'auto'")
        self.rg: ReasoningGymSource | None = None
        if source != "builtin" and families and not self.data:
            try:
                self.rg = ReasoningGymSource(families, tasks_per_source, data_seed)
            except ImportError as exc:
                if source == "reasoning_gym":
                    raise ImportError(f"source='reasoning_gym' needs reasoning-gym: {INSTALL_HINT} ({exc})") from exc
                _warn_once(f"reasoning-gym cannot be imported ({exc}; {INSTALL_HINT}): PythonTIR-v0 uses only "
                           "its built-in tasks")
        self.sources = ["data"] if self.data else (["builtin"] if source != "reasoning_gym" else []) + [
            f"rg/{f}" for f in (self.rg.datasets if self.rg else ())
        ]
        tasks_per_source = len(self.data) or tasks_per_source
        if not self.sources:
            raise ValueError("no task source: give reasoning-gym families or use source='builtin'")
        self.tasks_per_source, self.data_seed = tasks_per_source, data_seed
        self.timeout, self.max_output_chars = float(timeout), max_output_chars
        # _step strips thinking once; the parsers then see pieces of that text
        self.code_parser = PythonBlockParser(max_chars=max_action_chars, ignore_think=False)
        self.boxed = BoxedParser(max_chars=max_action_chars, ignore_think=False)
        spec = SandboxSpec(image=image, timeout=self.timeout, memory_mb=memory_mb, max_output=64 << 10)
        self.sandbox = LazySandbox(self, spec, backend=backend, pool="tir", labels=sandbox_labels)
        self.task: MathTask = builtin_task(0, data_seed)
        self.outputs: list[str] = []
        self.last_run: tuple[str, ExecResult] | None = None  # (code, result) of the latest execution
        self.state_key = "start"

    # -- tasks ----------------------------------------------------------------------------
    def task_at(self, index: int) -> MathTask:
        """Task ``index`` of the flat list: source ``index // tasks_per_source``, then its item."""
        source, item = divmod(index, self.tasks_per_source)
        if not 0 <= source < len(self.sources):
            raise ValueError(f"task index {index} is out of range (0..{self.num_tasks - 1})")
        name = self.sources[source]
        if name == "builtin":
            return builtin_task(item, self.data_seed)
        if name == "data":
            return self.data[item]
        assert self.rg is not None
        return self.rg.task(name.removeprefix("rg/"), item)

    @property
    def num_tasks(self) -> int:
        return len(self.sources) * self.tasks_per_source

    def _pick(self, options: dict[str, Any]) -> MathTask:
        choice = options.get("task")
        if choice is None:  # every source alike: the pool is sources × tasks_per_source
            return self.task_at(self.pool_index(self.num_tasks))
        if isinstance(choice, MathTask):
            return choice
        if isinstance(choice, int):
            return self.task_at(choice)
        if isinstance(choice, str):
            head, _, item = choice.rpartition("/")
            if head in self.sources and item.isdigit() and int(item) < self.tasks_per_source:
                return self.task_at(self.sources.index(head) * self.tasks_per_source + int(item))
        raise ValueError(f"options['task'] must be a task index, id (e.g. 'builtin/3') or MathTask, got {choice!r}")

    def score(self, answer: str) -> float:
        """:meth:`grade`'s reward alone."""
        return self.grade(answer)[0]

    def grade(self, answer: str) -> tuple[float, str | None]:
        """The current task's reward for ``answer`` and, when the answer could not be graded
        (grading ran past ``grade_timeout``, an astronomically large number), why: math-verify
        for dataset tasks and reasoning-gym's scorer for its own (both in a grading worker with a
        hard time bound), exact numeric match for built-in ones."""
        if self.task.source == "data":
            return math_grade(answer, self.task.answer, timeout=self.grade_timeout)
        if self.task.entry is None:
            return numeric_match(answer, self.task.answer), None
        assert self.rg is not None
        return self.rg.grade(self.task, answer, timeout=self.grade_timeout)

    # -- the contract -----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.task = self._pick(options)
        self.sandbox.recycle()
        self.outputs, self.last_run, self.state_key = [], None, "start"
        info = {"task_id": self.task.id, "source": self.task.source, "question": self.task.question,
                "gold_answer": self.task.answer, "state_key": self.state_key}
        return self.task.question, info

    def _step(self, action: str) -> StepResult:
        obs, reward, terminated, truncated, info = self._turn(action)
        if self.void_rule == "simpletir":  # only the flag (the loss mask) follows SimpleTIR's regex
            info = {**info, "void": is_void_simpletir(action)}
        return obs, reward, terminated, truncated, info

    def _turn(self, action: str) -> StepResult:
        text = strip_think(action)
        block = self.code_parser.block_span(text)
        boxed = self.boxed.parse(text[: block[0]] if block else text)
        if boxed.kind == "answer":
            return self._answer(boxed.answer or "", "")
        code = self.code_parser.parse(text[block[0] : block[1]] if block else text)
        if code.kind == "tool_call":
            return self._execute(code.tool_calls[0].arguments["code"])
        error = code.error or boxed.error
        message = str(error) if error else "found no ```python block and no \\boxed{} answer"
        info = {"parse_error": message, "void": True, "state_key": self.state_key, "success": False}
        return f"\nInvalid turn: {message}. {VOID_HINT}\n", 0.0, True, False, info

    def _execute(self, code: str) -> StepResult:
        result = self.sandbox.run_python(code, timeout=self.timeout, session=True)
        obs = format_execution(result, self.max_output_chars, self.timeout)
        self.outputs.append(obs)
        self.last_run = (code, result)
        self.state_key = "exec:" + hashlib.sha1("\x00".join(self.outputs).encode()).hexdigest()[:16]
        info = {
            "tool_calls": [{"name": "python", "arguments": {"code": code}}],
            "role": "tool",
            "state_key": self.state_key,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
        }
        printed = self.boxed.parse(result.stdout)
        if printed.kind == "answer":  # SimpleTIR: a boxed answer printed by the code is final
            return self._answer(printed.answer or "", obs, info)
        return obs, 0.0, False, False, info

    def _answer(self, answer: str, obs: str, info: dict[str, Any] | None = None) -> StepResult:
        reward, why = self.grade(answer)
        correct = reward >= 1.0
        info = {**(info or {"state_key": self.state_key}), "answer": answer, "correct": correct, "success": correct}
        if why is not None:  # scored 0 for the agent, and said so
            info.update(grader_error=why, failure=Failure.AGENT, failure_detail=why)
        return obs, reward, True, False, info

    def expert_action(self) -> str:
        """The reference policy: run the task's solution, then box what it printed.

        Built-in solutions compute the answer; for reasoning-gym tasks the "solution" prints
        the generator's gold answer (the env has no solver for them).
        """
        if self.last_run is not None and self.last_run[0] == self.task.solution and self.last_run[1].ok:
            return f"The code printed the answer.\n\\boxed{{{self.last_run[1].stdout.strip()}}}"
        return f"Let me compute it.\n```python\n{self.task.solution}\n```"

    def close(self) -> None:
        self.sandbox.close()
