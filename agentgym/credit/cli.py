"""``agentgym advantages``: run a credit pipeline over a rollout directory (numpy only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["ADVANTAGES", "advantages"]

ADVANTAGES = "advantages.jsonl"
console = Console(soft_wrap=True)  # paths and ids stay whole, so they can be copied
# The summary's less obvious rows, explained under the table.
_TERMS = {
    "trained turn share": "fraction of turns with loss mask 1, i.e. that the trainer learns from "
                          "(void, filtered and infra-failed turns are not, nor VPR's state groups of one "
                          "candidate or of equal rewards)",
    "singleton anchor share": "fraction of GiGPO anchor groups (turns of a prompt group in the same "
                              "state) with a single turn: their step advantage is 0, so near 1 "
                              "means GiGPO is doing little more than episode-level GRPO",
}


def advantages(
    run_dir: Path = typer.Argument(..., help="A rollout directory (holds trajectories.jsonl).",
                                   exists=True, file_okay=False),
    config: Path = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                help="Credit config YAML (stages list or {method: ...}); default: GRPO."),
    out: Path = typer.Option(None, help=rf"Where to write the per-turn credit. \[default: RUN_DIR/{ADVANTAGES}]"),
) -> None:
    """Compute per-turn advantages, loss masks and clip scales for a rollout and print a summary.

    Writes one JSON line per trajectory (ids, per-turn ``advantages``, ``loss_mask``,
    ``clip_scale`` and each stage's component) beside the trajectories. The file is replaced
    atomically, so rerunning with another config never leaves a half-written file.
    """
    from agentgym.store import CorruptStoreError, TrajectoryStore

    from .pipeline import build_pipeline
    from .report import credit_records, summary

    store = TrajectoryStore(run_dir)
    if not store.path.exists():
        console.print(f"[bold red]error:[/] {store.path} does not exist (is {run_dir} a rollout directory?)")
        raise typer.Exit(2)
    try:
        pipeline = build_pipeline(config)
        if pipeline.needs_model:
            raise ValueError("this config needs the policy model (gold-answer or reference-answer log-probs for "
                             "information gain and SIOP; hidden states for SPA's features: model): "
                             "compute them in training (`agentgym train`), not from a rollout directory "
                             "(SPA runs here with features: text)")
        trajectories = list(store.iter_dicts())
    except (ValueError, TypeError, CorruptStoreError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    if not trajectories:
        console.print(f"[bold red]error:[/] {store.path} holds no trajectories")
        raise typer.Exit(2)
    result = pipeline(trajectories)
    out = out or run_dir / ADVANTAGES
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w") as f:
        for rec in credit_records(result):
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    os.replace(tmp, out)

    console.print(repr(pipeline), markup=False, highlight=False)  # whole: it is the config that ran
    rows = summary(result)
    table = Table("credit", "value")
    for key, value in rows.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    for term, meaning in _TERMS.items():
        if term in rows:
            console.print(f"[bold]{term}[/]: {meaning}")
    console.print(f"wrote {out}")
