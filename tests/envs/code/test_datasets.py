"""Dataset loaders: MBPP, APPS/TACO, LiveCodeBench and our own format (records written here in each
dataset's own shape), read from JSONL, gzip, JSON, parquet and a Hugging Face ``datasets`` object,
then judged in a sandbox."""

from __future__ import annotations

import ast
import base64
import gc
import gzip
import json
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentgym.core import TextEnv
from agentgym.envs.code.datasets import detect_format, load_code_dataset

MakeEnv = Callable[..., TextEnv]

MBPP = [
    {"task_id": 2, "text": "Write a function to find the shared elements of two lists.",
     "code": "def similar_elements(a, b):\r\n  return tuple(set(a) & set(b))\r\n",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))",
                   "assert set(similar_elements((1, 2, 3, 4), (5, 4, 3, 7))) == set((3, 4))",
                   "assert set(similar_elements((11, 12, 14, 13), (17, 15, 14, 13))) == set((13, 14))"],
     "test_setup_code": "", "challenge_test_list": ["assert similar_elements((1,), (2,)) == ()"]},
    {"task_id": 900, "text": "Write a function that adds the two numbers of a Pair.",
     "code": "def pair_sum(p):\n    return p.a + p.b\n",
     "test_setup_code": "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n",
     "test_list": ["assert pair_sum(Pair(1, 2)) == 3", "assert pair_sum(Pair(-5, 1)) == -4"]},
]
APPS = [
    {"problem_id": 11, "question": "Print the sum of all integers in the input.", "starter_code": "",
     "input_output": json.dumps({"inputs": ["1 2\n", ["3", "4"], "10\n"], "outputs": ["3\n", ["7"], "10"]}),
     "solutions": json.dumps(["print(sum(map(int, open(0).read().split())))"])},
    {"problem_id": 12, "question": "Return n squared.", "starter_code": "def square(n):\n    ",
     "input_output": json.dumps({"fn_name": "square", "inputs": [[2], [3], [-4]], "outputs": [[4], [9], 16]}),
     "solutions": json.dumps(["def square(n):\n    return n * n\n"])},
    {"id": "taco-13", "question": "Return the larger of a and b.",
     "starter_code": "class Solution:\n    def larger(self, a, b):\n        ",
     "input_output": {"fn_name": "larger", "inputs": [[1, 2], [5, -1]], "outputs": [2, 5]},
     "solutions": ["class Solution:\n    def larger(self, a, b):\n        return max(a, b)\n"]},
]


def _pack(cases: list[dict[str, str]]) -> str:
    """LiveCodeBench's packing of private tests."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


LCB = [
    {"question_id": "abc100_a", "question_title": "Sum", "question_content": "Read n, then n integers; print their sum.",
     "starter_code": "", "metadata": "{}", "platform": "atcoder",
     "public_test_cases": json.dumps([{"input": "3\n1 2 3\n", "output": "6\n", "testtype": "stdin"}]),
     "private_test_cases": _pack([{"input": "1\n-7\n", "output": "-7\n", "testtype": "stdin"},
                                  {"input": "2\n0.5 0.25\n", "output": "0.75\n", "testtype": "stdin"}])},
    {"question_id": "2999", "question_title": "max-value", "question_content": "Return the largest value of nums.",
     "starter_code": "class Solution:\n    def maxValue(self, nums: List[int]) -> int:\n        ",
     "metadata": json.dumps({"func_name": "maxValue"}), "platform": "leetcode",
     "public_test_cases": json.dumps([{"input": "[1, 5, 3]", "output": "5", "testtype": "functional"}]),
     "private_test_cases": json.dumps([{"input": "[-2]", "output": "-2", "testtype": "functional"},
                                       {"input": "[4, 4]\n", "output": "4", "testtype": "functional"}])},
]
OWN = [
    {"task_id": "mean", "prompt": "Write mean(xs).", "entry_point": "mean", "solution": "def mean(xs):\n    return "
     "sum(xs) / len(xs)\n", "tests": {"kind": "call", "cases": [[[[1, 2]], 1.5], [[[1, 2, 4]], 2.3333]],
                                      "float_tolerance": 1e-3}},
]
LCB_SOLUTIONS = {"abc100_a": "n = int(input())\nprint(sum(map(float, input().split())) if n == 2 else "
                             "sum(map(int, input().split())))",
                 "2999": "class Solution:\n    def maxValue(self, nums: List[int]) -> int:\n        return max(nums)\n"}


def _solve(env: TextEnv, task: Any, code: str | None = None) -> tuple[float, dict[str, Any]]:
    env.reset(options={"task": task})
    _, reward, _, _, info = env.step(env.expert_action() if code is None else f"```python\n{code}\n```")
    return reward, info


@pytest.mark.parametrize(("records", "kinds"), [(MBPP, ["assert", "assert"]), (APPS, ["stdio", "call", "call"]),
                                                 (OWN, ["call"])])
def test_references_pass(make_env: MakeEnv, records: list[dict[str, Any]], kinds: list[str]) -> None:
    env = make_env("agentgym/CodeTests-v0", dataset=records, backend="local")
    assert [p.tests.kind for p in env.problems] == kinds
    for i in range(len(records)):
        reward, info = _solve(env, i)
        assert reward == 1.0, info


def test_livecodebench_stdin_and_functional(make_env: MakeEnv) -> None:
    env = make_env("agentgym/CodeTests-v0", dataset=LCB, backend="local")
    assert [len(p.tests) for p in env.problems] == [3, 3]  # public + unpacked private
    for problem in env.problems:
        reward, info = _solve(env, problem.task_id, LCB_SOLUTIONS[problem.task_id])
        assert reward == 1.0, info
    reward, info = _solve(env, "2999", "class Solution:\n    def maxValue(self, nums):\n        return nums[0]\n")
    assert info["test_results"] == [False, True, True]
    with pytest.raises(ValueError, match="no reference solution"):
        env.expert_action()


def test_field_mapping() -> None:
    two, pair = load_code_dataset(MBPP)
    assert (two.task_id, two.entry_point, len(two.tests)) == ("2", "similar_elements", 3)
    assert "similar_elements((3, 4, 5, 6)" in two.prompt and "(1, 2, 3, 4)" not in two.prompt  # one example shown
    assert pair.context.startswith("class Pair") and "\r" not in (two.solution or "")
    assert len(load_code_dataset(MBPP, mbpp_challenge=True)[0].tests) == 4
    stdio, call, taco = load_code_dataset(APPS)
    assert stdio.tests.cases[1] == ["3\n4", "7"] and stdio.entry_point is None and "standard input" in stdio.prompt
    assert call.tests.unwrap_expected and call.entry_point == "square" and "def square(n):" in call.prompt
    assert taco.task_id == "taco-13"
    lcb = load_code_dataset(LCB)
    assert lcb[0].prompt.startswith("Sum\n\nRead n") and lcb[1].tests.cases[2] == [[[4, 4]], 4]
    assert [detect_format(r) for r in (MBPP[0], APPS[0], LCB[0], OWN[0])] == ["mbpp", "apps", "livecodebench",
                                                                               "agentgym"]


def test_float_tolerance_for_stdio(make_env: MakeEnv) -> None:
    records = [{**APPS[0], "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["0.3333333\n"]})}]
    code = "print(1 / 3)"
    strict = make_env("agentgym/CodeTests-v0", dataset=records, backend="local")
    assert _solve(strict, 0, code)[0] == 0.0
    loose = load_code_dataset(records, float_tolerance=1e-6)
    assert _solve(make_env("agentgym/CodeTests-v0", dataset=loose, backend="local"), 0, code)[0] == 1.0


def test_file_formats(tmp_path: Path) -> None:
    jsonl = tmp_path / "mbpp.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in MBPP) + "\n\n")
    packed = tmp_path / "apps.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write("\n".join(json.dumps({**r, "input_output": json.dumps(r["input_output"])}
                                     if isinstance(r["input_output"], dict) else r) for r in APPS))
    plain = tmp_path / "own.json"
    plain.write_text(json.dumps(OWN))
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "lcb.parquet"
    pq.write_table(pa.Table.from_pylist(LCB), parquet)
    assert [len(load_code_dataset(p)) for p in (jsonl, packed, plain, parquet)] == [2, 3, 1, 2]
    assert load_code_dataset(str(jsonl), "mbpp", limit=1)[0].task_id == "2"


def test_hugging_face_datasets_object() -> None:
    import datasets

    rows = load_code_dataset(datasets.Dataset.from_list(MBPP), "mbpp")
    assert [p.entry_point for p in rows] == ["similar_elements", "pair_sum"]


@pytest.mark.parametrize(("source", "error"), [
    ([{"question": "?"}], "cannot tell the format"),
    ([], "holds no problems"),
    ([MBPP[0], MBPP[0]], "task ids must be unique"),
    ([{**MBPP[0], "test_list": []}], "record 0 is not a valid mbpp problem: ValueError: test_list is empty"),
    ([{**APPS[1], "input_output": "{\"inputs\": [1], \"outputs\": []}"}], "as many outputs as inputs"),
    ([{**LCB[0], "public_test_cases": json.dumps([{"input": "", "output": "", "testtype": "functional"}])}],
     "mixed test types"),
    ([{"task_id": "x", "prompt": "p", "tests": {"kind": "pytest", "cases": ["x"]}}], "test kind must be"),
])
def test_bad_datasets_are_clear_errors(source: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        load_code_dataset(source)


def test_bad_paths_and_formats(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        load_code_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown dataset file type"):
        load_code_dataset(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="format must be"):
        load_code_dataset(MBPP, "codecontests")


def test_loading_survives_a_parse_from_another_thread_mid_tree() -> None:
    """On CPython before 3.11.8 a parse started while another is building its tree (here from a gc
    callback, as a traceback or another rollout thread's ``make`` does) resets the shared depth
    counter and the first parse raises ``SystemError`` (python/cpython#106905; a HumanEval rollout
    failed in CI with it). The loader holds collection off while it parses, so this loads."""
    test = "def check(candidate):\n" + "".join(
        f"    assert candidate({i}) == [{i}, ({i}, {{'a': [{i}]}})]\n" for i in range(200))
    record = {"task_id": "deep/0", "prompt": "def f(x):\n", "entry_point": "f", "test": test,
              "canonical_solution": "    return x\n"}
    interfered: list[str] = []

    def parse_during_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            interfered.append(phase)
            ast.parse("x = [1, (2, 3)]")

    threshold = gc.get_threshold()
    gc.callbacks.append(parse_during_collection)
    gc.set_threshold(10)
    try:
        problems = load_code_dataset([record], "humaneval")
        gc.collect()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(parse_during_collection)
    assert len(problems[0].tests.cases) == 200
    assert interfered, "the callback never ran, so the test exercised nothing"
