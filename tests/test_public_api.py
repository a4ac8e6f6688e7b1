"""The public API holds still: each package's ``__all__`` is pinned here (as httpx pins its own).

A change to one of these lists is a change to the public API: make it on purpose, update the list
here in the same commit, and keep old names importable.
"""

import importlib
import types

import pytest

PINNED: dict[str, list[str]] = {
    "agentgym": [
        "INFO_DEFAULTS", "SCHEMA_VERSION", "AgentGymError", "EnvSpec", "Failure", "InfraError", "Text", "TextEnv",
        "Tool", "ToolEnv", "ToolError", "Trajectory", "TruncationReason", "Turn", "UnknownEnvError", "__version__",
        "load_yaml", "make", "register", "spec", "tool",
    ],
    "agentgym.errors": [
        "AgentGymError", "AlreadyRegisteredError", "ConfigError", "ContextLengthExceeded", "CorruptStoreError", "EnvCodeError",
        "InfraError", "NameNotFoundError", "PromptTooLongError", "RecipeError", "RegistryError",
        "RequestRejectedError", "SandboxCrashed", "SandboxError", "SandboxTimeout", "SandboxUnavailable",
        "TemplateError", "ToolError", "TooManyInfraFailures", "UnknownEnvError", "VersionNotFoundError",
    ],
    "agentgym.registry": ["EnvSpec", "UnknownEnvError", "check_env_config", "load_yaml", "make", "register",
                          "registry", "spec", "unregister"],
    "agentgym.credit": [
        "IGPO_NORM", "STAGES", "VERL_NORM", "CreditResult", "GoldAnswerScorer", "LookupScorer", "Norm", "Pipeline",
        "TurnBatch", "a2tgpo", "aem", "aem_weights", "anchor_groups", "answer_clusters", "assign_credit", "broadcast_to_tokens",
        "build_pipeline", "credit_records", "discounted_suffix_sum", "fit_progress", "gigpo", "gold_answer", "gold_logprobs",
        "gold_token_range", "group_filter", "grpo", "igpo", "information_gain", "invalid_action_penalty",
        "invalid_turn_penalty", "is_void_simpletir", "load_config", "mapo", "match_tool_calls", "matchtir",
        "matchtir_turn_rewards", "normalise_answer", "optimal_assignment", "response_surprisal", "rloo",
        "segment_mean_std", "siop", "siop_rewards", "spa", "spa_rewards", "summary", "tempo", "text_contexts", "text_features", "token_turn_ids", "tool_similarity",
        "turn_level_ratio", "void_loss_mask", "vpr", "zscore",
    ],
    "agentgym.policies": [
        "POLICIES", "Completion", "ContextLengthExceeded", "Message", "OpenAIChatPolicy", "Policy",
        "PromptTooLongError", "RandomPolicy", "RequestRejectedError", "ScriptedPolicy", "make_policy",
        "parse_chat_completion",
    ],
    "agentgym.envs": [],
    "agentgym.envs.code": ["register_code_envs"],
    "agentgym.envs.search": ["register_search_envs"],
    "agentgym.envs.toolworld": ["register_toolworld_envs"],
    "agentgym.tools": ["Tool", "ToolEnv", "ToolError", "describe_tool_compact", "format_tool_calls", "tool",
                       "tool_schema", "validate_arguments"],
    "agentgym.sandboxes": [
        "BACKEND_ENV", "DEFAULT_IMAGE", "AsyncSandbox", "BaseSandbox", "DockerSandbox", "ExecResult", "LocalSandbox",
        "Sandbox", "SandboxCrashed", "SandboxError", "SandboxPool", "SandboxSpec", "SandboxTimeout",
        "SandboxUnavailable", "make_sandbox", "select_backend",
    ],
    "agentgym.trainers": [],
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_all_is_pinned_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PINNED[name]), f"{name}.__all__ changed: update PINNED on purpose"
    assert len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_agentgym_exports_every_public_name_it_defines() -> None:
    """Nothing public sits in ``agentgym``'s namespace without being in ``__all__`` (httpx's check)."""
    import agentgym

    public = {n for n, v in vars(agentgym).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)
              and getattr(v, "__module__", "").startswith("agentgym")}
    assert public <= set(agentgym.__all__)


def test_every_error_is_an_agentgym_error_and_keeps_its_builtin_base() -> None:
    """One hierarchy, and the bases older ``except`` clauses rely on."""
    from agentgym import errors

    for attr in errors.__all__:
        assert issubclass(getattr(errors, attr), errors.AgentGymError), attr
    assert issubclass(errors.UnknownEnvError, KeyError)
    assert issubclass(errors.InfraError, RuntimeError) and issubclass(errors.SandboxTimeout, errors.InfraError)
    for attr in ("ConfigError", "RecipeError", "TemplateError", "CorruptStoreError", "AlreadyRegisteredError"):
        assert issubclass(getattr(errors, attr), ValueError), attr


@pytest.mark.parametrize(("module", "attr"), [
    ("agentgym.core", "InfraError"), ("agentgym.registry", "UnknownEnvError"), ("agentgym.store", "CorruptStoreError"),
    ("agentgym.policies.base", "ContextLengthExceeded"), ("agentgym.policies.openai_chat", "RequestRejectedError"),
    ("agentgym.policies.openai_chat", "PromptTooLongError"), ("agentgym.tools", "ToolError"),
    ("agentgym.sandboxes.errors", "SandboxError"), ("agentgym.sandboxes.errors", "SandboxUnavailable"),
    ("agentgym.trainers.config", "RecipeError"), ("agentgym.trainers.chat", "TemplateError"),
])
def test_old_import_paths_still_work(module: str, attr: str) -> None:
    from agentgym import errors

    assert getattr(importlib.import_module(module), attr) is getattr(errors, attr)
