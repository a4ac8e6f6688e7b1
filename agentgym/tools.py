"""The tool layer: typed Python functions as tools, and :class:`ToolEnv`, a text env that runs them.

* A **tool** is a typed Python function. :meth:`Tool.from_function` derives its JSON schema from
  the signature and docstring (:func:`tool_schema`: nested containers, ``Optional``,
  ``Literal``/``Enum``, defaults, dataclasses and ``TypedDict``), and the call validates the
  model's arguments against that schema (:func:`validate_arguments`) and converts JSON values
  back to the annotated types (enum members, dataclass instances, tuples) before calling.
* **Model text → calls.** The action is always a string. After the shared action rule
  (:func:`~agentgym.parsers.extract_action`), a call is only what a declared call syntax says
  (:class:`~agentgym.parsers.ToolCallParser`): Hermes/Qwen ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>`` (several per turn, capped), Qwen3-Coder XML, Llama-4 ``<function=…>``,
  Mistral ``[TOOL_CALLS]``, DeepSeek, Llama ``<|python_tag|>``, or JSON that is the whole action
  (or a whole fenced block); JSON inside prose never runs. ``<answer>…</answer>`` or
  ``{"answer": ...}`` is the final answer. Structured OpenAI ``tool_calls`` are turned into the
  same Hermes text by :func:`format_tool_calls`, so env, trajectory and trainer see one format.
* **Errors, and whose fault they are.** Every call gets an entry in ``info["tool_calls"]``:
  ``{"name", "arguments", "result"}`` or ``{"name", "arguments", "error", "error_kind"}``.

  ===============================================  =============  ==========================
  what happened                                    ``error_kind``  step ``info["failure"]``
  ===============================================  =============  ==========================
  malformed call, unknown tool, bad/oversized arg  ``agent``      ``None`` (episode goes on)
  the tool raised :class:`ToolError`               ``agent``      ``None`` (episode goes on)
  the tool raised anything else (a bug in the env) ``infra``      ``"infra"`` (episode goes
                                                                  on; the trajectory is
                                                                  masked in training)
  the tool raised :class:`~agentgym.core.InfraError` —            raised: the engine ends the
                                                                  episode, ``failure="infra"``
  ===============================================  =============  ==========================

  In every non-raising case the agent reads a clear message in the ``role="tool"``
  observation and ``info["parse_error"]`` is set. So a tool author raises :class:`ToolError`
  for "bad id", "not allowed" and the like; an unexpected exception is never blamed on the agent.

Pure standard library: importing this module costs microseconds.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from agentgym.core import Failure, InfraError, StepResult, TextEnv
from agentgym.errors import ToolError
from agentgym.parsers import Action, ToolCall, ToolCallParser, extract_action

__all__ = [
    "Tool",
    "ToolEnv",
    "ToolError",
    "describe_tool_compact",
    "format_tool_calls",
    "tool",
    "tool_schema",
    "validate_arguments",
]


# -- schemas from Python types -----------------------------------------------------------------
_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _json_schema(tp: Any) -> dict[str, Any]:
    """JSON schema of a type hint (the subset tool arguments use); ``{}`` accepts anything."""
    if tp is Any or tp is inspect.Parameter.empty:
        return {}
    if tp in _JSON_TYPES:
        return {"type": _JSON_TYPES[tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        kinds = {_JSON_TYPES.get(type(a)) for a in args}
        return {"enum": list(args), **({"type": kinds.pop()} if len(kinds) == 1 and None not in kinds else {})}
    if origin in (typing.Union, types.UnionType):
        options = [_json_schema(a) for a in args]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if origin is typing.Annotated:
        return _json_schema(args[0])
    if tp in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        item = args[0] if args and (origin is not tuple or len(args) == 2 and args[1] is ...) else None
        return {"type": "array", **({"items": _json_schema(item)} if item is not None else {})}
    if tp is dict or origin in (dict, Mapping):
        return {"type": "object", **({"additionalProperties": _json_schema(args[1])} if len(args) == 2 else {})}
    if isinstance(tp, type) and typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        return {"type": "object", "properties": {k: _json_schema(v) for k, v in hints.items()},
                "required": sorted(tp.__required_keys__)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        return {
            "type": "object",
            "properties": {f.name: _json_schema(hints.get(f.name, Any)) for f in fields},
            "required": [f.name for f in fields
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING],
            "additionalProperties": False,
        }
    return {}


def _convert(value: Any, tp: Any) -> Any:
    """A validated JSON value as the annotated type: enum members, dataclasses, tuples, sets."""
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: _convert(v, hints.get(k, Any)) for k, v in value.items()})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _convert(value, args[0])
    if origin in (typing.Union, types.UnionType):
        for option in args:  # the first option the value validates against
            if not validate_arguments(_json_schema(option), value):
                return _convert(value, option)
        return value
    if isinstance(value, list) and (tp in (tuple, set, frozenset) or origin in (list, tuple, set, frozenset)):
        item = args[0] if args and (origin is not tuple or len(args) == 2 and args[1] is ...) else None
        items = [_convert(v, item) for v in value] if item is not None else value
        if origin is tuple and args and args[-1] is not ...:
            items = [_convert(v, t) for v, t in zip(value, args, strict=False)]
        container = origin or tp
        return items if container in (list, Sequence) else container(items)
    if isinstance(value, dict) and origin in (dict, Mapping) and len(args) == 2:
        return {k: _convert(v, args[1]) for k, v in value.items()}
    return value


_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?)\s*:?\s*$", re.I
)
_ARG_SECTIONS = {"args", "arguments", "parameters", "params"}
_REST_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_REST_OTHER = re.compile(r"^\s*:(returns?|raises?|rtype|type)\b")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)(\s*\([^)]*\))?(\s*):\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google, NumPy or reST style docstring."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None while in the description, then "args" or "other"
    base: int | None = None  # indentation of parameter names in an args section
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if m := _REST_PARAM.match(line):
            section, current = "rest", m.group(1)
            params[current] = m.group(2).strip()
            continue
        if _REST_OTHER.match(line):
            section, current = "other", None
            continue
        if header := _SECTION.match(line):
            section = "args" if header.group(1).lower() in _ARG_SECTIONS else "other"
            base, current = None, None
            continue
        if section is None:
            description.append(line)
            continue
        if section == "other" or not stripped or set(stripped) == {"-"}:
            continue
        indent = len(line) - len(line.lstrip())
        if section == "args":
            base = indent if base is None else base
            if indent <= base and (m := _ARG_LINE.match(stripped)):
                current = m.group(1)
                numpy_style = bool(m.group(3)) and not m.group(2)  # "name : type", text below
                params[current] = "" if numpy_style else m.group(4).strip()
                continue
        if current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    text = "\n".join(description).strip()
    return re.sub(r"\s*\n\s*\n\s*", "\n\n", text), params


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):  # an annotation that cannot be resolved: schema without it
        return {}


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters a model fills: not ``self``/``cls``, ``*args`` or ``**kwargs``."""
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def tool_schema(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """OpenAI function-calling schema of ``fn`` from its signature, type hints and docstring.

    ``{"type": "function", "function": {"name", "description", "parameters"}}``; parameters
    without a default are required; ``self``/``*args``/``**kwargs`` are left out. Unless ``fn``
    takes ``**kwargs``, other arguments are refused (``additionalProperties: false``), so a
    misspelt argument name is reported to the model instead of being dropped.
    """
    doc_description, param_docs = _parse_docstring(inspect.getdoc(fn) or "")
    hints = _hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in _parameters(fn):
        schema = _json_schema(hints.get(param.name, param.annotation))
        if param_docs.get(param.name):
            schema["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif isinstance(param.default, enum.Enum):
            schema["default"] = param.default.value
        elif param.default is None or isinstance(param.default, (str, int, float, bool)):
            schema["default"] = param.default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        parameters["additionalProperties"] = False
    return {
        "type": "function",
        "function": {
            "name": name or fn.__name__,
            "description": doc_description if description is None else description,
            "parameters": parameters,
        },
    }


# -- validation --------------------------------------------------------------------------------
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, dict),
}
_MAX_ERRORS = 5


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "integer", float: "number"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _same(value: Any, option: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return value == option and isinstance(value, bool) == isinstance(option, bool)


def _validate(schema: Mapping[str, Any], value: Any, path: str, errors: list[str]) -> None:
    if len(errors) >= _MAX_ERRORS:
        return
    where = f"{path}: " if path else ""
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf", schema.get("oneOf"))
        if not any(not validate_arguments(option, value) for option in options):
            kinds = [o.get("type", "…") for o in options]
            errors.append(f"{where}expected one of {kinds}, got {_type_name(value)} {_show(value)}")
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPE_CHECKS.get(k, lambda v: True)(value) for k in kinds):
            expected = " or ".join(kinds)
            errors.append(f"{where}expected {expected}, got {_type_name(value)} {_show(value)}")
            return
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{where}must be one of {json.dumps(schema['enum'])}, got {_show(value)}")
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}missing required argument {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in properties:
                _validate(properties[key], item, sub, errors)
            elif extra is False:
                allowed = ", ".join(properties) or "none"
                errors.append(f"{where}unexpected argument {key!r} (allowed: {allowed})")
            elif isinstance(extra, Mapping):
                _validate(extra, item, sub, errors)
    elif isinstance(value, (list, tuple)) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            _validate(schema["items"], item, f"{path}[{i}]", errors)


def validate_arguments(schema: Mapping[str, Any], arguments: Any) -> list[str]:
    """Check ``arguments`` against a JSON schema; human-readable errors, ``[]`` when valid.

    Covers what tool schemas use: ``type`` (one or several), ``enum``, ``properties``,
    ``required``, ``additionalProperties``, ``items``, ``anyOf``/``oneOf``. Unknown keywords
    are ignored, so any server's schema can be checked without failing on what we do not know.
    """
    errors: list[str] = []
    _validate(schema, arguments, "", errors)
    return errors


# -- tools -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Tool:
    """A callable the agent may use: ``fn(**arguments)``; ``parameters`` is a JSON schema object."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    arg_types: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)  # for conversion

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None) -> Tool:
        """A tool from a typed function (or bound method): schema from signature + docstring."""
        spec = tool_schema(fn, name=name, description=description)["function"]
        hints = _hints(fn)
        types_ = {p.name: hints.get(p.name, Any) for p in _parameters(fn)}
        return cls(spec["name"], spec["description"], spec["parameters"], fn, types_)

    def openai_schema(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}``: what a policy sends as ``tools=[...]``."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def __call__(self, arguments: Mapping[str, Any]) -> Any:
        """Validate, convert to the annotated types, call. Bad arguments raise :class:`ToolError`."""
        errors = validate_arguments(self.parameters, dict(arguments))
        if errors:
            raise ToolError(f"invalid arguments for {self.name}: " + "; ".join(errors))
        return self.fn(**{k: _convert(v, self.arg_types.get(k, Any)) for k, v in arguments.items()})


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
         description: str | None = None) -> Any:
    """Mark a :class:`ToolEnv` method (or a function) as a tool: ``@tool`` or ``@tool(name=...)``.

    The function is returned unchanged; :class:`ToolEnv` collects the marked methods of its class.
    """
    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__agentgym_tool__ = {"name": name, "description": description}  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def _call_parts(call: Any) -> tuple[str, Any]:
    """(name, arguments) of a call in any common shape: ToolCall, ``{"name", "arguments"}``,
    OpenAI's ``{"function": {"name", "arguments": "<json>"}}``, or an SDK object with ``.function``."""
    if isinstance(call, ToolCall):
        return call.name, call.arguments
    function = call.get("function", call) if isinstance(call, Mapping) else getattr(call, "function", call)
    if isinstance(function, Mapping):
        name, arguments = function.get("name"), function.get("arguments", {})
    else:
        name, arguments = getattr(function, "name", None), getattr(function, "arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # kept as the raw string: the env reports the invalid JSON to the model
    return str(name), arguments


def format_tool_calls(calls: Iterable[Any]) -> str:
    """Structured tool calls as Hermes text, exactly as Qwen2.5's chat template renders them:
    ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``, one block per call,
    newline-separated. Policies turn OpenAI ``tool_calls`` into this, so the env parses one format."""
    blocks = []
    for call in calls:
        name, arguments = _call_parts(call)
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        blocks.append(f"<tool_call>\n{body}\n</tool_call>")
    return "\n".join(blocks)


def _brief_type(schema: Mapping[str, Any]) -> str:
    """A short type for the compact prompt: ``string``, ``"a"|"b"``, ``array[integer]``, ``{city, zip}``."""
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return "|".join(_brief_type(o) for o in schema["anyOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return "|".join(kind)
    if kind == "array" and "items" in schema:
        return f"array[{_brief_type(schema['items'])}]"
    if kind == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        fields = ", ".join(f"{k}: {_brief_type(v)}" + ("" if k in required else "?")
                           for k, v in schema["properties"].items())
        return "{" + fields + "}"
    return str(kind)


def describe_tool_compact(item: Tool) -> str:
    """One line per tool, ``name(arg: type, opt: type = default): first sentence``: a tenth of
    the JSON schema's length, for small models and short contexts."""
    props, required = item.parameters.get("properties", {}), set(item.parameters.get("required", []))
    args = []
    for name, schema in props.items():
        arg = f"{name}: {_brief_type(schema)}"
        if name not in required:
            arg += f" = {json.dumps(schema['default'])}" if "default" in schema else "?"
        args.append(arg)
    summary = item.description.split("\n\n")[0].replace("\n", " ")
    return f"- {item.name}({', '.join(args)}): {summary}"


def _format_result(value: Any) -> str:
    if value is None:
        return "OK"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


# -- the env base ------------------------------------------------------------------------------
class ToolEnv(TextEnv):
    """A text env whose actions are tool calls (see the module docstring for the formats).

    Tools come from ``tools=[...]`` (functions or :class:`Tool`) plus the class's methods marked
    with :func:`tool`. Subclasses implement ``_reset`` (the task) and usually :meth:`on_answer`
    (the final answer: reward, done); they may override :meth:`call_tool` (how a call runs —
    the one override point, e.g. forwarding to an MCP server), :meth:`after_calls` (react to
    the calls of a turn, e.g. end the episode) and :meth:`state_key`.

    ``tool_prompt``: the system prompt lists the tools as JSON schemas (``"json"``) or one
    line each (``"compact"``, for small models). Limits: ``max_calls_per_turn`` (more calls in one turn: none runs, the model is told),
    ``max_arg_chars`` (the JSON size of one call's arguments), ``max_result_chars`` (a longer
    result is cut, with a note), ``max_action_chars`` (a longer action is not parsed).
    """

    system_prompt_template: ClassVar[str] = (
        "You can call tools. To call one, write <tool_call>{{\"name\": NAME, \"arguments\": {{...}}}}</tool_call>"
        " (several blocks per turn are allowed, at most {max_calls}). Each result comes back in the next "
        "message. When you are done, give the final answer as <answer>...</answer>.\n\nTools:\n{tools}"
    )
    threaded_async: ClassVar[bool] = False  # in-process tools are fast; override when they block

    def __init__(
        self,
        tools: Iterable[Callable[..., Any] | Tool] = (),
        *,
        max_calls_per_turn: int = 8,
        max_arg_chars: int = 8_192,
        max_result_chars: int = 8_192,
        max_action_chars: int = 100_000,
        tool_prompt: Literal["json", "compact"] = "json",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if max_calls_per_turn < 1:
            raise ValueError("max_calls_per_turn must be at least 1")
        if tool_prompt not in ("json", "compact"):
            raise ValueError(f"tool_prompt must be 'json' or 'compact', got {tool_prompt!r}")
        self.tool_prompt = tool_prompt
        self.max_calls_per_turn = max_calls_per_turn
        self.max_arg_chars = max_arg_chars
        self.max_result_chars = max_result_chars
        self.max_action_chars = max_action_chars
        self._parser = ToolCallParser(max_chars=max_action_chars, ignore_think=False,
                                      schemas=lambda: {n: t.parameters for n, t in self.tools.items()})
        self.tools: dict[str, Tool] = {}
        self._prompt: str | None = None
        for member in self._marked_methods():
            mark = member.__agentgym_tool__
            self.add_tool(Tool.from_function(member, name=mark["name"], description=mark["description"]))
        for item in tools:
            self.add_tool(item if isinstance(item, Tool) else Tool.from_function(item))
        self.history: list[dict[str, Any]] = []  # every call of the episode with its outcome

    def _marked_methods(self) -> list[Callable[..., Any]]:
        names = [n for c in reversed(type(self).__mro__) for n, v in vars(c).items()
                 if callable(v) and hasattr(v, "__agentgym_tool__")]
        return [getattr(self, n) for n in dict.fromkeys(names)]

    def add_tool(self, item: Tool) -> None:
        """Add (or replace) a tool by name."""
        self.tools[item.name] = item
        self._prompt = None

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The tools in OpenAI format: what a policy sends as ``tools=[...]``."""
        return [t.openai_schema() for t in self.tools.values()]

    @property
    def system_prompt(self) -> str:  # type: ignore[override]
        """How to call tools, and each tool's schema (JSON, or one compact line per tool); built
        once (the engine asks for it every episode)."""
        if self._prompt is None:
            if self.tool_prompt == "compact":
                listing = "\n".join(describe_tool_compact(t) for t in self.tools.values())
            else:
                listing = "\n".join(json.dumps(s["function"], ensure_ascii=False) for s in self.tool_schemas())
            self._prompt = self.system_prompt_template.format(max_calls=self.max_calls_per_turn, tools=listing)
        return self._prompt

    # -- hooks -------------------------------------------------------------------------------
    def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one call and return its result text. Raise :class:`ToolError` for the agent's
        mistakes; any other exception is an env bug (``infra``); :class:`InfraError` propagates."""
        found = self.tools.get(name)
        if found is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self.tools) or 'none'}")
        return _format_result(found(arguments))

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        """The final answer: ``(obs, reward, terminated, info)``. Default: end with reward 0."""
        return "Episode finished.", 0.0, True, {}

    def after_calls(self, calls: list[dict[str, Any]]) -> tuple[float, bool, dict[str, Any]]:
        """After a turn's calls ran: ``(reward, terminated, info)``. Default: nothing happens."""
        return 0.0, False, {}

    def state_key(self) -> Hashable:
        """GiGPO anchor. Default: a hash of every call so far with its outcome (same history,
        same situation); envs with a world state should hash that instead."""
        text = json.dumps(self.history, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    # -- parsing and running -----------------------------------------------------------------
    def parse_action(self, text: str) -> Action:
        """The shared action rule first (:func:`~agentgym.parsers.extract_action`: reasoning
        dropped, ``<action>`` / ``Action:`` unwrapped), then the tool-call formats of
        :class:`~agentgym.parsers.ToolCallParser`; JSON inside prose is prose."""
        extracted = extract_action(text, max_chars=self.max_action_chars)
        if extracted.error is not None:
            return Action("text", text, error=extracted.error)
        return dataclasses.replace(self._parser.parse(extracted.text), text=text)

    def run_call(self, name: str, arguments: Any) -> dict[str, Any]:
        """Run one parsed call through :meth:`call_tool`: its ``info["tool_calls"]`` entry."""
        entry: dict[str, Any] = {"name": name, "arguments": arguments}
        size = len(json.dumps(arguments, ensure_ascii=False, default=str))
        if size > self.max_arg_chars:
            entry["arguments"] = {}  # do not carry a huge payload into the trajectory
            return {**entry, "error": f"the arguments of {name} are {size} characters; the limit is "
                    f"{self.max_arg_chars}", "error_kind": "agent"}
        try:
            result = self.call_tool(name, arguments)
        except InfraError:
            raise
        except ToolError as e:
            return {**entry, "error": str(e) or type(e).__name__, "error_kind": "agent"}
        except Exception as e:  # noqa: BLE001 — a bug in the env's tool code, not the agent's call
            return {**entry, "error": f"internal error in tool {name}: {type(e).__name__}: {e}",
                    "error_kind": "infra"}
        if len(result) > self.max_result_chars:
            cut = len(result) - self.max_result_chars
            result = result[: self.max_result_chars] + f"\n[… {cut} more characters cut]"
        return {**entry, "result": result}

    def _step(self, action: str) -> StepResult:
        parsed = self.parse_action(action)
        if parsed.error is not None:
            message = str(parsed.error)
            return (f"Error: {message}. Call a tool as <tool_call>{{\"name\": ..., \"arguments\": {{...}}}}"
                    f"</tool_call> or answer as <answer>...</answer>.", 0.0, False, False,
                    {"parse_error": message, "void": True, "role": "tool", "state_key": self.state_key()})
        if parsed.kind == "answer":
            obs, reward, terminated, info = self.on_answer(parsed.answer or "")
            return obs, reward, terminated, False, {"answer": parsed.answer, "state_key": self.state_key(), **info}
        if parsed.kind == "text":
            return ("No tool call or answer found. Call a tool as <tool_call>{\"name\": ..., \"arguments\": "
                    "{...}}</tool_call> or answer as <answer>...</answer>.", 0.0, False, False,
                    {"void": True, "state_key": self.state_key()})
        calls = parsed.tool_calls
        if len(calls) > self.max_calls_per_turn:
            message = (f"{len(calls)} tool calls in one turn; the limit is {self.max_calls_per_turn}, "
                       "so none was run")
            return (f"Error: {message}.", 0.0, False, False,
                    {"parse_error": message, "role": "tool", "state_key": self.state_key(),
                     "tool_calls": [{"name": c.name, "arguments": c.arguments, "error": message,
                                     "error_kind": "agent"} for c in calls]})
        entries = [self.run_call(c.name, c.arguments) for c in calls]
        self.history.extend(entries)
        reward, terminated, extra = self.after_calls(entries)
        errors = [f"{e['name']}: {e['error']}" for e in entries if "error" in e]
        info: dict[str, Any] = {"tool_calls": entries, "role": "tool", "parse_error": "; ".join(errors) or None}
        if any(e.get("error_kind") == "infra" for e in entries):
            info["failure"] = Failure.INFRA
            info["failure_detail"] = next(e["error"] for e in entries if e.get("error_kind") == "infra")
        info.update(extra)
        info.setdefault("state_key", self.state_key())
        return self.format_results(entries), reward, terminated, False, info

    def format_results(self, entries: list[dict[str, Any]]) -> str:
        """The observation for a turn's calls: the result alone for one call, else one labelled
        block per call; errors read ``Error: …``."""
        texts = [e["result"] if "result" in e else f"Error: {e['error']}" for e in entries]
        if len(texts) == 1:
            return texts[0]
        return "\n\n".join(f"[{i}] {e['name']}: {t}" for i, (e, t) in enumerate(zip(entries, texts, strict=True), 1))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.history = []
        obs, info = super().reset(seed=seed, options=options)
        if info["state_key"] is None:
            info["state_key"] = self.state_key()
        return obs, info
