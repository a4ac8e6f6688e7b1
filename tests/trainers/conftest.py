from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Qwen2 model + tokenizer for the whole session (built locally, ~5 s)."""
    from agentgym.trainers.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def credit_fn():
    """The credit library's pipeline when it is there, else the GRPO test double."""
    from agentgym.trainers.credit_bridge import assign_credit
    from trainer_support import outcome_credit

    try:
        import agentgym.credit as credit

        credit.TurnBatch, credit.build_pipeline  # noqa: B018 — the API the bridge needs
        return assign_credit
    except (ImportError, AttributeError):
        return outcome_credit
