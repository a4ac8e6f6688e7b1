"""Verifiers of the notes tasks: the server must hold exactly the task's note (a fresh server per
episode, or the state of earlier episodes counts against this one), and ``broken``, a verifier
with a bug."""

from __future__ import annotations

import json
from typing import Any


def reward(task: dict[str, Any], answer: str, env: Any) -> dict[str, Any]:
    notes = json.loads(env.call_tool("notes", {}))  # one JSON document: the list
    assert notes == env.call_tool_structured("notes", {})
    right = notes == [{"text": task["note"]}] and answer.strip() == "1"
    return {"reward": float(right), "success": right, "notes_seen": len(notes)}


def broken(task: dict[str, Any], answer: str, env: Any) -> float:
    return float(json.loads("not json"))
