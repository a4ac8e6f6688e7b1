"""OpenEnv tests need openenv-core (the `openenv` extra; `dev` installs it)."""

import pytest

pytest.importorskip("openenv.core")
