"""agentgym: Gymnasium-style multi-turn agentic RL.

The core imports nothing heavy (no torch): envs, registry, trajectories, rollouts, credit.
"""

from agentgym.core import INFO_DEFAULTS, Failure, Text, TextEnv, TruncationReason
from agentgym.errors import AgentGymError, InfraError
from agentgym.registry import EnvSpec, UnknownEnvError, load_yaml, make, register, spec
from agentgym.tools import Tool, ToolEnv, ToolError, tool
from agentgym.trajectory import SCHEMA_VERSION, Trajectory, Turn

__version__ = "0.1.0"

# Register the built-ins and the installed plugins now (built-in env modules load only when an
# env is built), so that `gymnasium.make(id)` works for every id after a bare `import agentgym`.
import agentgym.envs  # noqa: E402,F401,I001
from agentgym.registry import _load_entry_points  # noqa: E402

_load_entry_points()

__all__ = [
    "INFO_DEFAULTS",
    "SCHEMA_VERSION",
    "EnvSpec",
    "AgentGymError",
    "Failure",
    "InfraError",
    "Text",
    "TextEnv",
    "Tool",
    "ToolEnv",
    "ToolError",
    "Trajectory",
    "TruncationReason",
    "Turn",
    "UnknownEnvError",
    "__version__",
    "load_yaml",
    "make",
    "register",
    "spec",
    "tool",
]
