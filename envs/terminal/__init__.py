"""Terminal tasks in the Harbor layout (``agentgym/Terminal-v0``), in agentgym's Docker sandboxes.

Modules: ``tasks`` (the task layout, read and checked), ``images`` (task images built once per
content on the local engine), ``env`` (the env and its grader). :func:`load` registers one env for
a directory of your own tasks. Nothing heavy is imported here.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["load", "register_terminal_envs"]


def register_terminal_envs() -> None:
    """Register ``agentgym/Terminal-v0``: the shipped tasks (idempotent)."""
    from agentgym.registry import register

    register(
        "agentgym/Terminal-v0",
        "agentgym.envs.terminal.env:TerminalEnv",
        max_turns=30,
        description="Harbor-format terminal tasks (files, processes, a failing test, a broken build) in Docker "
        "sandboxes: shell/read_file/write_file tools, the task's tests/test.sh grades; needs Docker.",
    )


def load(directory: str | Path, *, env_id: str | None = None, max_turns: int = 30, force: bool = False) -> str:
    """Register an env that plays the Harbor tasks under ``directory`` (checked now) and return its
    id (default ``agentgym/Terminal-<directory name>-v0``)."""
    from agentgym.registry import register

    from .tasks import load_tasks

    directory = Path(directory).resolve()
    load_tasks(directory)
    if env_id is None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", directory.name).strip("-") or "tasks"
        env_id = f"agentgym/Terminal-{slug}-v0"
    register(env_id, "agentgym.envs.terminal.env:TerminalEnv", kwargs={"tasks_dir": str(directory)},
             max_turns=max_turns, description=f"Harbor-format terminal tasks from {directory}.", force=force)
    return env_id
