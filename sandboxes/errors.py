"""Typed sandbox failures.

Every class here is an *infrastructure* failure (``agentgym.core.InfraError``): the rollout
engine masks the trajectory instead of scoring it. User code that fails, crashes or runs out of
time is **not** an exception: it is a normal :class:`~agentgym.sandboxes.base.ExecResult` with
a non-zero ``exit_code`` (and ``timed_out=True`` for the per-call timeout).
"""

from __future__ import annotations

from agentgym.core import InfraError

__all__ = ["SandboxCrashed", "SandboxError", "SandboxTimeout", "SandboxUnavailable"]


class SandboxError(InfraError):
    """Base class: the sandbox machinery failed; never the agent's fault."""


class SandboxTimeout(SandboxError):
    """The executor did not answer within the call's timeout plus a grace period.

    The user code's own timeout is enforced inside the sandbox and reported as
    ``ExecResult.timed_out``; this error means the executor itself is stuck.
    """


class SandboxCrashed(SandboxError):
    """The sandbox died under us (container killed, executor gone, channel closed)."""


class SandboxUnavailable(SandboxError):
    """No sandbox could be created: no engine, missing image, missing runtime, pool closed."""
