from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Qwen2 model + tokenizer for the whole session (built locally, ~5 s)."""
    from agentgym.trainers.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny"))

