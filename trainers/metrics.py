"""Run metrics: JSONL always, TensorBoard when installed; plus the collapse signals of a batch."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.trajectory import Trajectory

__all__ = ["MetricsLogger", "plot_learning_curve", "rollout_metrics"]


class MetricsLogger:
    """Appends one JSON object per iteration to ``metrics.jsonl``; mirrors scalars to TensorBoard."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = True):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"iteration": step, **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def rollout_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    """Success, reward and length, and the collapse signals: per-group reward std (mean, and the
    fraction of groups with no signal at all), the void-trajectory ratio and the share of turns
    cut at the token limit."""
    groups: dict[str, list[float]] = defaultdict(list)
    for t in trajs:
        groups[t.group_id].append(t.outcome)
    stds = [float(np.std(v)) for v in groups.values()]
    n = max(len(trajs), 1)
    turns = [u for t in trajs for u in t.turns]
    return {
        "rollout/success_rate": sum(t.success for t in trajs) / n,
        "rollout/outcome_mean": sum(t.outcome for t in trajs) / n,
        "rollout/turns_mean": sum(t.num_turns for t in trajs) / n,
        "rollout/completion_tokens_mean": sum(len(u.action_token_ids or ()) for t in trajs for u in t.turns)
        / max(sum(t.num_turns for t in trajs), 1),
        "rollout/infra_failures": sum(t.failure == "infra" for t in trajs),
        "collapse/group_reward_std": float(np.mean(stds)) if stds else 0.0,
        "collapse/zero_std_groups": float(np.mean([s < 1e-6 for s in stds])) if stds else 0.0,
        "collapse/void_ratio": sum(any(u.void for u in t.turns) for t in trajs) / n,
        # turns cut at max_new_tokens: a policy that stops emitting end-of-turn fails every turn
        "collapse/truncated_turns": sum(u.finish_reason == "length" for u in turns) / max(len(turns), 1),
    }


def plot_learning_curve(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Training success per iteration (and eval success where logged) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(r["iteration"], r["rollout/success_rate"]) for r in rows if "rollout/success_rate" in r]
    evals = [(r["iteration"], r["eval/success_rate"]) for r in rows if "eval/success_rate" in r]
    if train:
        ax.plot(*zip(*train, strict=True), label="training rollouts", alpha=0.7)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval")
    ax.set_xlabel("RL iteration")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
