"""Every exception agentgym raises on purpose, in one hierarchy under :class:`AgentGymError`.

``except AgentGymError`` catches them all. Each class also keeps the builtin base it had before
this module existed (``KeyError`` for unknown env ids, ``ValueError`` for bad configuration,
``RuntimeError`` for infrastructure), so older ``except`` clauses still match; the modules that
used to define them still export the same names.

::

    AgentGymError
    ├── ConfigError (ValueError)             bad recipe, env YAML, credit config, chat template
    │   ├── RecipeError
    │   └── TemplateError
    ├── RegistryError
    │   ├── UnknownEnvError (KeyError)       an env id that is not registered
    │   │   ├── NameNotFoundError            no env of that name, in any version
    │   │   └── VersionNotFoundError         the name exists, that version does not
    │   └── AlreadyRegisteredError (ValueError)
    ├── InfraError (RuntimeError)            not the agent's fault: the engine records failure="infra"
    │   ├── SandboxError
    │   │   ├── SandboxTimeout, SandboxCrashed, SandboxUnavailable
    │   └── TooManyInfraFailures           a rollout stopped: episodes kept failing on infrastructure
    ├── EnvCodeError (RuntimeError)          a bug in the env's or the user's code (a verifier that raised):
    │                                        failure="error", counted and made loud, neither 0 nor masked
    ├── CorruptStoreError (ValueError)       a trajectory file damaged in the middle
    ├── ContextLengthExceeded                the conversation outgrew the model: episode truncated
    ├── RequestRejectedError (RuntimeError)  a model server refused a request (4xx other than 429)
    │   └── PromptTooLongError (+ ContextLengthExceeded)
    └── ToolError                            a tool's error the agent caused: shown to the agent
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AgentGymError",
    "AlreadyRegisteredError",
    "ConfigError",
    "ContextLengthExceeded",
    "CorruptStoreError",
    "EnvCodeError",
    "InfraError",
    "NameNotFoundError",
    "PromptTooLongError",
    "RecipeError",
    "RegistryError",
    "RequestRejectedError",
    "SandboxCrashed",
    "SandboxError",
    "SandboxTimeout",
    "SandboxUnavailable",
    "TemplateError",
    "ToolError",
    "TooManyInfraFailures",
    "UnknownEnvError",
    "VersionNotFoundError",
]


class AgentGymError(Exception):
    """Base class of every exception agentgym raises on purpose."""


# -- configuration ------------------------------------------------------------------------------
class ConfigError(AgentGymError, ValueError):
    """Configuration that cannot work: a malformed recipe, env YAML file or credit config."""


class RecipeError(ConfigError):
    """A training recipe is malformed: unknown key, wrong type, bad value."""


class TemplateError(ConfigError):
    """The chat template cannot continue a sampled completion: its assistant turns do not end with
    the EOS token, or it drops an assistant message's text once another message follows."""


# -- registry -----------------------------------------------------------------------------------
class RegistryError(AgentGymError):
    """Registering or looking up an env id failed."""


class UnknownEnvError(RegistryError, KeyError):
    """An env id that is not registered. ``suggestions``: registered ids close to it."""

    def __init__(self, message: str, *, env_id: str = "", suggestions: Sequence[str] = ()):
        super().__init__(message)
        self.env_id = env_id
        self.suggestions = tuple(suggestions)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NameNotFoundError(UnknownEnvError):
    """No env of that name is registered, in any version (Gymnasium's ``NameNotFound``)."""


class VersionNotFoundError(UnknownEnvError):
    """The name is registered, but not in that version (Gymnasium's ``VersionNotFound``);
    ``suggestions`` lists the registered versions of the name."""


class AlreadyRegisteredError(RegistryError, ValueError):
    """An env id is registered already with a different spec (pass ``force=True`` to replace it)."""


# -- infrastructure -----------------------------------------------------------------------------
class InfraError(AgentGymError, RuntimeError):
    """Infrastructure failed (sandbox, server, timeout); never the agent's fault.

    Raised by envs and sandboxes; the rollout engine records the trajectory with
    ``failure="infra"`` so trainers can drop it instead of learning from a bogus reward.
    """


class EnvCodeError(AgentGymError, RuntimeError):
    """A bug in the env's own or its user's code, e.g. a verifier that raised: not the agent's
    fault and not infrastructure. The engine records ``failure="error"``; ``agentgym rollout``
    counts it in the summary and exits non-zero, and training stops on it."""


class TooManyInfraFailures(InfraError):
    """A rollout stopped because ``count`` episodes in a row failed on infrastructure: the server or
    sandbox is down, and running the rest would only record more failures. ``last`` is the last
    failure's detail; the finished episodes are on disk and ``--resume`` continues."""

    def __init__(self, count: int, last: str):
        super().__init__(f"{count} episodes in a row failed on infrastructure; the last: {last}")
        self.count, self.last = count, last


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


# -- storage ------------------------------------------------------------------------------------
class CorruptStoreError(AgentGymError, ValueError):
    """A line other than the last one is not a JSON object: the file was edited or damaged."""


# -- policies -----------------------------------------------------------------------------------
class ContextLengthExceeded(AgentGymError):
    """The conversation no longer fits the model's context window.

    Not a failure of the agent or of the infrastructure: the rollout engine ends the episode as
    truncated (``truncation_reason="context_length"``) and keeps the turns so far.
    """


class RequestRejectedError(AgentGymError, RuntimeError):
    """The server refused the request (a 4xx other than 429): wrong model name, bad parameter,
    prompt over the context length. Retrying cannot help, so it is raised at once."""

    def __init__(self, status_code: int, message: str):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class PromptTooLongError(RequestRejectedError, ContextLengthExceeded):
    """A 400 saying the prompt is over the model's context length (vLLM's and OpenAI's wording, or
    OpenAI's error code): the engine truncates the episode instead of stopping the run."""


# -- tools --------------------------------------------------------------------------------------
class ToolError(AgentGymError):
    """Raised by a tool for an error the agent caused and should read (a bad id, an action that
    is not allowed). It becomes the call's result message; the episode goes on."""
