"""Sandboxes for untrusted model code: Docker (default) or local namespaces, with a warm pool.

Importing this package is light: the docker SDK is imported only when a Docker sandbox is made.
"""

from .base import DEFAULT_IMAGE, AsyncSandbox, BaseSandbox, ExecResult, Sandbox, SandboxSpec
from .errors import SandboxCrashed, SandboxError, SandboxTimeout, SandboxUnavailable
from .factory import BACKEND_ENV, make_sandbox, select_backend
from .pool import SandboxPool

__all__ = [
    "BACKEND_ENV", "DEFAULT_IMAGE", "AsyncSandbox", "BaseSandbox", "DockerSandbox", "ExecResult", "LocalSandbox",
    "Sandbox", "SandboxCrashed", "SandboxError", "SandboxPool", "SandboxSpec", "SandboxTimeout",
    "SandboxUnavailable", "make_sandbox", "select_backend",
]


def __getattr__(name: str) -> type:
    if name == "DockerSandbox":
        from .docker_sandbox import DockerSandbox

        return DockerSandbox
    if name == "LocalSandbox":
        from .local_sandbox import LocalSandbox

        return LocalSandbox
    raise AttributeError(name)
