"""Trajectory schema: one multi-turn episode, one JSON line.

Turn boundaries are explicit (``Turn.index`` and, when tokens are recorded, ``Turn.obs_span``
and ``Turn.action_span`` into the trajectory's token sequence). Nothing downstream may infer
turns from reward or advantage values.

Schema version history:
  1 — first version.
  2 — ``success``: the env's own verdict (``info["success"]`` of the step that ended the episode,
      and no failure), stored. Version-1 records are read with the rule they were written under:
      ended by the env, no failure, positive outcome.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from agentgym.core import Failure, TruncationReason

__all__ = ["SCHEMA_VERSION", "Trajectory", "Turn", "canonical_key", "record_success"]

SCHEMA_VERSION = 2
KEY_TAG = "\x00"
"""First character of the encoding of every non-``str`` key (text observations never hold NUL)."""


def canonical_key(key: Any) -> str | None:
    """The one canonical, content-based, type-tagged form of an anchor key (``state_key``).

    GiGPO pools turns whose keys are *equal*; comparing ``str(key)`` is wrong twice over: numpy
    abbreviates big arrays (two 40×40 boards differing in one cell print alike) and a tuple
    ``(1, 2)`` prints like the string ``"(1, 2)"``. So every key is encoded by content with its
    type: ``None`` stays None (a turn with no anchor); a ``str`` is its own canonical form (text
    keys stay readable, and similarity anchors compare that text); any other key becomes
    ``"\x00"`` + a tagged encoding — bool, int, float (``float.hex``; −0.0 is 0.0), complex,
    bytes and numpy arrays (dtype, shape and a BLAKE2b digest of the bytes; an object array
    element by element), numpy scalars as their Python value, tuples / lists / sets / dicts
    recursively (elements length-prefixed, set and dict entries sorted by encoding). So
    ``(1, 2)``, ``[1, 2]``, ``"(1, 2)"`` and ``(1.0, 2)`` are four keys, and equal arrays are one key
    whatever their memory layout. The rollout engine stores this form in ``Turn.state_key`` and the
    credit batch builders apply it to whatever they are given, so a key means the same everywhere.
    Any other type is a ``TypeError``: an anchor key compared by an unreliable ``repr`` is worse than
    none.
    """
    if key is None:
        return None
    if isinstance(key, str):
        return str(key)
    return KEY_TAG + _encode(key)


def _encode(x: Any) -> str:
    if isinstance(x, str):
        return "s" + x
    if isinstance(x, bool):
        return "b1" if x else "b0"
    if isinstance(x, int):
        return f"i{x}"
    if isinstance(x, float):
        return "fnan" if math.isnan(x) else "f" + (x + 0.0).hex()
    if isinstance(x, complex):
        return f"c{_encode(x.real)},{_encode(x.imag)}"
    if isinstance(x, (bytes, bytearray)):
        return "y" + hashlib.blake2b(bytes(x), digest_size=16).hexdigest()
    if isinstance(x, tuple):
        return "t" + _join(_encode(v) for v in x)
    if isinstance(x, list):
        return "l" + _join(_encode(v) for v in x)
    if isinstance(x, (set, frozenset)):
        return "S" + _join(sorted(_encode(v) for v in x))
    if isinstance(x, dict):
        return "d" + _join(sorted(_encode(k) + "=" + _encode(v) for k, v in x.items()))
    kind = type(x).__module__.split(".")[0]
    if kind == "numpy" and hasattr(x, "dtype"):  # duck-typed: no numpy import here
        if getattr(x, "ndim", None) == 0 and hasattr(x, "item") and x.dtype.kind != "O":
            return _encode(x.item())
        if x.dtype.kind == "O":
            return f"A{x.shape}" + _encode(list(x.ravel().tolist()))
        data = x.tobytes(order="C")  # the logical content, whatever the strides
        return f"a{x.dtype.str}{x.shape}" + hashlib.blake2b(data, digest_size=16).hexdigest()
    raise TypeError(
        f"state_key of type {type(x).__name__} has no canonical form; use str, bool, int, float, bytes, "
        "a numpy array, or tuples / lists / sets / dicts of those"
    )


def _join(parts: Any) -> str:
    return "(" + "".join(f"{len(p)}:{p}" for p in parts) + ")"


@dataclass
class Turn:
    """One agent turn: the observation it answered, its action, and what the env said back.

    ``state_key`` is the anchor of the observation *before* the action (GiGPO groups on it), in
    :func:`canonical_key` form: the env's text as is, any other key content-encoded.
    Token fields are filled when the policy returns tokens: ``obs_token_ids`` are the tokens
    appended to the context for the observation (the chat-template delta), ``action_token_ids``
    the sampled completion, ``action_logprobs`` its sampled-token log-probs. Spans are
    ``[start, end)`` offsets into the concatenation of all obs and action tokens of the
    trajectory, in order.
    """

    index: int
    observation: str
    action: str
    reward: float = 0.0
    state_key: str | None = None
    role: str = "user"
    void: bool = False
    parse_error: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None
    obs_token_ids: list[int] | None = None
    action_token_ids: list[int] | None = None
    action_logprobs: list[float] | None = None
    obs_span: tuple[int, int] | None = None
    action_span: tuple[int, int] | None = None
    finish_reason: str | None = None
    env_seconds: float = 0.0
    policy_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        data = dict(data)
        for key in ("obs_span", "action_span"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class Trajectory:
    """One episode of one env by one policy, with the ids that place it in a run.

    ``success`` is what the env counts as success (``info["success"]`` of its final step; the
    rollout engine sets it, false for any failed or cut-short episode), not ``outcome > 0``: a
    partial-credit reward is an outcome, not a success."""

    traj_id: str
    group_id: str
    task_id: str
    env_id: str
    seed: int | None
    policy: str
    turns: list[Turn] = field(default_factory=list)
    final_observation: str = ""
    outcome: float = 0.0
    terminated: bool = False
    truncated: bool = False
    truncation_reason: TruncationReason | None = None
    failure: Failure | None = None
    failure_detail: str | None = None
    success: bool = False
    started_at: float = 0.0
    duration_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:  # read back from JSON as plain strings; unknown values raise
        if self.truncation_reason is not None:
            self.truncation_reason = TruncationReason(self.truncation_reason)
        if self.failure is not None:
            self.failure = Failure(self.failure)

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def to_dict(self) -> dict[str, Any]:
        # Shallow copies, not dataclasses.asdict: asdict deep-copies every value and costs more
        # than the rest of a rollout step. Callers must not mutate nested values.
        data = dict(self.__dict__)
        data["turns"] = [dict(turn.__dict__) for turn in self.turns]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"trajectory schema {version} is newer than this agentgym ({SCHEMA_VERSION}); upgrade"
            )
        data["turns"] = [Turn.from_dict(t) for t in data.get("turns", [])]
        data["success"] = record_success(data)
        data["schema_version"] = SCHEMA_VERSION  # read back, it is this version's object
        return cls(**data)


def record_success(record: dict[str, Any]) -> bool:
    """Whether a stored trajectory (a dict from the JSONL) succeeded: its ``success`` field, or
    for a version-1 record (which had none) the rule of that version."""
    if "success" in record:
        return bool(record["success"])
    return bool(record.get("terminated")) and record.get("failure") is None and record.get("outcome", 0.0) > 0
