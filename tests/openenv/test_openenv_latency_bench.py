"""bench/openenv_latency.py runs and prints its side-by-side table (a short run: the numbers in
docs/benchmarks.md come from the full one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_latency_bench_prints_every_row_with_its_ratio() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "openenv_latency.py"), "--steps", "30"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[1].startswith("load before:") and "load average" in lines[1]
    rows = {line[:22].strip(): line[22:].split() for line in lines[4:]}
    assert set(rows) == {"in-process env.step", "openenv-core client", "agentgym OpenEnvEnv"}
    assert rows["in-process env.step"][-2:] == ["1", "1"]
    assert all(float(cells[0].removesuffix("ms")) > 0 for cells in rows.values())
