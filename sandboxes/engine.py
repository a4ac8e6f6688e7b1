"""The Docker engine client, in a module of its own so that images, the reaper, the factory and
DockerSandbox all depend on it and not on each other (no import cycles inside the package)."""

from __future__ import annotations

import functools
from typing import Any

from .errors import SandboxUnavailable

__all__ = ["docker_client", "engine_runtimes", "engine_security"]


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
def _info(base_url: str, client: Any) -> dict[str, Any]:
    return client.info()


def engine_runtimes(client: Any) -> frozenset[str]:
    """OCI runtimes the engine offers (cached per engine)."""
    return frozenset((_info(client.api.base_url, client).get("Runtimes") or {}).keys())


def engine_security(client: Any) -> frozenset[str]:
    """The engine's security options by name (``userns``, ``rootless``, ``seccomp``...; cached)."""
    options = _info(client.api.base_url, client).get("SecurityOptions") or []
    return frozenset(part[len("name="):] for option in options for part in option.split(",") if part.startswith("name="))
