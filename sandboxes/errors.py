"""Typed sandbox failures (defined in :mod:`agentgym.errors`, with every other agentgym error).

Every class here is an *infrastructure* failure (``agentgym.errors.InfraError``): the rollout
engine masks the trajectory instead of scoring it. User code that fails, crashes or runs out of
time is **not** an exception: it is a normal :class:`~agentgym.sandboxes.base.ExecResult` with
a non-zero ``exit_code`` (and ``timed_out=True`` for the per-call timeout).
"""

from agentgym.errors import SandboxCrashed, SandboxError, SandboxTimeout, SandboxUnavailable

__all__ = ["SandboxCrashed", "SandboxError", "SandboxTimeout", "SandboxUnavailable"]
