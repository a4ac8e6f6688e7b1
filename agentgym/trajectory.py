"""Trajectory schema: one multi-turn episode, one JSON line.

Turn boundaries are explicit (``Turn.index`` and, when tokens are recorded, ``Turn.obs_span``
and ``Turn.action_span`` into the trajectory's token sequence). Nothing downstream may infer
turns from reward or advantage values.

Schema version history:
  1 — first version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "Trajectory", "Turn"]

SCHEMA_VERSION = 1


@dataclass
class Turn:
    """One agent turn: the observation it answered, its action, and what the env said back.

    ``state_key`` is the anchor of the observation *before* the action (GiGPO groups on it).
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
    """One episode of one env by one policy, with the ids that place it in a run."""

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
    truncation_reason: str | None = None  # "max_turns" | "token_budget" | "env"
    failure: str | None = None  # None | "infra" | "agent"
    failure_detail: str | None = None
    started_at: float = 0.0
    duration_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def success(self) -> bool:
        """Succeeded: ended by the env (not cut short), no failure, positive outcome."""
        return self.terminated and self.failure is None and self.outcome > 0

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
        return cls(**data)
