"""Parsers: every format, malformed inputs, void turns, and a fuzz that never raises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.parsers import (
    Action,
    BoxedParser,
    Extracted,
    FirstOf,
    HermesParser,
    JSONParser,
    ParseError,
    PythonBlockParser,
    TagParser,
    ToolCall,
    ToolCallParser,
    extract_action,
    get_parser,
)


# -- tags ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "payload"),
    [
        ("<search> capital of Vel </search>", "tool_call", "capital of Vel"),
        ("I think so.\n<answer> Tavi Melkor </answer>", "answer", "Tavi Melkor"),
        ("<search>a\nb</search>", "tool_call", "a\nb"),
        ("<search >q</search>", "tool_call", "q"),
        ("<think>maybe <answer>x</answer> or <search>y</search></think><answer>z</answer>", "answer", "z"),
        ("prompt-side thinking</think><search>q</search>", "tool_call", "q"),
        ("plain prose, no tags", "text", None),
        ("<Search>q</Search>", "text", None),  # tags are case-sensitive, like Search-R1
    ],
)
def test_tags_valid(text: str, kind: str, payload: str | None) -> None:
    action = TagParser().parse(text)
    assert action.kind == kind and action.error is None and action.text == text
    if kind == "tool_call":
        assert action.tool_calls == (ToolCall("search", {"query": payload}),)
    if kind == "answer":
        assert action.answer == payload


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("<search>never closed", "unclosed_tag"),
        ("<answer>half", "unclosed_tag"),
        ("query</search>", "unmatched_close"),
        ("<search>a</search> and <search>b</search>", "multiple_actions"),
        ("<search>a</search><answer>b</answer>", "multiple_actions"),
        ("<search>   </search>", "empty"),
        ("<answer></answer>", "empty"),
        ("x" * 200_001, "too_long"),
    ],
)
def test_tags_malformed(text: str, code: str) -> None:
    action = TagParser().parse(text)
    assert action.kind == "text" and action.void
    assert action.error is not None and action.error.code == code
    assert len(str(action.error)) < 200  # readable, and a snippet, never the whole text


def test_tags_config() -> None:
    parser = TagParser({"lookup": "term", "calc": "expr"}, answer_tag="final", allow_multiple=True)
    action = parser.parse("<lookup>x</lookup><calc>1+1</calc>")
    assert action.tool_calls == (ToolCall("lookup", {"term": "x"}), ToolCall("calc", {"expr": "1+1"}))
    assert parser.parse("<final>7</final>").answer == "7"
    assert parser.parse("<lookup>x</lookup><final>7</final>").error.code == "multiple_actions"
    assert TagParser(["python"], answer_tag=None).parse("<python>1</python>").tool_calls[0].arguments == {
        "input": "1"
    }
    with pytest.raises(ValueError):
        TagParser({"bad tag": "x"})


def test_error_message_is_readable() -> None:
    error = TagParser().parse("ok <search>who founded Korvan").error
    assert isinstance(error, ParseError)
    assert "<search> is never closed" in str(error) and "who founded" in str(error)


# -- hermes ---------------------------------------------------------------------------------------
def test_hermes() -> None:
    parser = HermesParser()
    text = (
        '<tool_call>\n{"name": "search", "arguments": {"query": "x", "k": 3}}\n</tool_call>\n'
        '<tool_call>{"name": "python", "arguments": "{\\"code\\": \\"1\\"}"}</tool_call>'
    )
    action = parser.parse(text)
    assert action.kind == "tool_call"
    assert [c.to_dict() for c in action.tool_calls] == [
        {"name": "search", "arguments": {"query": "x", "k": 3}},
        {"name": "python", "arguments": {"code": "1"}},
    ]
    assert parser.parse('<tool_call>{"name": "f"}</tool_call>').tool_calls == (ToolCall("f", {}),)
    assert parser.parse("<answer>42</answer>").answer == "42"
    assert parser.parse("just chatting").kind == "text"
    assert parser.parse("<think><tool_call>{bad</tool_call></think>ok").kind == "text"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('<tool_call>{"name": "f", "arguments": {}}', "unclosed_tag"),
        ("<tool_call>{not json}</tool_call>", "invalid_tool_call"),
        ('<tool_call>{"arguments": {}}</tool_call>', "invalid_tool_call"),
        ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "invalid_tool_call"),
        ('<tool_call>{"name": "f", "arguments": "{oops"}</tool_call>', "invalid_tool_call"),
        ("<tool_call>" + "[" * 50_000 + "</tool_call>", "invalid_tool_call"),
        ('<tool_call>{"name": "f"}</tool_call><answer>1</answer>', "multiple_actions"),
        ("stray </tool_call>", "unmatched_close"),
    ],
)
def test_hermes_malformed(text: str, code: str) -> None:
    action = HermesParser().parse(text)
    assert action.void and action.error is not None and action.error.code == code, action


# -- json ---------------------------------------------------------------------------------------
def test_json() -> None:
    parser = JSONParser()
    fenced = 'Calling:\n```json\n{"name": "search", "arguments": {"query": "q"}}\n```'
    assert parser.parse(fenced).tool_calls == (ToolCall("search", {"query": "q"}),)
    many = '[{"name": "a", "arguments": {}}, {"name": "b", "parameters": {"x": 1}}]'
    assert [c.name for c in parser.parse(many).tool_calls] == ["a", "b"]
    assert parser.parse('{"answer": "Vel Dara"}').answer == "Vel Dara"
    assert parser.parse('{"answer": 12}').answer == "12"
    assert parser.parse("prose with [1] citations and {braces}").kind == "text"
    assert parser.parse("prose with [1] citations and {braces}").error is None
    assert parser.parse('{"name": broken}').error.code == "invalid_json"
    assert parser.parse('{"tool": "x"}').error.code == "invalid_tool_call"
    assert parser.parse('{"answer": " "}').error.code == "empty"
    assert parser.parse("{" * 100_000).kind == "text"  # bounded scan, no blow-up


# -- python blocks ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\nprint(1)\n```", "print(1)"),
        ("```py\nx = 2\nprint(x)\n```", "x = 2\nprint(x)"),
        ("```\nbare()\n```", "bare()"),
        ("Let me run:```python\ninline()\n```", "inline()"),
        ("```bash\nls\n```\nthen\n```python\nreal()\n```", "real()"),  # a bash block's closer is no opener
        ("```python\nfirst()\n```\n```python\nsecond()\n```", "first()"),
        ("```python\ndone()\n```\n```python\nunfinished(", "done()"),
    ],
)
def test_python_block(text: str, code: str) -> None:
    action = PythonBlockParser().parse(text)
    assert action.tool_calls == (ToolCall("python", {"code": code}),)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("```python\nprint(1)", "unclosed_code_block"),  # cut off mid-code: does not count
        ("```python", "unclosed_code_block"),  # cut off right after the fence
        ("```json\n{}\n```", None),
        ("no code here", None),
        ("```python\n\n```", "empty"),
    ],
)
def test_python_block_void(text: str, error: str | None) -> None:
    action = PythonBlockParser().parse(text)
    assert action.void and (action.error.code if action.error else None) == error


# -- boxed --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"so \boxed{42}", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{ {a}{ {b} } }", "{a}{ {b} }"),
        (r"first \boxed{1}, finally \boxed{2}", "2"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\fbox{x}", "x"),
        (r"\boxed {7}", "7"),
    ],
)
def test_boxed(text: str, answer: str) -> None:
    assert BoxedParser().parse(text).answer == answer


def test_boxed_malformed() -> None:
    assert BoxedParser().parse(r"\boxed{\frac{1}{2}").error.code == "unclosed_boxed"
    assert BoxedParser().parse(r"\boxed{}").error.code == "empty"
    assert BoxedParser().parse(r"\boxed{1} then \boxed{2").answer == "1"  # the last COMPLETE one
    assert BoxedParser().parse("no box").error is None


def test_first_of_code_then_boxed() -> None:
    tir = FirstOf(PythonBlockParser(), BoxedParser())
    assert tir.parse("```python\nprint(6*7)\n```").kind == "tool_call"
    assert tir.parse(r"The answer is \boxed{42}.").answer == "42"
    assert tir.parse("```python\ncut off").error.code == "unclosed_code_block"
    assert tir.is_void("I will think more.") and not tir.is_void(r"\boxed{1}")
    with pytest.raises(ValueError):
        FirstOf()


def test_is_void_per_parser() -> None:
    assert TagParser().is_void("<search>q") and not TagParser().is_void("<search>q</search>")
    assert HermesParser().is_void('<tool_call>{"name": "f"}') and not HermesParser().is_void("<answer>1</answer>")
    assert PythonBlockParser().is_void("```python\nx") and not PythonBlockParser().is_void("```\nx\n```")
    assert Action("text", "x").void and not Action("answer", "x", answer="x").void


def test_get_parser() -> None:
    assert isinstance(get_parser("tags", answer_tag="final"), TagParser)
    assert {type(get_parser(n)).__name__ for n in ("hermes", "json", "python", "boxed")} == {
        "HermesParser", "JSONParser", "PythonBlockParser", "BoxedParser"
    }
    with pytest.raises(ValueError, match="unknown parser"):
        get_parser("nope")


def test_non_string_action() -> None:
    assert TagParser().parse(None).error.code == "not_text"  # type: ignore[arg-type]


# -- fuzz ---------------------------------------------------------------------------------------
_PIECES = ["<search>", "</search>", "<answer>", "</answer>", "<tool_call>", "</tool_call>", "<think>",
           "</think>", "```", "```python\n", "\n", "{", "}", "[", "]", '"name"', ":", '"arguments"',
           r"\boxed{", "\\", '"', "x", " ", "<function=f>", "</function>", "<parameter=a>", "</parameter>",
           "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"]
_ALL = [TagParser(), HermesParser(), JSONParser(), ToolCallParser(), PythonBlockParser(), BoxedParser(),
        FirstOf(PythonBlockParser(), BoxedParser()), TagParser(allow_multiple=True, ignore_think=False)]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)))
def test_fuzz_never_raises(text: str) -> None:
    for parser in _ALL:
        action = parser.parse(text)
        assert action.kind in ("tool_call", "answer", "text")
        assert action.void == (action.kind == "text")
        assert (action.kind == "tool_call") == bool(action.tool_calls)
        assert (action.kind == "answer") == (action.answer is not None)
        if action.error is not None:
            assert action.kind == "text" and action.error.code and action.error.message
        for call in action.tool_calls:
            json.dumps(call.to_dict())


def test_import_is_light() -> None:
    code = "import sys, agentgym.parsers; print(sorted(m for m in ('bm25s', 'scipy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- tool calls as real models write them (issue 21, item 2) -----------------------------------
QUINN = '{"contact_id": "K14", "name": "Quinn Nguyen", "email": "quinn@work.test", "phone": "555-5929"}'
CANCEL = '{"name": "cancel_order", "arguments": {"order_id": "O2526", "reason": "found_cheaper"}}'
FIND = ToolCall("find_contacts", {"name": "Quinn"})
DS = {"calls": "<｜tool▁calls▁begin｜>", "end": "<｜tool▁calls▁end｜>", "call": "<｜tool▁call▁begin｜>",
      "call_end": "<｜tool▁call▁end｜>", "sep": "<｜tool▁sep｜>"}


@pytest.mark.parametrize(("text", "calls"), [
    # Hermes / Qwen2.5
    ('<tool_call>\n{"name": "find_contacts", "arguments": {"name": "Quinn"}}\n</tool_call>', [FIND]),
    # Qwen3-Coder XML, values typed by the schema (no schema here: JSON when it parses)
    ("<tool_call>\n<function=find_contacts>\n<parameter=name>\nQuinn\n</parameter>\n</function>\n</tool_call>",
     [FIND]),
    ("<tool_call><function=f>\n<parameter=n>\n3\n</parameter>\n<parameter=s>\na\nb\n</parameter>\n</function>"
     "</tool_call>", [ToolCall("f", {"n": 3, "s": "a\nb"})]),
    # Llama-3.1/3.3: the whole message is the JSON call ("parameters"), or after <|python_tag|>
    ('{"name": "find_contacts", "parameters": {"name": "Quinn"}}', [FIND]),
    ('{"name": "find_contacts", "parameters": {"name": "Quinn"}}<|eot_id|>', [FIND]),
    ('<|python_tag|>{"name": "find_contacts", "parameters": {"name": "Quinn"}}<|eom_id|>', [FIND]),
    ('<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}',
     [ToolCall("a", {}), ToolCall("b", {"x": 1})]),
    # Llama-4 / Functionary: the name is the tag's, the JSON is the arguments
    ('<function=find_contacts>{"name": "Quinn"}</function>', [FIND]),
    ('Let me look. <function=find_contacts>{"name": "Quinn"}</function><function=list_events>{"day": 2}</function>',
     [FIND, ToolCall("list_events", {"day": 2})]),
    # Mistral: the JSON list, and the v11+ NAME[ARGS]{json} (with [CALL_ID]) form
    ('[TOOL_CALLS][{"name": "find_contacts", "arguments": {"name": "Quinn"}}]', [FIND]),
    ('[TOOL_CALLS] [{"name": "find_contacts", "arguments": {"name": "Quinn"}}]</s>', [FIND]),
    ('[TOOL_CALLS]find_contacts[ARGS]{"name": "Quinn"}', [FIND]),
    ('[TOOL_CALLS]find_contacts[CALL_ID]a1b2c3d4e[ARGS]{"name": "Quinn"}[TOOL_CALLS]list_events[ARGS]{"day": 2}',
     [FIND, ToolCall("list_events", {"day": 2})]),
    # DeepSeek-V3 (type, name, fenced JSON) and V3.1 (name, JSON)
    (f'{DS["calls"]}{DS["call"]}function{DS["sep"]}find_contacts\n```json\n{{"name": "Quinn"}}\n```'
     f'{DS["call_end"]}{DS["end"]}', [FIND]),
    (f'{DS["calls"]}{DS["call"]}find_contacts{DS["sep"]}{{"name": "Quinn"}}{DS["call_end"]}'
     f'{DS["call"]}list_events{DS["sep"]}{{"day": 2}}{DS["call_end"]}{DS["end"]}',
     [FIND, ToolCall("list_events", {"day": 2})]),
    # a whole fenced block, and reasoning before the call
    ('Calling it:\n```json\n{"name": "find_contacts", "arguments": {"name": "Quinn"}}\n```', [FIND]),
    ('<think>maybe {"name": "cancel_order", "arguments": {}}?</think>\n'
     '<tool_call>{"name": "find_contacts", "arguments": {"name": "Quinn"}}</tool_call>', [FIND]),
])
def test_tool_call_formats(text: str, calls: list[ToolCall]) -> None:
    action = ToolCallParser().parse(text)
    assert action.kind == "tool_call" and action.error is None, action
    assert list(action.tool_calls) == calls


@pytest.mark.parametrize("text", [
    f"I should NOT do {CANCEL}",  # JSON inside prose is prose
    f"The user said: {CANCEL} -- but that was a mistake.",
    f"Found {QUINN} in the contacts.",  # a record quoted back from an observation
    "Set {x : x > 0} and [1, 2] and {braces}",
    f"Step 1: {CANCEL}\nStep 2: report.",
])
def test_json_in_prose_is_not_a_call(text: str) -> None:
    for parser in (ToolCallParser(), JSONParser()):
        action = parser.parse(text)
        assert action.kind == "text" and not action.tool_calls, (parser, action)


@pytest.mark.parametrize(("text", "code", "needle"), [
    (QUINN, "invalid_tool_call", "also has contact_id"),  # a record alone is not a call either
    (f"```json\n{QUINN}\n```", "invalid_tool_call", "not a tool call"),
    ('{"name": "find_contacts"}', "invalid_tool_call", 'no "arguments"'),
    ('{"name": "f", "arguments": {}, "parameters": {}}', "invalid_tool_call", "both"),
    ("<function=>{}</function>", "invalid_tool_call", "needs a tool name"),
    ('<function=f>{"a": </function>', "invalid_tool_call", "invalid JSON"),
    ("<function=f>{}", "unclosed_tag", "never closed"),
    ("<tool_call><function=f>junk<parameter=a>1</parameter></function></tool_call>", "invalid_tool_call",
     "unexpected text"),
    ("<tool_call><function=f><parameter=a>1</parameter><parameter=a>2</parameter></function></tool_call>",
     "invalid_tool_call", "given twice"),
    ("[TOOL_CALLS]find_contacts[ARGS]not json", "invalid_tool_call", "NAME[ARGS]"),
    ('[TOOL_CALLS]find_contacts[ARGS]{"name": "Quinn"} trailing', "invalid_tool_call", "one JSON object"),
    ("[TOOL_CALLS][{]", "invalid_tool_call", "invalid JSON"),
    (f'{DS["calls"]}{DS["call"]}function{DS["sep"]}f\n```json\n{{bad\n```{DS["call_end"]}', "invalid_tool_call",
     "DeepSeek"),
    (f'{DS["calls"]}{DS["call"]}f{DS["sep"]}{{}}', "unclosed_tag", "never closed"),
    (f'{DS["calls"]}{DS["end"]}', "invalid_tool_call", "no complete"),
    ('<|python_tag|>brave_search.call(query="x")', "invalid_tool_call", "built-in tool syntax"),
    ('<tool_call>{"name": "f", "arguments": {}}</tool_call><answer>x</answer>', "multiple_actions", "not both"),
])
def test_tool_call_formats_refused_readably(text: str, code: str, needle: str) -> None:
    action = ToolCallParser().parse(text)
    assert action.kind == "text" and action.error is not None, action
    assert action.error.code == code and needle in action.error.message, action.error


def test_qwen3_coder_values_follow_the_schema() -> None:
    schemas = {"f": {"properties": {"s": {"type": "string"}, "n": {"type": "integer"}, "o": {"type": "object"}}}}
    text = ("<tool_call><function=f>\n<parameter=s>\n007\n</parameter>\n<parameter=n>\n7\n</parameter>\n"
            '<parameter=o>\n{"a": [1]}\n</parameter>\n</function></tool_call>')
    (call,) = ToolCallParser(schemas=lambda: schemas).parse(text).tool_calls
    assert call.arguments == {"s": "007", "n": 7, "o": {"a": [1]}}


def test_no_call_is_ever_named_after_an_argument_value() -> None:
    """The old scan took the first JSON object anywhere: ``{"name": "Quinn"}`` inside Llama-4's or
    DeepSeek's syntax became a call to a tool named "Quinn"."""
    texts = ['<function=find_contacts>{"name": "Quinn"}</function>',
             f'{DS["calls"]}{DS["call"]}function{DS["sep"]}find_contacts\n```json\n{{"name": "Quinn"}}\n```'
             f'{DS["call_end"]}{DS["end"]}',
             '[TOOL_CALLS]find_contacts[ARGS]{"name": "Quinn"}']
    for text in texts:
        assert [c.name for c in ToolCallParser().parse(text).tool_calls] == ["find_contacts"]


# -- the shared action rule (issue 21, item 6) --------------------------------------------------
@pytest.mark.parametrize(("text", "action"), [
    ("click[2]", "click[2]"),
    ("  click[2]\n", "click[2]"),
    ("<think>the second one</think>click[2]", "click[2]"),
    ("<think>a</think> <THINK>b</THINK>\nclick[2]", "click[2]"),
    ("prompt-side thoughts</think>click[2]", "click[2]"),
    ("Action: click[2]", "click[2]"),
    ("action:click[2]", "click[2]"),
    ("Thought: the second looks right.\nAction: click[2]", "click[2]"),
    ("<action>click[2]</action>", "click[2]"),
    ("I pick the second.\n<action> click[2] </action>\nDone.", "click[2]"),
    ("<think>maybe <action>buy</action></think><action>click[2]</action>", "click[2]"),
    ("<think>x</think>Action: <action>click[2]</action>", "click[2]"),  # the tag wins over the prefix
    ("He said Action: buy", "He said Action: buy"),  # a prefix only at the start
])
def test_extract_action(text: str, action: str) -> None:
    assert extract_action(text) == Extracted(action)


@pytest.mark.parametrize(("text", "code"), [
    ("<think>still thinking... click[2]", "unclosed_think"),  # nothing after an unclosed <think> counts
    ("<think>a</think><think>b click[2]", "unclosed_think"),
    ("<action>click[1]</action><action>click[2]</action>", "multiple_actions"),  # no hedging
    ("<action>click[2]", "unclosed_tag"),
    ("click[2]</action>", "unmatched_close"),
    ("<action>a</action></action>", "unmatched_close"),
    ("x" * 100_001, "too_long"),
])
def test_extract_action_refusals(text: str, code: str) -> None:
    extracted = extract_action(text)
    assert extracted.text == "" and extracted.error is not None and extracted.error.code == code


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<think>", "</think>", "<action>", "</action>", "Action:", "Thought:", "\n",
                                 "click[2]", " ", "x", "<THINK>"]), max_size=30).map("".join))
def test_extract_action_never_raises(text: str) -> None:
    extracted = extract_action(text)
    assert (extracted.error is None) or extracted.text == ""
    assert "<think>" not in extracted.text.lower() or extracted.error is None
