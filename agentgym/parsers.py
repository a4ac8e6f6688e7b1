"""Turn model text into a structured action: a tool call, a final answer, or free text.

Every parser has the same interface, :meth:`Parser.parse` ``(text) -> Action``, and never
raises on model text: a malformed attempt (unclosed tag, invalid JSON, two actions where one
is allowed) comes back as an :class:`Action` of kind ``"text"`` carrying a :class:`ParseError`
whose message is written for the model to read and fix. ``is_void(text)`` is SimpleTIR's void
turn: no complete tool call and no final answer.

Formats: Hermes ``<tool_call>{json}</tool_call>`` (:class:`HermesParser`), plain JSON
(:class:`JSONParser`), XML-ish tags such as ``<search>q</search>`` / ``<answer>a</answer>``
(:class:`TagParser`), fenced python blocks (:class:`PythonBlockParser`) and ``\\boxed{...}``
(:class:`BoxedParser`); :class:`FirstOf` combines them (e.g. code, else a boxed answer).
Tool schemas, validation and the tool-using env base live in :mod:`agentgym.tools`.

Pure standard library: importing this module costs microseconds.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

__all__ = [
    "Action",
    "BoxedParser",
    "Extracted",
    "FirstOf",
    "HermesParser",
    "JSONParser",
    "ParseError",
    "Parser",
    "PythonBlockParser",
    "TagParser",
    "ToolCall",
    "ToolCallParser",
    "extract_action",
    "get_parser",
]

ActionKind = Literal["tool_call", "answer", "text"]
_SNIPPET = 60


def _snippet(text: str, start: int = 0) -> str:
    piece = text[start : start + _SNIPPET]
    return piece + ("…" if len(text) > start + _SNIPPET else "")


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One parsed call: a tool name and its keyword arguments."""

    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The ``info["tool_calls"]`` / OpenAI-style form."""
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclasses.dataclass(frozen=True)
class ParseError:
    """Why text could not be parsed: ``code`` for programs, ``message`` for the model."""

    code: str
    message: str
    snippet: str = ""

    def __str__(self) -> str:
        return f"{self.message} (near {self.snippet!r})" if self.snippet else self.message


@dataclasses.dataclass(frozen=True)
class Action:
    """What the model did. ``kind="text"`` means no usable action (``error`` says why, if an
    attempt was malformed; ``None`` for plain prose)."""

    kind: ActionKind
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    error: ParseError | None = None

    @property
    def void(self) -> bool:
        """No complete tool call and no final answer (SimpleTIR's void turn)."""
        return self.kind == "text"


def _fail(text: str, code: str, message: str, snippet: str = "") -> Action:
    return Action("text", text, error=ParseError(code, message, snippet))


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def _drop_reasoning(text: str) -> tuple[str, bool]:
    """``text`` without its reasoning, and whether a ``<think>`` was left unclosed.

    Removed: every ``<think>…</think>`` block (tags matched case-insensitively), a leading
    ``…</think>`` whose opening tag was in the prompt; a later stray ``</think>`` stays (it may be
    code, e.g. ``print('</think>')``). An unclosed ``<think>`` makes the rest of the text
    reasoning: a model cut off mid-thought has not acted, so nothing it wrote after the tag may run."""
    lower = text.lower()
    if _THINK_OPEN not in lower and _THINK_CLOSE not in lower:
        return text, False
    first_close, first_open = lower.find(_THINK_CLOSE), lower.find(_THINK_OPEN)
    pos = 0
    if first_close != -1 and (first_open == -1 or first_close < first_open):
        pos = first_close + len(_THINK_CLOSE)
    kept: list[str] = []
    while True:
        start = lower.find(_THINK_OPEN, pos)
        if start == -1:
            kept.append(text[pos:])
            break
        kept.append(text[pos:start])
        end = lower.find(_THINK_CLOSE, start)
        if end == -1:
            return "".join(kept), True
        kept.append(" ")
        pos = end + len(_THINK_CLOSE)
    return "".join(kept), False


def strip_think(text: str) -> str:
    """Drop ``<think>…</think>`` blocks (and a leading ``…</think>`` whose opening tag was in the
    prompt), so tags the model merely mentions while thinking are not taken as actions. An
    unclosed ``<think>`` hides everything after it."""
    return _drop_reasoning(text)[0]


# -- what surrounds an action: one rule for every built-in env ----------------------------------
MAX_REPLY_CHARS = 100_000
_ACTION_OPEN = re.compile(r"<action>", re.I)
_ACTION_CLOSE = re.compile(r"</action>", re.I)
_ACTION_PREFIX = re.compile(r"\s*action\s*:", re.I)
_THOUGHT_PREFIX = re.compile(r"\s*thought\s*:", re.I)
_ACTION_LINE = re.compile(r"\n[ \t]*action[ \t]*:", re.I)


@dataclasses.dataclass(frozen=True)
class Extracted:
    """The action part of a reply (:func:`extract_action`): ``text``, or ``error`` saying why
    there is none (then ``text`` is ``""``)."""

    text: str
    error: ParseError | None = None


def extract_action(text: str, *, max_chars: int = MAX_REPLY_CHARS) -> Extracted:
    """The action in a model's reply, by the one rule every built-in env applies before its own
    syntax (WebShop's ``click[2]``, Sokoban's ``left``, ToolWorld's tool calls, ...):

    1. **Reasoning is dropped**: ``<think>…</think>`` blocks and a leading ``…</think>``. An
       unclosed ``<think>`` is an error (``unclosed_think``): the reply never finished thinking,
       so nothing in it counts.
    2. **``<action>…</action>``**: when the reply has one, its content is the action and the
       text around it is ignored. Two or more blocks are an error (``multiple_actions``), not
       "the first/last counts", so hedging over several actions never pays; an unclosed or
       unmatched tag is an error too.
    3. **``Action:`` prefix**: a reply that starts with ``Action:`` (optionally after a
       ReAct-style ``Thought: …`` paragraph) is what follows it.
    4. Otherwise the whole reply, stripped.

    Replies longer than ``max_chars`` are refused (``too_long``) before any scanning.
    """
    if not isinstance(text, str):
        return Extracted("", ParseError("not_text", f"the action must be text, got {type(text).__name__}"))
    if len(text) > max_chars:
        return Extracted("", ParseError("too_long", f"the reply is {len(text)} characters long; the limit is {max_chars}"))
    body, unclosed = _drop_reasoning(text)
    if unclosed:
        return Extracted("", ParseError("unclosed_think", "<think> is never closed: end the reasoning with "
                                        "</think>, then give the action"))
    opens, closes = list(_ACTION_OPEN.finditer(body)), list(_ACTION_CLOSE.finditer(body))
    if opens or closes:
        if len(opens) > 1:
            return Extracted("", ParseError("multiple_actions", f"found {len(opens)} <action> blocks; give exactly one"))
        if not opens or (closes and closes[0].start() < opens[0].start()):
            return Extracted("", ParseError("unmatched_close", "</action> has no opening <action>"))
        if not closes:
            return Extracted("", ParseError("unclosed_tag", "<action> is never closed: end it with </action>"))
        if len(closes) > 1:
            return Extracted("", ParseError("unmatched_close", "</action> appears more than once"))
        return Extracted(body[opens[0].end() : closes[0].start()].strip())
    if _THOUGHT_PREFIX.match(body) and (line := _ACTION_LINE.search(body)) is not None:
        return Extracted(body[line.end() :].strip())
    if prefix := _ACTION_PREFIX.match(body):
        return Extracted(body[prefix.end() :].strip())
    return Extracted(body.strip())


class Parser:
    """Base class: ``parse(text) -> Action``. Subclasses implement ``_parse`` on text that is
    already length-checked and stripped of thinking blocks."""

    name: ClassVar[str] = "parser"

    def __init__(self, *, max_chars: int = 100_000, ignore_think: bool = True):
        self.max_chars = max_chars
        self.ignore_think = ignore_think

    def parse(self, text: str) -> Action:
        """Parse model text; never raises on any string."""
        if not isinstance(text, str):
            return _fail(str(text), "not_text", f"the action must be text, got {type(text).__name__}")
        if len(text) > self.max_chars:
            return _fail(
                text[: self.max_chars], "too_long",
                f"the action is {len(text)} characters long; the limit is {self.max_chars}",
            )
        return self._parse(strip_think(text) if self.ignore_think else text, text)

    def _parse(self, text: str, original: str) -> Action:
        raise NotImplementedError

    def is_void(self, text: str) -> bool:
        """True when ``text`` holds no complete tool call and no final answer."""
        return self.parse(text).void


# -- XML-ish tags ------------------------------------------------------------------------------
class TagParser(Parser):
    """``<search>query</search>`` → tool call ``search(query=...)``; ``<answer>a</answer>`` →
    final answer (Search-R1's protocol, with configurable tag names).

    ``tools`` maps a tag to the argument name its content fills (default ``{"search": "query"}``;
    a sequence of tags fills ``"input"``).
    By default exactly one action is allowed, because Search-R1 silently takes the first of
    several and the model never learns that the rest were dropped.
    """

    name = "tags"

    def __init__(
        self,
        tools: Mapping[str, str] | Sequence[str] | None = None,
        answer_tag: str | None = "answer",
        *,
        allow_multiple: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if tools is None:
            tools = {"search": "query"}
        self.tools = dict(tools) if isinstance(tools, Mapping) else {tag: "input" for tag in tools}
        self.answer_tag = answer_tag
        self.allow_multiple = allow_multiple
        tags = [*self.tools, *([answer_tag] if answer_tag else [])]
        if not tags or not all(re.fullmatch(r"[A-Za-z_][\w.-]*", t) for t in tags):
            raise ValueError(f"tag names must be identifiers, got {tags}")
        names = "|".join(map(re.escape, tags))
        self._tag = re.compile(rf"<(/?)({names})\s*>")

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """The closing tags: a turn should end right after its one action."""
        return tuple(f"</{tag}>" for tag in (*self.tools, *([self.answer_tag] if self.answer_tag else [])))

    def _parse(self, text: str, original: str) -> Action:
        found: list[tuple[str, str, int]] = []
        pos = 0
        while (m := self._tag.search(text, pos)) is not None:
            closing, tag = m.group(1), m.group(2)
            if closing:
                return _fail(original, "unmatched_close", f"</{tag}> has no opening <{tag}>",
                             _snippet(text, max(0, m.start() - 20)))
            end = text.find(f"</{tag}>", m.end())
            if end == -1:
                return _fail(original, "unclosed_tag", f"<{tag}> is never closed: end it with </{tag}>",
                             _snippet(text, m.start()))
            found.append((tag, text[m.end() : end].strip(), m.start()))
            pos = end + len(tag) + 3
        if not found:
            return Action("text", original)
        tags = [tag for tag, _, _ in found]
        has_answer = self.answer_tag in tags
        if len(found) > 1 and (has_answer or not self.allow_multiple):
            listed = ", ".join(f"<{t}>" for t in tags)
            return _fail(original, "multiple_actions", f"found {len(found)} actions ({listed}); give exactly one")
        for tag, content, start in found:
            if not content:
                return _fail(original, "empty", f"<{tag}></{tag}> is empty", _snippet(text, start))
        if has_answer:
            return Action("answer", original, answer=found[0][1])
        calls = tuple(ToolCall(tag, {self.tools[tag]: content}) for tag, content, _ in found)
        return Action("tool_call", original, tool_calls=calls)


# -- JSON tool calls ---------------------------------------------------------------------------
_MAX_JSON_STARTS = 16  # bounds the scan on adversarial text such as "{{{{…"


_CALL_KEYS = frozenset({"name", "arguments", "parameters", "id", "type"})


def _decode_call(value: Any, *, need_arguments: bool = False) -> ToolCall | str:
    """A ToolCall from ``{"name": ..., "arguments": {...}}`` (or ``"parameters"``, Llama's key),
    or a message saying what is wrong. Only a call's own keys are allowed, so a record that
    happens to have a ``"name"`` (a contact quoted from an observation) is not a call; bare JSON
    must also carry its arguments (``need_arguments``)."""
    if not isinstance(value, dict):
        return f"a tool call must be a JSON object, got {type(value).__name__}"
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return 'a tool call needs a "name" string'
    extra = sorted(str(k) for k in value if k not in _CALL_KEYS)
    if extra or value.get("type", "function") != "function":
        shown = ", ".join(extra[:5]) or "type"
        return f'not a tool call: a call is {{"name": ..., "arguments": {{...}}}}, this object also has {shown}'
    if "arguments" in value and "parameters" in value:
        return f'the call of {name!r} has both "arguments" and "parameters"; give one'
    if need_arguments and "arguments" not in value and "parameters" not in value:
        return f'the call of {name!r} has no "arguments" object'
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # OpenAI serialises arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError):
            return f'the "arguments" of {name!r} are a string that is not valid JSON'
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return f'the "arguments" of {name!r} must be a JSON object, got {type(args).__name__}'
    return ToolCall(name.strip(), args)


def _loads(body: str) -> tuple[Any, str | None]:
    try:
        return json.loads(body), None
    except RecursionError:
        return None, "the JSON is nested too deeply"
    except ValueError as e:
        return None, f"invalid JSON: {e}"


class HermesParser(Parser):
    """Hermes / Qwen tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
    any number of them; ``<answer>…</answer>`` (``answer_tag``) is the final answer."""

    name = "hermes"

    def __init__(self, *, answer_tag: str | None = "answer", tag: str = "tool_call", **kwargs: Any):
        super().__init__(**kwargs)
        self.open, self.close = f"<{tag}>", f"</{tag}>"
        self.answer = TagParser((), answer_tag, ignore_think=False) if answer_tag else None

    def _parse(self, text: str, original: str) -> Action:
        calls: list[ToolCall] = []
        pos = 0
        while (start := text.find(self.open, pos)) != -1:
            end = text.find(self.close, start)
            if end == -1:
                return _fail(original, "unclosed_tag", f"{self.open} is never closed: end it with {self.close}",
                             _snippet(text, start))
            value, error = _loads(text[start + len(self.open) : end])
            call = _decode_call(value) if error is None else error
            if isinstance(call, str):
                return _fail(original, "invalid_tool_call", f"tool call {len(calls) + 1}: {call}",
                             _snippet(text, start))
            calls.append(call)
            pos = end + len(self.close)
        stray = text.find(self.close, pos)
        if not calls and stray != -1:
            return _fail(original, "unmatched_close", f"{self.close} has no opening {self.open}",
                         _snippet(text, max(0, stray - 20)))
        answer = self.answer.parse(text) if self.answer else Action("text", text)
        if calls and answer.kind == "answer":
            return _fail(original, "multiple_actions", "give either tool calls or a final answer, not both")
        if calls:
            return Action("tool_call", original, tool_calls=tuple(calls))
        return dataclasses.replace(answer, text=original)


_FENCE = re.compile(r"```[ \t]*(json|JSON|)[ \t]*\n(.*?)\n?[ \t]*```", re.S)
_END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "</s>", "<|im_end|>", "<|end|>")


def _trim(text: str) -> str:
    """``text`` stripped of whitespace and of end-of-turn tokens some servers leave in."""
    text = text.strip()
    while (end := next((t for t in _END_TOKENS if text.endswith(t)), None)) is not None:
        text = text[: -len(end)].rstrip()
    return text


class JSONParser(Parser):
    """Plain JSON: ``{"name", "arguments"}``, a list of those, or ``{answer_key: ...}`` as the
    final answer. JSON counts only when it is the **whole** action, or the whole content of a
    ```` ```json ```` (or bare ```` ``` ````) fenced block: JSON quoted inside prose ("I should
    NOT do {...}") is prose. A bare call must be exactly a call (``name`` and ``arguments`` or
    ``parameters``, nothing else but ``id``/``type``), so a record quoted back from an
    observation is never a call. Invalid JSON in that position is an error when it mentions
    ``"name"`` or the answer key, else free text (LaTeX, sets)."""

    name = "json"

    def __init__(self, *, answer_key: str | None = "answer", **kwargs: Any):
        super().__init__(**kwargs)
        self.answer_key = answer_key

    def _parse(self, text: str, original: str) -> Action:
        whole = _trim(text)
        bodies = [whole] if whole[:1] in ("{", "[") else [m.group(2).strip() for m in _FENCE.finditer(text)]
        bodies = [b for b in bodies if b[:1] in ("{", "[")]
        calls: list[ToolCall] = []
        for body in bodies[:_MAX_JSON_STARTS]:
            value, error = _loads(body)
            if error is not None:
                if '"name"' in body or (self.answer_key and f'"{self.answer_key}"' in body):
                    return _fail(original, "invalid_json", error, _snippet(body))
                continue
            if isinstance(value, dict) and self.answer_key and self.answer_key in value and "name" not in value:
                if calls or len(bodies) > 1:
                    return _fail(original, "multiple_actions", "give either tool calls or a final answer, not both")
                answer = value[self.answer_key]
                answer = answer if isinstance(answer, str) else json.dumps(answer)
                if not answer.strip():
                    return _fail(original, "empty", f'"{self.answer_key}" is empty', _snippet(body))
                return Action("answer", original, answer=answer.strip())
            items = value if isinstance(value, list) else [value]
            decoded = [_decode_call(item, need_arguments=True) for item in items]
            bad = next((c for c in decoded if isinstance(c, str)), None)
            if bad is not None or not decoded:
                return _fail(original, "invalid_tool_call", bad or "the list of tool calls is empty", _snippet(body))
            calls += [c for c in decoded if isinstance(c, ToolCall)]
        return Action("tool_call", original, tool_calls=tuple(calls)) if calls else Action("text", original)


# -- the tool-call formats models emit ---------------------------------------------------------
_FUNCTION = re.compile(r"<function=([^>\s]*)>(.*?)</function>", re.S)
_PARAMETER = re.compile(r"<parameter=([^>\s]*)>(.*?)</parameter>", re.S)
_MISTRAL = "[TOOL_CALLS]"
_MISTRAL_NAME = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(?:\[CALL_ID\]\s*[\w\-]+\s*)?(?:\[ARGS\])?\s*")
_DS_CALLS_BEGIN, _DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN, _DS_CALL_END, _DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
_PYTHON_TAG = "<|python_tag|>"
Schemas = Mapping[str, Mapping[str, Any]]


class ToolCallParser(Parser):
    """Tool calls in the formats real models emit; anything else is prose. Recognised, in this
    order (the first syntax present is parsed; text outside it is prose and never runs):

    * Hermes / Qwen2.5: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, and Qwen3-Coder's
      XML body ``<tool_call><function=NAME><parameter=P>value</parameter>…</function></tool_call>``;
    * Llama-4 / Functionary: ``<function=NAME>{json arguments}</function>`` (or ``<parameter=…>`` bodies);
    * Mistral: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, …]`` and the v11+ form
      ``[TOOL_CALLS]NAME[ARGS]{json}`` (``[CALL_ID]id`` allowed), one per ``[TOOL_CALLS]``;
    * DeepSeek-V3 ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>``
      and V3.1 ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>``;
    * Llama-3.1/3.3: ``<|python_tag|>`` followed by JSON calls (``;``-separated); its built-in
      ``tool.call(...)`` syntax is refused with a readable error;
    * otherwise :class:`JSONParser`: JSON that is the whole action or a whole fenced block.

    ``<answer>…</answer>`` (``answer_tag``) or a whole ``{"answer": ...}`` is the final answer.
    ``schemas`` (tool name → JSON schema of its parameters, or a callable returning that map)
    types Qwen3-Coder's text parameter values: a ``string`` parameter keeps its text, others are
    read as JSON (without a schema: JSON when it parses, else the text).
    """

    name = "tool_calls"

    def __init__(self, *, answer_tag: str | None = "answer", answer_key: str | None = "answer",
                 schemas: Schemas | Callable[[], Schemas] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.answer_tag = answer_tag
        self.answer = TagParser((), answer_tag, ignore_think=False) if answer_tag else None
        self.json = JSONParser(answer_key=answer_key, ignore_think=False, max_chars=self.max_chars)
        self.schemas = schemas

    def _schema(self, tool: str) -> Mapping[str, Any]:
        schemas = self.schemas() if callable(self.schemas) else self.schemas
        return (schemas or {}).get(tool, {}).get("properties", {})

    def _parse(self, text: str, original: str) -> Action:
        for marker, reader in (("tool_call>", self._hermes), ("<function=", self._functions),
                               (_MISTRAL, self._mistral), ("tool▁call", self._deepseek),
                               (_PYTHON_TAG, self._python_tag)):
            if marker in text:
                found = reader(text)
                break
        else:
            found = None
        if isinstance(found, ParseError):
            return Action("text", original, error=found)
        answer = self.answer.parse(text) if self.answer else Action("text", text)
        if found is None:
            if answer.kind == "text" and answer.error is None:
                return dataclasses.replace(self.json.parse(text), text=original)
            return dataclasses.replace(answer, text=original)
        if answer.kind == "answer":
            return _fail(original, "multiple_actions", "give either tool calls or a final answer, not both")
        if not found:
            return _fail(original, "invalid_tool_call", "the tool-call block holds no call")
        return Action("tool_call", original, tool_calls=tuple(found))

    # -- one reader per format: a list of calls, or the error ------------------------------
    @staticmethod
    def _error(message: str, text: str = "", at: int = 0, code: str = "invalid_tool_call") -> ParseError:
        return ParseError(code, message, _snippet(text, at) if text else "")

    def _hermes(self, text: str) -> list[ToolCall] | ParseError:
        calls: list[ToolCall] = []
        pos = 0
        while (start := text.find("<tool_call>", pos)) != -1:
            end = text.find("</tool_call>", start)
            if end == -1:
                return self._error("<tool_call> is never closed: end it with </tool_call>", text, start, "unclosed_tag")
            body = text[start + len("<tool_call>") : end].strip()
            found = self._function(body) if body.startswith("<function=") else self._json_call(body)
            if isinstance(found, str):
                return self._error(f"tool call {len(calls) + 1}: {found}", text, start)
            calls.append(found)
            pos = end + len("</tool_call>")
        stray = text.find("</tool_call>", pos)
        if stray != -1:
            return self._error("</tool_call> has no opening <tool_call>", text, max(0, stray - 20), "unmatched_close")
        return calls

    def _functions(self, text: str) -> list[ToolCall] | ParseError:
        calls: list[ToolCall] = []
        pos = 0
        while (start := text.find("<function=", pos)) != -1:
            end = text.find("</function>", start)
            if end == -1:
                return self._error("<function=…> is never closed: end it with </function>", text, start,
                                   "unclosed_tag")
            found = self._function(text[start : end + len("</function>")])
            if isinstance(found, str):
                return self._error(f"tool call {len(calls) + 1}: {found}", text, start)
            calls.append(found)
            pos = end + len("</function>")
        return calls

    def _function(self, body: str) -> ToolCall | str:
        """``<function=NAME>…</function>`` (the whole of ``body``): JSON arguments or parameters."""
        match = _FUNCTION.fullmatch(body.strip())
        if match is None:
            return "expected <function=NAME>…</function>"
        name, inner = match.group(1).strip(), match.group(2).strip()
        if not name:
            return "<function=> needs a tool name"
        if not inner:
            return ToolCall(name, {})
        if inner.startswith("{"):
            value, error = _loads(inner)
            if error is not None:
                return f"the arguments of {name!r}: {error}"
            return ToolCall(name, value) if isinstance(value, dict) else f"the arguments of {name!r} must be an object"
        args: dict[str, Any] = {}
        properties = self._schema(name)
        rest = _PARAMETER.sub("", inner)
        if rest.strip():
            return f"unexpected text in <function={name}>: {rest.strip()[:40]!r}; give <parameter=NAME>value</parameter>"
        for param in _PARAMETER.finditer(inner):
            key, raw = param.group(1).strip(), param.group(2)
            raw = raw[1:] if raw.startswith("\n") else raw
            raw = raw[:-1] if raw.endswith("\n") else raw
            if not key or key in args:
                return f"parameter {key!r} of {name!r} is empty or given twice"
            args[key] = self._typed(raw, properties.get(key, {}))
        return ToolCall(name, args)

    @staticmethod
    def _typed(raw: str, schema: Mapping[str, Any]) -> Any:
        kinds = schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
        if "string" in kinds or ("enum" in schema and all(isinstance(v, str) for v in schema["enum"])):
            return raw
        value, error = _loads(raw.strip())
        return raw if error is not None else value

    @staticmethod
    def _json_call(body: str, *, need_arguments: bool = False) -> ToolCall | str:
        value, error = _loads(body)
        return error if error is not None else _decode_call(value, need_arguments=need_arguments)

    def _mistral(self, text: str) -> list[ToolCall] | ParseError:
        chunks = text.split(_MISTRAL)[1:]
        calls: list[ToolCall] = []
        decoder = json.JSONDecoder()
        for chunk in chunks:
            body = _trim(chunk)
            if body[:1] in ("[", "{"):  # the pre-v11 form: a JSON list of calls
                value, error = _loads(body)
                if error is not None:
                    return self._error(f"[TOOL_CALLS]: {error}", body)
                items = value if isinstance(value, list) else [value]
                for item in items:
                    found = _decode_call(item)
                    if isinstance(found, str):
                        return self._error(f"[TOOL_CALLS]: {found}", body)
                    calls.append(found)
                continue
            head = _MISTRAL_NAME.match(body)
            if head is None or head.end() >= len(body) or body[head.end()] != "{":
                return self._error("expected [TOOL_CALLS]NAME[ARGS]{json arguments}", body)
            try:
                args, end = decoder.raw_decode(body, head.end())
            except (ValueError, RecursionError) as e:
                return self._error(f"[TOOL_CALLS]{head.group(1)}: invalid JSON arguments: {e}", body)
            if body[end:].strip() or not isinstance(args, dict):
                return self._error(f"[TOOL_CALLS]{head.group(1)}: the arguments must be one JSON object", body)
            calls.append(ToolCall(head.group(1), args))
        return calls

    def _deepseek(self, text: str) -> list[ToolCall] | ParseError:
        calls: list[ToolCall] = []
        pos = 0
        while (start := text.find(_DS_CALL_BEGIN, pos)) != -1:
            end = text.find(_DS_CALL_END, start)
            if end == -1:
                return self._error("a DeepSeek tool call is never closed with <｜tool▁call▁end｜>", text, start,
                                   "unclosed_tag")
            kind, sep, rest = text[start + len(_DS_CALL_BEGIN) : end].partition(_DS_SEP)
            if not sep:
                return self._error("a DeepSeek tool call needs NAME<｜tool▁sep｜>ARGUMENTS", text, start)
            if kind.strip() == "function" and not rest.lstrip().startswith("{"):  # V3: type, then name and fence
                name, _, args_text = rest.partition("\n")
                fence = _FENCE.search(args_text)
                args_text = fence.group(2) if fence else args_text
            else:  # V3.1: name, then the JSON arguments
                name, args_text = kind, rest
            name = name.strip()
            value, error = _loads(args_text.strip())
            if not name or error is not None or not isinstance(value, dict):
                reason = error or "the arguments must be a JSON object"
                return self._error(f"DeepSeek tool call {name!r}: {reason}", text, start)
            calls.append(ToolCall(name, value))
            pos = end + len(_DS_CALL_END)
        if not calls:
            return self._error("found DeepSeek tool-call tokens but no complete <｜tool▁call▁begin｜>…"
                               "<｜tool▁call▁end｜> call", text, text.find("tool▁call"))
        return calls

    def _python_tag(self, text: str) -> list[ToolCall] | ParseError:
        body = _trim(text[text.index(_PYTHON_TAG) + len(_PYTHON_TAG) :])
        if not body.startswith(("{", "[")):
            return self._error("<|python_tag|> built-in tool syntax is not supported: write the call as JSON, "
                               '{"name": ..., "parameters": {...}}', body)
        calls: list[ToolCall] = []
        for piece in body.split(";") if not body.startswith("[") else [body]:
            value, error = _loads(piece.strip())
            if error is not None:
                return self._error(f"<|python_tag|>: {error}", body)
            for item in value if isinstance(value, list) else [value]:
                found = _decode_call(item)
                if isinstance(found, str):
                    return self._error(f"<|python_tag|>: {found}", body)
                calls.append(found)
        return calls


# -- code blocks and boxed answers -------------------------------------------------------------
class PythonBlockParser(Parser):
    """The first COMPLETE fenced block tagged ```` ```python ````, ```` ```py ```` or bare
    ```` ``` ```` becomes ``python(code=...)`` (SimpleTIR). Blocks in other languages are skipped;
    an unterminated block does not count (the model was cut off mid-code)."""

    name = "python"
    languages: ClassVar[frozenset[str]] = frozenset({"python", "py", ""})
    #: Where a turn that runs a block should end: a closing fence on its own line. An opening
    #: fence carries its language (```` ```python ````), so it does not match; a bare opening
    #: ```` ``` ```` does (prompts ask for ```` ```python ````). So does the closing fence of a
    #: block in another language: a policy that stops ends such a turn before any python block.
    stop_sequences: ClassVar[tuple[str, ...]] = ("\n```\n",)

    def __init__(self, *, tool_name: str = "python", **kwargs: Any):
        super().__init__(**kwargs)
        self.tool_name = tool_name

    def block_span(self, text: str) -> tuple[int, int] | None:
        """``(start, end)`` of the block :meth:`parse` would run, from its opening fence to just
        past its closing one; None when there is no complete one."""
        found = self._first_block(text)
        return (found[0], found[2] + 3) if found and found[2] != -1 else None

    def _first_block(self, text: str) -> tuple[int, int, int] | None:
        """(opening fence, first code character, closing fence or -1 when unterminated) of the first
        block in one of ``languages``."""
        pos = 0
        while (start := text.find("```", pos)) != -1:
            newline = text.find("\n", start + 3)
            info = text[start + 3 : newline if newline != -1 else len(text)].strip().lower()
            close = text.find("```", newline + 1) if newline != -1 else -1
            if info in self.languages:
                return start, newline + 1, close
            if close == -1:
                return None
            pos = close + 3
        return None

    def _parse(self, text: str, original: str) -> Action:
        found = self._first_block(text)
        if found is None:
            return Action("text", original)
        start, body, close = found
        if close == -1:
            return _fail(original, "unclosed_code_block", "the ```python block is never closed with ```",
                         _snippet(text, start))
        code = text[body:close]
        code = code[:-1] if code.endswith("\n") else code
        if not code.strip():
            return _fail(original, "empty", "the code block is empty", _snippet(text, start))
        return Action("tool_call", original, tool_calls=(ToolCall(self.tool_name, {"code": code}),))


class BoxedParser(Parser):
    r"""The last complete ``\boxed{...}`` (or ``\fbox{...}``) is the final answer; nested braces
    are matched, escaped ``\{`` ``\}`` are not counted."""

    name = "boxed"
    _open = re.compile(r"\\(?:boxed|fbox)\s*\{")

    def _parse(self, text: str, original: str) -> Action:
        last_answer, unclosed = None, None
        for m in self._open.finditer(text):
            depth, i = 1, m.end()
            while i < len(text) and depth:
                ch = text[i]
                if ch == "\\":
                    i += 2
                    continue
                depth += (ch == "{") - (ch == "}")
                i += 1
            if depth:
                unclosed = m.start()
                break  # everything after an unclosed box is inside it
            last_answer = (text[m.end() : i - 1].strip(), m.start())
        if last_answer is None:
            if unclosed is not None:
                return _fail(original, "unclosed_boxed", r"\boxed{ is never closed with }", _snippet(text, unclosed))
            return Action("text", original)
        answer, start = last_answer
        if not answer:
            return _fail(original, "empty", r"\boxed{} is empty", _snippet(text, start))
        return Action("answer", original, answer=answer)


class FirstOf(Parser):
    """Try parsers in order; the first action that is not free text wins. If none finds one,
    the first malformed attempt's error is reported (e.g. code first, then a boxed answer)."""

    name = "first_of"

    def __init__(self, *parsers: Parser, **kwargs: Any):
        super().__init__(**kwargs)
        if not parsers:
            raise ValueError("FirstOf needs at least one parser")
        self.parsers = parsers

    def _parse(self, text: str, original: str) -> Action:
        results = [p.parse(original) for p in self.parsers]
        return next((r for r in results if not r.void), None) or next(
            (r for r in results if r.error), Action("text", original)
        )


PARSERS: dict[str, type[Parser]] = {
    p.name: p for p in (TagParser, HermesParser, JSONParser, ToolCallParser, PythonBlockParser, BoxedParser)
}


def get_parser(name: str, **kwargs: Any) -> Parser:
    """A parser by name (``tags``, ``hermes``, ``json``, ``tool_calls``, ``python``, ``boxed``), for configs."""
    try:
        return PARSERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown parser {name!r}; choose from {sorted(PARSERS)}") from None
