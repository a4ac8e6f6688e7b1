"""Terminal tasks in the Harbor layout, read and checked without the ``harbor`` package.

A task is a directory::

    task.toml              # [agent] timeout_sec, [verifier] timeout_sec/env, [environment] cpus/memory_mb/...
    instruction.md         # what the agent is told
    environment/Dockerfile # the task's container (build context: environment/)
    tests/test.sh          # the grader: writes /logs/verifier/reward.txt (a number) or reward.json
    solution/solve.sh      # a reference solution (the scripted expert runs it)

The fields read here are the ones of Harbor's ``TaskConfig`` (schema 1.x) that the terminal env
honours, with Harbor's rules for them (``[task] name`` is ``org/name``; ``network_mode``, when set,
wins over the deprecated ``allow_internet``); the others are accepted and ignored. ``harbor`` itself
needs Python 3.12, so it is not a dependency: the tests marked ``harbor`` (in their own venv,
``scripts/setup_harbor.sh``) check that this reader and harbor's own task model agree.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the tomli backport (a dependency on 3.10 only)
    import tomli as tomllib

__all__ = ["TASKS_DIR", "TerminalTask", "load_task", "load_tasks"]

TASKS_DIR = Path(__file__).parent / "tasks"
REQUIRED = ("task.toml", "instruction.md", "environment/Dockerfile", "tests/test.sh")
DEFAULT_AGENT_TIMEOUT_S = 600.0  # Harbor leaves it unset (no limit); an RL episode needs one
DEFAULT_VERIFIER_TIMEOUT_S = 600.0  # Harbor's default
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*/[a-zA-Z0-9][a-zA-Z0-9._-]*$")  # Harbor's org/name
NETWORK_MODES = ("no-network", "public", "allowlist")  # an allowlist is not enforced here: no network


def _number(table: dict[str, Any], key: str, default: float | None, where: str, *, positive: bool = True) -> float | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and not value > 0):
        raise ConfigError(f"{where}: {key} must be a positive number, not {value!r}")
    return float(value)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


@dataclass(frozen=True)
class TerminalTask:
    """One task: its files, limits and a content hash (the image tag's key)."""

    name: str
    path: Path
    instruction: str
    agent_timeout: float
    verifier_timeout: float
    verifier_env: tuple[tuple[str, str], ...]
    cpus: float
    memory_mb: int
    network: bool
    build_timeout: float
    digest: str = field(compare=False)

    @property
    def environment_dir(self) -> Path:
        return self.path / "environment"

    def test_files(self) -> dict[str, tuple[bytes, int]]:
        """``tests/`` as {relative path: (bytes, mode)}: copied in only at grading time."""
        root = self.path / "tests"
        return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
                for p in sorted(root.rglob("*")) if p.is_file()}

    def solution(self) -> str | None:
        path = self.path / "solution" / "solve.sh"
        return path.read_text() if path.is_file() else None


def _digest(path: Path) -> str:
    """sha256 over every file's relative path and bytes (what the image and the grading depend on)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(path).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def load_task(path: str | Path) -> TerminalTask:
    """Read and check one task directory (ConfigError says what is wrong)."""
    path = Path(path)
    missing = [rel for rel in REQUIRED if not (path / rel).is_file()]
    if missing:
        raise ConfigError(f"terminal task {path}: missing {', '.join(missing)} (the Harbor task layout)")
    where = f"{path}/task.toml"
    try:
        data = tomllib.loads((path / "task.toml").read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    agent, verifier = _table(data, "agent", where), _table(data, "verifier", where)
    environment, info = _table(data, "environment", where), _table(data, "task", where)
    name = info.get("name") if "task" in data else path.name  # Harbor too: no [task], the directory's name
    if "task" in data and (not isinstance(name, str) or not NAME.match(name) or ".." in name):
        raise ConfigError(f"{where}: [task] name must be 'org/name' (Harbor's package name), not {name!r}")
    env = verifier.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ConfigError(f"{where}: [verifier] env must map names to strings")
    if environment.get("gpus", 0):
        raise ConfigError(f"{where}: tasks that need GPUs are not supported by the terminal env")
    if environment.get("docker_image"):
        raise ConfigError(f"{where}: prebuilt docker_image tasks are not supported; give environment/Dockerfile")
    mode = environment.get("network_mode")
    if mode is not None and mode not in NETWORK_MODES:
        raise ConfigError(f"{where}: [environment] network_mode must be one of {NETWORK_MODES}, not {mode!r}")
    network = mode == "public" if mode is not None else bool(environment.get("allow_internet", True))
    memory = _number(environment, "memory_mb", 2048, where)
    if not float(memory).is_integer():
        raise ConfigError(f"{where}: memory_mb must be a whole number of MB, not {memory!r}")
    return TerminalTask(
        name=name, path=path.resolve(), instruction=(path / "instruction.md").read_text().strip(),
        agent_timeout=_number(agent, "timeout_sec", None, where) or DEFAULT_AGENT_TIMEOUT_S,
        verifier_timeout=_number(verifier, "timeout_sec", DEFAULT_VERIFIER_TIMEOUT_S, where),
        verifier_env=tuple(sorted(env.items())), cpus=_number(environment, "cpus", 1, where),
        memory_mb=int(memory), network=network,
        build_timeout=_number(environment, "build_timeout_sec", 600.0, where), digest=_digest(path))


def load_tasks(directory: str | Path = TASKS_DIR) -> list[TerminalTask]:
    """Every task under ``directory`` (a directory holding ``task.toml`` directly is one task),
    sorted by name; ConfigError for none or for a duplicate name."""
    directory = Path(directory)
    if (directory / "task.toml").is_file():
        return [load_task(directory)]
    tasks = [load_task(p.parent) for p in sorted(directory.glob("*/task.toml"))]
    if not tasks:
        raise ConfigError(f"no terminal tasks (*/task.toml) under {directory}")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate task names under {directory}: {sorted(names)}")
    return sorted(tasks, key=lambda t: t.name)
