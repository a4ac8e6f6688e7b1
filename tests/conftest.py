import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make tests/support.py importable everywhere

import agentgym  # noqa: E402
from agentgym import registry  # noqa: E402


@pytest.fixture
def test_envs() -> Iterator[None]:
    """Register the support envs for one test, then remove them (so registry-wide loops
    such as the env checker and the fuzz test never see the deliberately broken ones)."""
    ids = {"tests/Echo-v0": "support:EchoEnv", "tests/Flaky-v0": "support:FlakyEnv",
           "tests/Slow-v0": "support:SlowEnv"}
    for env_id, entry_point in ids.items():
        agentgym.register(env_id, entry_point, max_turns=4, force=True)
    yield
    for env_id in ids:
        registry.registry.pop(env_id, None)
        gymnasium.registry.pop(env_id, None)
