"""One setting chooses the backend: ``backend=`` or ``AGENTGYM_SANDBOX_BACKEND`` (docker, local, auto).

``auto`` takes Docker when an engine answers and the spec's image is present, else LocalSandbox,
and logs which one it took and why (LocalSandbox's isolation is weaker; see its docstring).
"""

from __future__ import annotations

import logging
import os

from .base import BaseSandbox, SandboxSpec
from .errors import SandboxUnavailable

__all__ = ["BACKEND_ENV", "make_sandbox", "select_backend"]

BACKEND_ENV = "AGENTGYM_SANDBOX_BACKEND"
log = logging.getLogger("agentgym.sandboxes")


def select_backend(spec: SandboxSpec | None = None, backend: str | None = None) -> tuple[str, str]:
    """Return ``(backend, reason)`` for ``backend`` (or the environment setting, default auto)."""
    spec = spec or SandboxSpec()
    choice = (backend or os.environ.get(BACKEND_ENV) or "auto").lower()
    if choice in ("docker", "local"):
        return choice, f"asked for ({'backend=' if backend else BACKEND_ENV + '='}{choice})"
    if choice != "auto":
        raise ValueError(f"unknown sandbox backend {choice!r}: use docker, local or auto")
    from .engine import docker_client
    from .images import image_present

    try:
        client = docker_client(timeout=5)
    except SandboxUnavailable as exc:
        return "local", f"auto: {exc}"
    if not image_present(client, spec.image):
        return "local", f"auto: Docker is up but image {spec.image} is missing (agentgym sandbox build python)"
    return "docker", f"auto: Docker engine reachable and image {spec.image} present"


def make_sandbox(spec: SandboxSpec | None = None, *, backend: str | None = None, pool: str = "",
                 labels: dict[str, str] | None = None) -> BaseSandbox:
    """Create a sandbox on the chosen backend (``pool`` and ``labels`` tag Docker containers)."""
    spec = spec or SandboxSpec()
    name, reason = select_backend(spec, backend)
    log.log(logging.INFO if reason.startswith("auto") else logging.DEBUG, "sandbox backend: %s (%s)", name, reason)
    if name == "docker":
        from .docker_sandbox import DockerSandbox

        return DockerSandbox(spec, pool=pool, labels=labels)
    from .local_sandbox import LocalSandbox

    return LocalSandbox(spec)
