from __future__ import annotations

from pathlib import Path

import pytest

from agentgym.envs.search.data import KnowledgeBase, generate_kb


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return generate_kb(1500, 0, (1, 2, 3), 1000)  # SearchEnv(kb_docs=1500)'s KB


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One BM25 cache for the session, never the user's ~/.cache."""
    return tmp_path_factory.mktemp("agentgym-cache")
