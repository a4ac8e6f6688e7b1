"""The tool layer: schemas from signatures, argument validation and conversion, ToolEnv's parsing,
limits and error kinds (agent vs infra), and format_tool_calls round trips."""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys
from typing import Annotated, Any, Literal, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.core import InfraError
from agentgym.parsers import ToolCall
from agentgym.tools import Tool, ToolEnv, ToolError, format_tool_calls, tool, tool_schema, validate_arguments


# -- tool schemas (moved from test_parsers.py) -----------------------------------------------
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(TypedDict):
    x: int
    y: int


def search(query: str, k: int = 3, fields: list[str] | None = None) -> list[str]:
    """Search the knowledge base.

    Use it when the question needs facts you do not know.

    Args:
        query: What to look for; a few
            keywords work best.
        k (int): How many documents to return.
        fields: Which fields to search.

    Returns:
        The matching documents.
    """
    return []


def paint(color: Color, mode: Literal["fast", "slow"] = "fast", *, where: Point, weight: float | None = None,
          tags: dict[str, int] | None = None, note: Annotated[str, "meta"] = "", **extra: Any) -> None:
    """Paint a point.

    Parameters
    ----------
    color : Color
        The paint colour.
    mode : str
        How fast to paint.
    """


def rest(a: int, b: tuple[int, ...]) -> int:
    """Add things.

    :param a: the first number
    :param b: the others
    :returns: the sum
    """
    return a


def test_tool_schema_google() -> None:
    schema = tool_schema(search)
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "search"
    assert fn["description"] == "Search the knowledge base.\n\nUse it when the question needs facts you do not know."
    params = fn["parameters"]
    assert params["required"] == ["query"]
    assert params["properties"]["query"] == {
        "type": "string", "description": "What to look for; a few keywords work best."
    }
    assert params["properties"]["k"] == {"type": "integer", "description": "How many documents to return.",
                                         "default": 3}
    assert params["properties"]["fields"] == {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
        "description": "Which fields to search.", "default": None,
    }
    json.dumps(schema)


def test_tool_schema_numpy_enum_literal_typeddict() -> None:
    fn = tool_schema(paint, name="paint_point", description="override")["function"]
    assert fn["name"] == "paint_point" and fn["description"] == "override"
    props = fn["parameters"]["properties"]
    assert props["color"] == {"enum": ["red", "blue"], "description": "The paint colour."}
    assert props["mode"] == {"enum": ["fast", "slow"], "type": "string", "description": "How fast to paint.",
                             "default": "fast"}
    assert props["where"] == {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                              "required": ["x", "y"]}
    assert props["weight"] == {"type": ["number", "null"], "default": None}
    assert props["tags"]["anyOf"][0] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["note"] == {"type": "string", "default": ""}
    assert "extra" not in props
    assert fn["parameters"]["required"] == ["color", "where"]


def test_tool_schema_rest_and_methods() -> None:
    fn = tool_schema(rest)["function"]
    assert fn["description"] == "Add things."
    assert fn["parameters"]["properties"]["a"] == {"type": "integer", "description": "the first number"}
    assert fn["parameters"]["properties"]["b"] == {"type": "array", "items": {"type": "integer"},
                                                    "description": "the others"}

    class Tools:
        def lookup(self, term: str) -> str:
            """Look a term up."""
            return term

    fn = tool_schema(Tools().lookup)["function"]
    assert fn["parameters"] == {"type": "object", "properties": {"term": {"type": "string"}}, "required": ["term"],
                                "additionalProperties": False}


def test_tool_schema_unresolvable_annotation() -> None:
    def f(x: NoSuchType, y=1):  # noqa: F821
        """Do f."""

    fn = tool_schema(f)["function"]
    assert fn["parameters"]["properties"]["y"] == {"default": 1}


def test_additional_properties_closed_unless_kwargs() -> None:
    assert tool_schema(search)["function"]["parameters"]["additionalProperties"] is False
    assert "additionalProperties" not in tool_schema(paint)["function"]["parameters"]


# -- validation and conversion ------------------------------------------------------------------
@dataclasses.dataclass
class Address:
    city: str
    zip_code: str = "00000"


@dataclasses.dataclass
class Customer:
    name: str
    address: Address
    tier: Color = Color.RED


def book(customer: Customer, seats: list[int], when: tuple[int, int] | None = None,
         mode: Literal["a", "b"] = "a") -> str:
    """Book seats.

    Args:
        customer: Who books.
        seats: Seat numbers.
        when: (day, hour).
        mode: Booking mode.
    """
    return f"{customer.name}@{customer.address.city}/{customer.tier.value} {seats} {when} {mode}"


def test_dataclass_schema_nested() -> None:
    props = tool_schema(book)["function"]["parameters"]["properties"]
    customer = props["customer"]
    assert customer["required"] == ["name", "address"] and customer["additionalProperties"] is False
    assert customer["properties"]["address"]["properties"]["zip_code"] == {"type": "string"}
    assert customer["properties"]["tier"] == {"enum": ["red", "blue"]}


def test_tool_call_converts_to_annotated_types() -> None:
    t = Tool.from_function(book)
    out = t({"customer": {"name": "Ann", "address": {"city": "Oslo"}, "tier": "blue"}, "seats": [1, 2],
             "when": [3, 14]})
    assert out == "Ann@Oslo/blue [1, 2] (3, 14) a"


@pytest.mark.parametrize(("args", "message"), [
    ({}, "missing required argument 'customer'"),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": ["1"]}, "seats[0]: expected integer, got string"),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": [True]}, "seats[0]: expected integer, got boolean"),
    ({"customer": {"name": "A", "address": {}}, "seats": []}, "customer.address: missing required argument 'city'"),
    ({"customer": {"name": "A", "address": {"city": "X"}, "tier": "green"}, "seats": []},
     'customer.tier: must be one of ["red", "blue"], got "green"'),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": [], "mode": "c"}, 'mode: must be one of'),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": [], "sets": 1}, "unexpected argument 'sets'"),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": [], "when": "noon"}, "when: expected array or null, got string"),
    ({"customer": {"name": "A", "address": {"city": "X"}}, "seats": 3}, "seats: expected array, got integer"),
])
def test_validation_messages(args: dict[str, Any], message: str) -> None:
    errors = validate_arguments(tool_schema(book)["function"]["parameters"], args)
    assert any(message in e for e in errors), errors
    with pytest.raises(ToolError, match="invalid arguments for book"):
        Tool.from_function(book)(args)


def test_validate_foreign_schema_keywords_ignored() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number", "minimum": 0, "format": "x"}},
              "required": ["n"], "$schema": "whatever"}
    assert validate_arguments(schema, {"n": 1.5}) == []
    assert validate_arguments(schema, {"n": 1}) == []  # an integer is a number
    assert validate_arguments(schema, {"n": "1"}) == ["n: expected number, got string \"1\""]
    assert validate_arguments(schema, [1]) == ['expected object, got array [1]']


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=10))
def test_validate_never_raises(value: Any) -> None:
    errors = validate_arguments(tool_schema(book)["function"]["parameters"], value)
    assert isinstance(errors, list) and all(isinstance(e, str) for e in errors)
    if not errors:
        Tool.from_function(book)(value)  # whatever validates, calls


# -- format_tool_calls ----------------------------------------------------------------------------
def test_format_tool_calls_shapes_round_trip() -> None:
    class Fn:
        name, arguments = "c", '{"z": [1]}'

    class SDKCall:
        function = Fn()

    calls = [
        {"name": "a", "arguments": {"x": 1}},
        {"id": "call_1", "type": "function", "function": {"name": "b", "arguments": '{"y": "é"}'}},
        SDKCall(),
        ToolCall("d", {}),
    ]
    text = format_tool_calls(calls)
    assert text.startswith('<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>')
    env = Calc()
    env.reset(seed=0)
    parsed = env.parse_action(text)
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("a", {"x": 1}), ("b", {"y": "é"}), ("c", {"z": [1]}), ("d", {})]


def test_format_tool_calls_bad_json_arguments_reach_the_model() -> None:
    text = format_tool_calls([{"function": {"name": "add", "arguments": "{not json"}}])
    env = Calc()
    env.reset(seed=0)
    _, _, _, _, info = env.step(text)
    assert "not valid JSON" in info["parse_error"] and info["role"] == "tool"


# -- ToolEnv ----------------------------------------------------------------------------------------
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


class Calc(ToolEnv):
    """Target arithmetic: answer with the number."""

    @tool
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool(name="lookup")
    def lookup_constant(self, key: Literal["pi", "e"]) -> float:
        """A named constant."""
        return {"pi": 3.14, "e": 2.72}[key]

    @tool
    def secret(self, code: str) -> str:
        """Check a code."""
        if code != "42":
            raise ToolError(f"wrong code {code!r}")
        return "opened"

    @tool
    def broken(self) -> str:
        """A tool with a bug in it."""
        return {}["missing"]

    @tool
    def outage(self) -> str:
        """A tool whose backend is down."""
        raise InfraError("backend unreachable")

    def __init__(self, **kwargs: Any):
        super().__init__([divide], **kwargs)

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.a, self.b = (int(x) for x in self.np_random.integers(0, 50, size=2))
        return f"What is {self.a} + {self.b}?", {}

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        ok = answer.strip() == str(self.a + self.b)
        return ("Correct." if ok else "Wrong."), float(ok), True, {}


def test_tools_collected_with_schemas() -> None:
    env = Calc()
    assert list(env.tools) == ["add", "lookup", "secret", "broken", "outage", "divide"]  # definition order
    schemas = {s["function"]["name"]: s for s in env.tool_schemas()}
    assert schemas["lookup"]["function"]["parameters"]["properties"]["key"] == {"enum": ["pi", "e"], "type": "string"}
    assert schemas["add"]["function"]["description"] == "Add two integers."
    assert "self" not in schemas["add"]["function"]["parameters"]["properties"]
    assert '"name": "divide"' in env.system_prompt and "at most 8" in env.system_prompt
    json.dumps(env.tool_schemas())


def test_episode_with_several_calls_and_answer() -> None:
    env = Calc()
    obs, info = env.reset(seed=1)
    assert info["state_key"] is not None and info["role"] == "user"
    a, b = env.a, env.b
    action = (f'<think>use add</think><tool_call>{{"name": "add", "arguments": {{"a": {a}, "b": {b}}}}}</tool_call>'
              '<tool_call>{"name": "lookup", "arguments": {"key": "pi"}}</tool_call>')
    obs, reward, term, trunc, info = env.step(action)
    assert obs == f"[1] add: {a + b}\n\n[2] lookup: 3.14"
    assert info["role"] == "tool" and info["parse_error"] is None and not info["void"] and info["failure"] is None
    assert info["tool_calls"] == [{"name": "add", "arguments": {"a": a, "b": b}, "result": str(a + b)},
                                  {"name": "lookup", "arguments": {"key": "pi"}, "result": "3.14"}]
    key = info["state_key"]
    obs, reward, term, trunc, info = env.step('{"name": "divide", "arguments": {"a": 1, "b": 4}}')  # plain JSON
    assert obs == "0.25" and info["state_key"] != key
    obs, reward, term, trunc, info = env.step(f"<answer>{a + b}</answer>")
    assert (reward, term, info["answer"], obs) == (1.0, True, str(a + b), "Correct.")


def test_json_answer_and_void_text() -> None:
    env = Calc()
    env.reset(seed=2)
    _, _, _, _, info = env.step("I am thinking about it.")
    assert info["void"] and info["parse_error"] is None and info["role"] == "user"
    _, reward, term, _, info = env.step(json.dumps({"answer": str(env.a + env.b)}))
    assert term and reward == 1.0


@pytest.mark.parametrize(("action", "needle", "kind"), [
    ('<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>', "invalid JSON", None),
    ('<tool_call>{"name": "add", "arguments": {"a": 1}}', "never closed", None),
    ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "unknown tool 'nope'; available: add", "agent"),
    ('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>', "missing required argument 'b'", "agent"),
    ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": "2"}}</tool_call>', "b: expected integer", "agent"),
    ('<tool_call>{"name": "lookup", "arguments": {"key": "tau"}}</tool_call>', 'must be one of ["pi", "e"]', "agent"),
    ('<tool_call>{"name": "secret", "arguments": {"code": "7"}}</tool_call>', "wrong code '7'", "agent"),
    ('<tool_call>{"name": "divide", "arguments": {"a": 1, "b": 0}}</tool_call>', "ZeroDivisionError", "infra"),
    ('<tool_call>{"name": "broken", "arguments": {}}</tool_call>', "internal error in tool broken: KeyError", "infra"),
    ('<tool_call>{"name": "secret", "arguments": {"code": "' + "9" * 20_000 + '"}}</tool_call>',
     "20012 characters; the limit is 8192", "agent"),
    ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call><answer>3</answer>', "not both", None),
])
def test_bad_calls_become_tool_observations(action: str, needle: str, kind: str | None) -> None:
    env = Calc()
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(action)
    assert needle in obs and needle in info["parse_error"]
    assert info["role"] == "tool" and reward == 0.0 and not term and not trunc
    if kind is None:
        assert info["void"] and info["tool_calls"] == ()
    else:
        (entry,) = info["tool_calls"]
        assert entry["error_kind"] == kind and needle in entry["error"] and "result" not in entry
        assert info["failure"] == ("infra" if kind == "infra" else None)
    # the episode goes on
    _, reward, term, _, _ = env.step(f"<answer>{env.a + env.b}</answer>")
    assert term and reward == 1.0


def test_partial_failure_runs_the_good_calls() -> None:
    env = Calc()
    env.reset(seed=0)
    obs, _, _, _, info = env.step('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
                                  '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>')
    assert obs.startswith("[1] add: 3\n\n[2] add: Error: invalid arguments")
    assert info["parse_error"].startswith("add: invalid arguments") and [("result" in e) for e in info["tool_calls"]] == [True, False]


def test_per_turn_cap() -> None:
    env = Calc(max_calls_per_turn=2)
    env.reset(seed=0)
    call = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    obs, _, _, _, info = env.step(call * 3)
    assert "3 tool calls in one turn; the limit is 2, so none was run" in obs
    assert [e["error_kind"] for e in info["tool_calls"]] == ["agent"] * 3 and env.history == []
    _, _, _, _, info = env.step(call * 2)
    assert [e["result"] for e in info["tool_calls"]] == ["3", "3"]


def test_infra_error_propagates() -> None:
    env = Calc()
    env.reset(seed=0)
    with pytest.raises(InfraError, match="backend unreachable"):
        env.step('<tool_call>{"name": "outage", "arguments": {}}</tool_call>')


def test_long_results_are_cut() -> None:
    def shout(text: str) -> str:
        """Repeat text."""
        return text * 1000

    env = Calc(max_result_chars=100)
    env.add_tool(Tool.from_function(shout))
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "shout", "arguments": {"text": "ab"}}</tool_call>')
    assert obs == "ab" * 50 + "\n[… 1900 more characters cut]"


def test_state_key_same_history_same_key() -> None:
    first, second = Calc(), Calc()
    keys = []
    for env in (first, second):
        env.reset(seed=3)
        _, _, _, _, info = env.step('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
        keys.append(info["state_key"])
    assert keys[0] == keys[1]
    assert first.reset(seed=3)[1]["state_key"] != keys[0]


def test_check_env_passes() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(Calc())


def test_import_is_light() -> None:
    code = "import sys, agentgym.tools; print(sorted(m for m in ('torch', 'mcp', 'openai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
