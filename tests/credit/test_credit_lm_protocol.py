"""bench/credit_lm_protocol.py (issue 24): cells and pools, the exact metric's contexts, early
stopping, the lr choice, the paired-ratio CI and the decision rule, the format-start guard, the
grid rows' pipelines (AEM, SPA) and (with torch) every stage and the AEM / SPA rows end to end
on a tiny budget, rerun-skipping included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("credit_lm_protocol") as module:
        yield module


def test_cells_place_the_decisive_stages(bench) -> None:
    cell = bench.Cell.parse
    assert cell("4:early").stars == (0,) and cell("8:middle").stars == (4,) and cell("8:late").stars == (7,)
    assert cell("8:early:papers").stars == (0, 1) and cell("8:middle:papers").stars == (3, 4)
    assert cell("8:late:papers").stars == (6, 7)  # the last turn is decisive: the control
    kw = cell("8:middle:papers").env_kwargs()
    assert kw["t_stars"] == [3, 4] and kw["independent_outcomes"] and (kw["p_good"], kw["p_bad"]) == (0.9, 0.1)
    assert cell("4:early").env_kwargs()["p_good"] == 1.0 and cell("8:late:papers").name == "H8-late-papers"
    for bad in ("4", "4:first", "x:early", "4:early:tabular", "2:early:papers"):
        with pytest.raises(ValueError):
            cell(bad)


@pytest.mark.parametrize("text", ["4:early", "8:early", "8:middle", "8:late", "8:early:papers", "8:middle:papers",
                                  "8:late:papers"])
def test_every_cell_gets_a_balanced_pool_at_every_decisive_stage(bench, text: str) -> None:
    cell = bench.Cell.parse(text)
    start = bench.balanced_start(cell, 4)
    assert not bench.pool_problems(cell, start, 4)
    tasks = bench.pool(cell, start, 4)
    for s in cell.stars:
        assert len({t[s][0] for t in tasks}) == 4  # distinct decisive scenes per stage
    assert bench.pool_problems(bench.Cell.parse("4:early"), 0, 4)  # the old aliased pool is caught


def test_decisive_contexts_follow_the_expert_to_each_decisive_stage(bench) -> None:
    cell = bench.Cell.parse("8:middle:papers")
    contexts = bench.decisive_contexts(cell, [5, 6], "SYS")
    assert [len(c) for c in contexts] == [2, 2]
    for task in contexts:
        (first, good3), (second, good4) = task
        assert first[0] == {"role": "system", "content": "SYS"} and good3 in "123" and good4 in "123"
        assert sum(m["role"] == "assistant" for m in first) == 3 and "Stage 4 of 8" in first[-1]["content"]
        assert second[: len(first)] == first and second[len(first)]["content"] == good3  # good at stage 3
        assert "Stage 5 of 8" in second[-1]["content"]


def test_held_and_auc(bench) -> None:
    curve = [(0, 0.3), (64, 0.95), (128, 0.5), (192, 0.92), (256, 0.97)]
    assert bench.held(curve, 2) == 192 and bench.held(curve, 1) == 64 and bench.held(curve[:4], 2) is None
    assert bench.auc([(0, 0.5), (100, 1.0)], 400) == pytest.approx((0.5 * 100 + 1.0 * 300) / 400)  # carried on


def rl(method: str, lr: float, seed: int, to90: int | None, auc: float = 0.5, phase: str = "sweep") -> dict:
    return {"kind": "rl", "method": method, "lr": lr, "seed": seed, "episodes_to_90": to90, "budget": 3200,
            "auc": auc, "phase": phase}


def test_best_lr_counts_a_run_that_never_held_as_beyond_the_budget(bench) -> None:
    rows = [rl("grpo", 1e-3, 0, 640), rl("grpo", 1e-3, 1, None), rl("grpo", 3e-3, 0, 960), rl("grpo", 3e-3, 1, 1280),
            rl("grpo", 3e-4, 0, 640, 0.9, "paired"), rl("oracle", 1e-3, 0, None, 0.2), rl("oracle", 3e-3, 0, None, 0.4)]
    assert bench.best_lr(rows, "grpo") == 3e-3  # median 1120 < (640 + 3200) / 2; paired rows do not vote
    assert bench.best_lr(rows, "oracle") == 3e-3  # both censored: the larger area wins
    assert bench.best_lr(rows, "gigpo") is None


def test_paired_ratios_and_the_decision_rule(bench) -> None:
    lrs = {"grpo": 1e-3, "oracle": 3e-3}
    rows = [rl("grpo", 1e-3, s, 640) for s in range(4)] + [rl("oracle", 3e-3, s, x) for s, x in
                                                           enumerate([192, 256, 160, None])]
    rows.append(rl("oracle", 1e-3, 0, 64))  # not at the tuned lr: ignored
    ratios = bench.paired_ratios(rows, "oracle", lrs)
    assert ratios == {0: 0.3, 1: 0.4, 2: 0.25, 3: 5.0}  # seed 3 never held: counted at the budget
    assert bench.verdict([0.3, 0.4, 0.25, 0.35])[0] == "clears"
    assert bench.verdict([0.8, 0.9, 0.7])[0] == "no"
    v, mean, (lo, hi) = bench.verdict([0.1, 0.2, 0.9, 0.3, 0.1])
    assert v == "not shown" and mean <= 0.5 < hi and lo < mean
    assert bench.bootstrap_ci([0.4]) == (0.4, 0.4)


def test_a_start_that_is_not_at_chance_stops_the_bench(bench, tmp_path: Path) -> None:
    cell = bench.Cell.parse("4:early")
    b = bench.Bench(bench.QUICK, tmp_path / "runs.jsonl", tmp_path, log=lambda s: None)
    start_dir = tmp_path / f"{cell.name}-{b.hash}-format-start"
    start_dir.mkdir()
    (start_dir / "config.json").write_text("{}")
    row = {"kind": "format_start", "cell": cell.name, "cfg": b.hash, "valid_share": 0.95, "pi_good": [0.9, 0.1],
           "at_chance": False}
    (tmp_path / "runs.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(RuntimeError, match="not valid-and-at-chance"):
        b.starts(cell)


def test_quick_mode_runs_every_stage_and_the_new_grid_rows_and_a_rerun_skips_them(bench, capsys) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "rerun skipped all of them" in out and "format-only start" in out and "representability" in out
    assert "| grpo | 1e-03 |" in out and "| oracle | 1e-03 |" in out and "**oracle / GRPO**" in out
    for m in ("aem", "spa", "spa_text"):  # AEM after GRPO, SPA on model and on text features
        assert f"| {m} | 1e-03 |" in out and f"**{m} / GRPO**" in out
    assert "| gigpo |" not in out  # bench/credit_lm.py's test trains GiGPO / IGPO / A²TGPO: not twice
    assert "aem log-prob share 1.00" in out and "(model features)" in out


def test_grid_rows_are_pipelines_with_the_new_stages_in_place(bench) -> None:
    from agentgym.credit import build_pipeline

    assert {"aem", "spa", "spa_text"} <= set(bench.GRID_METHODS) <= set(bench.METHODS)
    names = {m: [st.name for st in build_pipeline(bench.METHODS[m][0]).stages] for m in bench.GRID_METHODS}
    assert names["aem"] == ["invalid_turn_penalty", "outcome", "aem"]  # AEM rescales GRPO's advantage
    assert names["spa"] == names["spa_text"] == ["invalid_turn_penalty", "spa"]
    assert build_pipeline(bench.METHODS["spa"][0]).needs_model  # so the trainer builds the scorer it reads
    assert not build_pipeline(bench.METHODS["spa_text"][0]).needs_model


def test_the_quick_check_catches_a_missing_row_or_a_silent_aem(bench) -> None:
    diag = {"credit/aem_known_share": 1.0, "credit/spa_fit_rmse": 0.3}
    rows = [{"kind": "rl", "method": m, "credit_mean": diag} for m in ("aem", "spa", "spa_text")]
    assert "aem log-prob share 1.00" in bench.check_new_rows(rows)
    with pytest.raises(AssertionError, match="did not run"):
        bench.check_new_rows(rows[:-1])
    rows[0]["credit_mean"] = {"credit/aem_known_share": 0.0}
    with pytest.raises(AssertionError, match="without action log-probs"):
        bench.check_new_rows(rows)


def test_the_report_says_when_neither_run_held_the_threshold(bench) -> None:
    rows = [{**rl(m, 1e-3, s, None), "final": 0.7, "sampled_final": 0.7, "mass": 0.3, "loc": 0.5, "iterations": 100,
             "wall_s": 1.0} for m in ("grpo", "oracle") for s in range(3)]
    text = "\n".join(bench.cell_report(bench.Cell.parse("4:early"), rows))
    assert "per seed {0: 1.0, 1: 1.0, 2: 1.0}" in text and "on 3 of 3 seeds neither run held 0.9" in text
    assert "| grpo | 1e-03 | sweep | 3 | >3200 [—–>3200] (0/3) |" in text


def test_the_report_counts_stuck_tasks_and_whether_their_good_label_is_stage_unique(bench) -> None:
    cell = bench.Cell.parse("4:early")
    start = bench.balanced_start(cell, 4)
    tasks = bench.pool(cell, start, 4)
    labels = [t[0][1] for t in tasks]
    unique = [i for i, x in enumerate(labels) if labels.count(x) == 1]
    shared = [i for i in range(4) if i not in unique]
    assert unique and shared  # 4 tasks, 3 labels, none on more than half: both kinds exist
    assert bench.unique_stages(cell, tasks) == [[0] if i in unique else [] for i in range(4)]
    u, s = unique[0], shared[0]

    def last(*stuck: int) -> list[float]:
        return [0.01 if i in stuck else 0.95 for i in range(4)]

    start_row = {"kind": "format_start", "seed_start": start, "config": {"tasks": 4}, "sft_steps": 150,
                 "valid_share": 1.0, "pi_good": [0.3] * 4, "at_chance": True}
    runs = [last(u), last(), last(u, s)]  # seeds 0-2; GRPO and the oracle share them here
    rows = [start_row] + [{**rl(m, 1e-3, seed, None), "per_task_last": p, "final": 0.7, "sampled_final": 0.7,
                           "mass": 0.3, "loc": 0.5, "iterations": 100, "wall_s": 1.0}
                          for m in ("grpo", "oracle") for seed, p in enumerate(runs)]
    text = "\n".join(bench.cell_report(cell, rows))
    assert "stuck tasks (exact π < 0.05 at the end)" in text and "grpo 2 / 3 runs, oracle 2 / 3 runs" in text
    assert "4 of 6 stuck task-runs are tasks with a stage-unique good label" in text
    assert f"task {u} (t0 label {labels[u]} unique) 4 (2 alone)" in text
    assert f"task {s} (no unique label) 2 (0 alone)" in text
    assert f"Stuck together (the set of stuck tasks per run, both methods): {{{u}}} 2, {{{min(u, s)}, {max(u, s)}}} 2" in text
