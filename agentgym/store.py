"""Append-only trajectory store: a run directory with ``run.json`` and ``trajectories.jsonl``.

Durability model: each trajectory is one ``os.write`` of one line on an ``O_APPEND`` file, so a
``kill -9`` leaves every earlier line intact and at most one torn line at the end. Readers drop a
torn last line (no trailing newline, or not valid JSON) with a warning; writers cut it off before
appending, so the next line never glues onto it. A bad line anywhere else is real corruption and
raises. ``fsync=True`` additionally survives power loss, at a few ms per trajectory.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from agentgym.errors import CorruptStoreError
from agentgym.trajectory import Trajectory

__all__ = ["MANIFEST", "TRAJECTORIES", "CorruptStoreError", "TrajectoryStore", "read_jsonl"]

log = logging.getLogger(__name__)

MANIFEST = "run.json"
TRAJECTORIES = "trajectories.jsonl"


def _split_torn_tail(path: Path) -> tuple[int, int]:
    """Return (size of the intact prefix, size of the torn tail) of a JSONL file."""
    size = path.stat().st_size
    if size == 0:
        return 0, 0
    with path.open("rb") as f:
        # Scan backwards for the last newline; a torn tail is whatever follows it.
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                intact = start + cut + 1
                return intact, size - intact
            end = start
    return 0, size


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file, dropping a torn last line (with a warning)."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    # A complete file ends with "\n", so the final split element is b"" unless the tail is torn.
    tail = lines.pop()
    if tail:
        log.warning("%s: dropping a torn last line (%d bytes, no newline)", path, len(tail))
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines) and not tail:
                log.warning("%s: dropping an undecodable last line (%s)", path, e)
                continue
            raise CorruptStoreError(f"{path}:{number}: not valid JSON ({e})") from e
        if not isinstance(obj, dict):
            raise CorruptStoreError(f"{path}:{number}: expected a JSON object")
        yield obj


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class TrajectoryStore:
    """A run directory: a manifest and an append-only JSONL of trajectories.

    Safe against ``kill -9``; one writer per directory at a time.
    """

    def __init__(self, run_dir: str | Path, *, fsync: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / TRAJECTORIES
        self.fsync = fsync
        self._fd: int | None = None

    # -- manifest -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write ``run.json`` atomically (write a temp file, then rename)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.manifest_path)

    # -- trajectories -----------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                intact, torn = _split_torn_tail(self.path)
                if torn:
                    log.warning("%s: cutting a torn last line (%d bytes) before appending", self.path, torn)
                    os.truncate(self.path, intact)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def append(self, trajectory: Trajectory | dict[str, Any]) -> None:
        line = _line(trajectory.to_dict() if isinstance(trajectory, Trajectory) else trajectory)
        fd = self._open()
        written = os.write(fd, line)
        while written < len(line):  # regular files write whole; this is for the odd short write
            written += os.write(fd, line[written:])
        if self.fsync:
            os.fsync(fd)

    def extend(self, trajectories: Iterable[Trajectory | dict[str, Any]]) -> None:
        for trajectory in trajectories:
            self.append(trajectory)

    def iter_dicts(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.path)

    def read(self) -> list[Trajectory]:
        return [Trajectory.from_dict(d) for d in self.iter_dicts()]

    def completed_ids(self) -> set[str]:
        return {d["traj_id"] for d in self.iter_dicts()}

    def remove(self, which: Callable[[dict[str, Any]], bool], *, moved_to: str | Path | None = None) -> int:
        """Take the trajectories for which ``which(record)`` is true out of the store (so that a
        resume runs them again, say); they are appended to ``moved_to`` when given. Returns how many.

        The store is rewritten to a temp file and renamed over the old one, so a kill leaves either
        the old or the new file; ``moved_to`` is written first, so no record is ever lost.
        """
        keep, removed = [], []
        for d in self.iter_dicts():
            (removed if which(d) else keep).append(d)
        if not removed:
            return 0
        self.close()
        if moved_to is not None:
            with Path(moved_to).open("ab") as f:
                f.writelines(map(_line, removed))
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(map(_line, keep)))
        os.replace(tmp, self.path)
        return len(removed)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
