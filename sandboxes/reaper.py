"""Labels on every sandbox container, and the reaper that removes the ones nobody will close.

Every container carries ``agentgym.sandbox=1`` plus its owner (``host:pid:start-ticks``, so a
recycled pid is not mistaken for the owner), pool, creation time and TTL. A container is stale
when its TTL has passed, or when its owner ran on this host and that process is gone (a crash or
``kill -9`` skipped ``close()``). ``agentgym sandbox prune`` and every new pool remove stale ones.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["LABEL", "SandboxContainer", "list_sandboxes", "owner_id", "prune", "sandbox_labels"]

LABEL = "agentgym.sandbox"
OWNER, POOL, CREATED, TTL = "agentgym.owner", "agentgym.pool", "agentgym.created", "agentgym.ttl"


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()[19].decode()


def owner_id(pid: int | None = None) -> str:
    """This process as an owner: ``host:pid:start-ticks``."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host; None when it ran elsewhere (only TTL applies)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid, ticks = parts
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return _start_ticks(int(pid)) == ticks


def sandbox_labels(pool: str, ttl: float, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels a new sandbox container gets."""
    return {LABEL: "1", OWNER: owner_id(), POOL: pool, CREATED: f"{time.time():.3f}", TTL: f"{ttl:.0f}",
            **(extra or {})}


@dataclass(frozen=True)
class SandboxContainer:
    """One labelled container as the reaper sees it."""

    id: str
    name: str
    image: str
    status: str
    pool: str
    owner: str
    created: float
    ttl: float
    labels: dict[str, str]

    @property
    def age(self) -> float:
        return time.time() - self.created

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why the reaper should remove it, or None."""
        now = time.time() if now is None else now
        if now > self.created + self.ttl:
            return f"ttl of {self.ttl:.0f} s expired"
        if owner_alive(self.owner) is False:
            return "owner process is gone"
        return None


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    from .engine import docker_client

    return docker_client()


def list_sandboxes(client: Any = None, *, label: str | None = None) -> list[SandboxContainer]:
    """Every agentgym sandbox container (running or not); ``label`` narrows to ``key`` or ``key=value``."""
    filters = [f"{LABEL}=1", *([label] if label else [])]
    found = []
    for raw in _client(client).api.containers(all=True, filters={"label": filters}):
        labels = raw.get("Labels") or {}
        found.append(SandboxContainer(
            id=raw["Id"], name=(raw.get("Names") or ["?"])[0].lstrip("/"), image=raw.get("Image", ""),
            status=raw.get("State", ""), pool=labels.get(POOL, ""), owner=labels.get(OWNER, ""),
            created=float(labels.get(CREATED) or raw.get("Created") or 0), ttl=float(labels.get(TTL) or 0),
            labels=labels))
    return found


def prune(client: Any = None, *, everything: bool = False, label: str | None = None,
          dry_run: bool = False) -> list[tuple[SandboxContainer, str]]:
    """Remove stale sandbox containers (all of them with ``everything``); returns what and why."""
    import docker.errors

    client = _client(client)
    removed = []
    for box in list_sandboxes(client, label=label):
        reason = "prune --all" if everything else box.stale_reason()
        if reason is None:
            continue
        if not dry_run:
            try:
                client.api.remove_container(box.id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: removal already in progress
                    raise
        removed.append((box, reason))
    return removed
