"""agentgym's reader of Harbor task directories against the harbor package's own task model.

harbor needs Python >= 3.12, so these run in their own venv (marked ``harbor``, deselected by default):
``bash scripts/setup_harbor.sh && .venv-harbor/bin/python -m pytest -m harbor tests/envs/terminal``.
harbor is imported inside the tests, so collecting this file never needs it; run without it, they fail.

The oracle is ``harbor.models.task.task.Task``: its constructor parses task.toml with ``TaskConfig``
and reads the directory through ``TaskPaths``; ``Task.is_valid_dir`` is harbor's own yes/no on a task
directory (a config that does not validate, a missing environment/, instruction.md or tests/test.sh).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentgym.envs.terminal.tasks import (
    DEFAULT_AGENT_TIMEOUT_S,
    TASKS_DIR,
    load_task,
)
from agentgym.errors import ConfigError

pytestmark = [
    pytest.mark.harbor,
    # the shipped tasks keep schema 1.1's allow_internet, which harbor 0.26 reads (as network_mode) with
    # a DeprecationWarning; the older Harbor releases that speak schema 1.1 have no network_mode
    pytest.mark.filterwarnings("ignore:The 'allow_internet' field is deprecated:DeprecationWarning"),
]
SHIPPED = sorted(p.parent.name for p in TASKS_DIR.glob("*/task.toml"))


def harbor_task(path: Path) -> Any:
    """harbor's Task of ``path``, after harbor's own validity check said yes."""
    from harbor.models.task.task import Task

    assert Task.is_valid_dir(path), f"harbor rejects {path}"
    return Task(path)


def assert_reads_alike(path: Path) -> None:
    """Every value the terminal env takes from a task equals what harbor's model reads there."""
    from harbor.models.task.config import NetworkMode

    theirs, ours = harbor_task(path), load_task(path)
    config = theirs.config
    assert ours.name == theirs.name
    assert ours.path == theirs.task_dir
    assert ours.instruction == theirs.instruction.strip()
    assert ours.environment_dir == theirs.paths.environment_dir
    assert ours.agent_timeout == (config.agent.timeout_sec or DEFAULT_AGENT_TIMEOUT_S)  # harbor: unset = none
    assert ours.verifier_timeout == config.verifier.timeout_sec
    assert ours.verifier_env == tuple(sorted(config.verifier.env.items()))
    assert ours.cpus == (config.environment.cpus or 1)
    assert ours.memory_mb == (config.environment.memory_mb or 2048)
    assert ours.build_timeout == config.environment.build_timeout_sec
    assert ours.network == (config.environment.network_mode == NetworkMode.PUBLIC)
    assert config.environment.docker_image is None and not config.environment.gpus and not config.steps
    tests_dir = theirs.paths.tests_dir
    assert set(ours.test_files()) == {p.relative_to(tests_dir).as_posix() for p in tests_dir.rglob("*") if p.is_file()}
    assert theirs.paths.discovered_test_path == tests_dir / "test.sh"
    solve = theirs.paths.discovered_solve_path
    assert ours.solution() == (solve.read_text() if solve else None)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_task_reads_as_harbor_reads_it(name: str) -> None:
    assert_reads_alike(TASKS_DIR / name)
    assert not load_task(TASKS_DIR / name).network  # the shipped tasks run offline, in both readings


def _toml(text: str) -> Callable[[Path], None]:
    return lambda d: (d / "task.toml").write_text(text)


def _remove(rel: str) -> Callable[[Path], None]:
    return lambda d: shutil.rmtree(d / rel) if (d / rel).is_dir() else (d / rel).unlink()


VARIANTS = {
    "defaults": 'schema_version = "1.1"\n',
    "own values": '[task]\nname = "me/t.1"\n[agent]\ntimeout_sec = 5\n[verifier]\ntimeout_sec = 7.5\n'
                  '[verifier.env]\nB = "2"\nA = "1"\n[environment]\ncpus = 0.5\nmemory_mb = 300\n'
                  'build_timeout_sec = 42\n',
    "whole float cpus": "[environment]\ncpus = 2.0\n",
    "network_mode wins": '[environment]\nnetwork_mode = "public"\nallow_internet = false\n',
    "no-network": '[environment]\nnetwork_mode = "no-network"\n',
    "allow_internet false": "[environment]\nallow_internet = false\n",
}


def task_with(tmp_path: Path, change: Callable[[Path], None]) -> Path:
    """A copy of a shipped task, changed."""
    shutil.copytree(TASKS_DIR / "csv_report", tmp_path / "t")
    change(tmp_path / "t")
    return tmp_path / "t"


@pytest.mark.parametrize("toml", VARIANTS.values(), ids=VARIANTS.keys())
def test_task_toml_variants_read_as_harbor_reads_them(tmp_path: Path, toml: str) -> None:
    assert_reads_alike(task_with(tmp_path, _toml(toml)))


MALFORMED = {
    "no tests/test.sh": _remove("tests/test.sh"),
    "no instruction.md": _remove("instruction.md"),
    "no environment/": _remove("environment"),
    "not TOML": _toml("[agent\n"),
    "[agent] not a table": _toml("agent = 3\n"),
    "timeout not a number": _toml('[verifier]\ntimeout_sec = "soon"\n'),
    "env value not a string": _toml("[verifier.env]\nX = 1\n"),
    "name without org": _toml('[task]\nname = "csv"\n'),
    "[task] without name": _toml('[task]\ndescription = "x"\n'),
    "unknown network_mode": _toml('[environment]\nnetwork_mode = "sometimes"\n'),
    "fractional memory_mb": _toml("[environment]\nmemory_mb = 512.5\n"),
}


@pytest.mark.parametrize("breaks", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_task_harbor_rejects_is_rejected(tmp_path: Path, breaks: Callable[[Path], None]) -> None:
    from harbor.models.task.task import Task

    path = task_with(tmp_path, breaks)
    assert not Task.is_valid_dir(path)
    with pytest.raises(ConfigError):
        load_task(path)


STRICTER = {  # harbor's model takes these; an RL episode cannot run with them, so the reader refuses
    "negative timeout": "[verifier]\ntimeout_sec = -1\n",
    "zero cpus": "[environment]\ncpus = 0\n",
    "negative memory": "[environment]\nmemory_mb = -5\n",
    "memory as a string": '[environment]\nmemory_mb = "512"\n',
}


@pytest.mark.parametrize("toml", STRICTER.values(), ids=STRICTER.keys())
def test_where_the_reader_is_stricter_than_harbor(tmp_path: Path, toml: str) -> None:
    path = task_with(tmp_path, _toml(toml))
    harbor_task(path)
    with pytest.raises(ConfigError):
        load_task(path)
