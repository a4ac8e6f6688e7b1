"""The Docker engine client, in a module of its own so that images, the reaper, the factory and
DockerSandbox all depend on it and not on each other (no import cycles inside the package)."""

from __future__ import annotations

import functools
from typing import Any

from .errors import SandboxUnavailable

__all__ = ["docker_client", "engine_runtimes"]


def docker_client(timeout: float = 120.0) -> Any:
    """A docker SDK client from the environment (DOCKER_HOST etc.); SandboxUnavailable if none."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(f"no Docker engine reachable: {exc}") from exc
    return client


@functools.lru_cache(maxsize=8)
def _runtimes(base_url: str, client: Any) -> frozenset[str]:
    return frozenset((client.info().get("Runtimes") or {}).keys())


def engine_runtimes(client: Any) -> frozenset[str]:
    """OCI runtimes the engine offers (cached per engine)."""
    return _runtimes(client.api.base_url, client)
