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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

__all__ = [
    "Action",
    "BoxedParser",
    "FirstOf",
    "HermesParser",
    "JSONParser",
    "ParseError",
    "Parser",
    "PythonBlockParser",
    "TagParser",
    "ToolCall",
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


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S)


def strip_think(text: str) -> str:
    """Drop ``<think>…</think>`` blocks (and a leading ``…</think>`` whose opening tag was in the
    prompt), so tags the model merely mentions while thinking are not taken as actions."""
    close = text.find("</think>")
    if close != -1 and "<think>" not in text[:close]:
        text = text[close + len("</think>") :]
    return _THINK_BLOCK.sub(" ", text) if "<think>" in text else text


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


def _decode_call(value: Any) -> ToolCall | str:
    """A ToolCall from ``{"name": ..., "arguments": {...}}``, or a message saying what is wrong."""
    if not isinstance(value, dict):
        return f"a tool call must be a JSON object, got {type(value).__name__}"
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return 'a tool call needs a "name" string'
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


class JSONParser(Parser):
    """Plain JSON (bare or in a ```json fence): ``{"name", "arguments"}``, a list of those, or
    ``{answer_key: ...}`` as the final answer. The first decodable JSON object (or list of
    objects) counts; invalid JSON is an error only when it mentions ``"name"`` or the answer key,
    so prose with braces stays free text."""

    name = "json"

    def __init__(self, *, answer_key: str | None = "answer", **kwargs: Any):
        super().__init__(**kwargs)
        self.answer_key = answer_key

    def _parse(self, text: str, original: str) -> Action:
        decoder = json.JSONDecoder()
        starts = [m.start() for m in re.finditer(r"\{|\[\s*\{", text)][:_MAX_JSON_STARTS]
        first_error = None
        for start in starts:
            try:
                value, _ = decoder.raw_decode(text, start)
            except RecursionError:
                first_error = first_error or ("the JSON is nested too deeply", start)
                continue
            except ValueError as e:
                first_error = first_error or (f"invalid JSON: {e}", start)
                continue
            if isinstance(value, dict) and self.answer_key and self.answer_key in value and "name" not in value:
                answer = value[self.answer_key]
                answer = answer if isinstance(answer, str) else json.dumps(answer)
                if not answer.strip():
                    return _fail(original, "empty", f'"{self.answer_key}" is empty', _snippet(text, start))
                return Action("answer", original, answer=answer.strip())
            items = value if isinstance(value, list) else [value]
            calls = [_decode_call(item) for item in items]
            bad = next((c for c in calls if isinstance(c, str)), None)
            if bad is not None or not calls:
                return _fail(original, "invalid_tool_call", bad or "the list of tool calls is empty",
                             _snippet(text, start))
            return Action("tool_call", original, tool_calls=tuple(c for c in calls if isinstance(c, ToolCall)))
        quoted = f'"{self.answer_key}"' if self.answer_key else '"name"'
        if first_error is not None and ('"name"' in text or quoted in text):  # an attempt, not LaTeX
            message, start = first_error
            return _fail(original, "invalid_json", message, _snippet(text, start))
        return Action("text", original)


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
    p.name: p for p in (TagParser, HermesParser, JSONParser, PythonBlockParser, BoxedParser)
}


def get_parser(name: str, **kwargs: Any) -> Parser:
    """A parser by name (``tags``, ``hermes``, ``json``, ``python``, ``boxed``), for configs."""
    try:
        return PARSERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown parser {name!r}; choose from {sorted(PARSERS)}") from None
