"""bench/credit_lm.py --smoke: the tiny transformer trains with each credit method through the real
trainer and the report is written. No assertion on which method wins (the budget is tiny)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import bench_module

pytest.importorskip("torch")
pytest.importorskip("transformers")


# One tiny training run per method plus a tokenizer build (issue 13 asks CI to run it).
def test_quick_mode_runs_every_method_and_writes_the_report(tmp_path: Path) -> None:
    with bench_module("credit_lm") as module:
        rows = module.run_grid(module.SMOKE, [(4, "early")], list(module.METHODS), [0], workers=1,
                               model_dir=tmp_path / "model")
        text = module.write_report(rows, {**module.SMOKE, "command": "test", "machine": "ci", "note": ""}, tmp_path)
    assert len(rows) == len(module.METHODS)
    budget = module.SMOKE["iterations"] * module.SMOKE["tasks"] * module.SMOKE["group"]
    for r in rows:
        assert r["budget"] == budget and r["t_star"] == 0
        assert [ep for ep, _ in r["curve"]] == list(range(0, budget + 1, module.SMOKE["tasks"] * module.SMOKE["group"]))
        assert all(0.0 <= s <= 1.0 for _, s in r["curve"]) and 0.0 <= r["loc"] <= 1.0
        assert r["episodes_to_90"] is None or 0 <= r["episodes_to_90"] <= budget
    for method in module.METHODS:  # one row per method: its pool check, then 1 run
        assert re.search(rf"^\| 4 \| early \(0\) \| {method} \| [^|]+ \| 1 \|", text, re.MULTILINE), method
    assert (tmp_path / "credit_lm.md").exists() and (tmp_path / "credit_lm.png").stat().st_size > 0
