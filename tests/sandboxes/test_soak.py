"""A short soak (bench/sandbox_soak.py runs the long one): sandbox lifecycles with random faults
(sandbox killed, executor killed from the host, owner process SIGKILLed then the reaper run)
leave no container and no process behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from sandbox_soak import FAULTS, soak  # noqa: E402


@pytest.mark.slow
def test_faulty_lifecycles_leave_nothing_behind(backend: str) -> None:
    result = soak(60, backend, seed=1)
    assert set(result["faults"]) == set(FAULTS)
    assert result["containers_left"] == 0 and result["processes_left"] == 0, result
