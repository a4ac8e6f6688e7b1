"""Typer commands of the trainer, mounted by the core CLI as ``agentgym train`` and
``agentgym make-tiny-model`` (kept here so ``agentgym`` itself never imports torch)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .recipes import summaries

__all__ = ["make_tiny_model", "recipe_keys", "train"]

console = Console(soft_wrap=True)  # paths and ids stay whole, so they can be copied
_SHOWN = (("rollout/success_rate", "success"), ("eval/success_rate", "eval"), ("collapse/entropy", "entropy"),
          ("collapse/group_reward_std", "group std"), ("collapse/clip_fraction", "clip"),
          ("collapse/grad_norm", "|g|"), ("collapse/void_ratio", "void"), ("collapse/truncated_turns", "cut"))


def train(
    recipe: str = typer.Argument(..., help="Recipe YAML path, or a bundled recipe name (e.g. demo_bifurcation)."),
    overrides: list[str] = typer.Argument(None, help="Overrides key.sub=value, e.g. optim.lr=1e-5."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from the latest checkpoint in out_dir."),
) -> None:
    """Train a policy with a YAML recipe: rollouts → credit assignment → PPO updates."""
    from agentgym.registry import UnknownEnvError

    from .config import RecipeError, load_recipe
    from .trainer import Trainer

    try:
        rec = load_recipe(recipe, overrides or [])
        with console.status(f"loading the model ({rec.model.path}) and the env"):
            trainer = Trainer(rec, resume=resume)
    except (RecipeError, UnknownEnvError, FileNotFoundError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"[bold]{rec.name}[/]: {rec.env.id}, model {rec.model.path}, out {rec.train.out_dir}"
                  + (f" (resuming at iteration {trainer.iteration})" if trainer.iteration else ""))
    total = rec.train.iterations
    with Progress(TextColumn("[bold]iter"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[phase]}"), console=console) as progress:
        task = progress.add_task("", total=total, completed=trainer.iteration, phase="")

        def on_phase(phase: str) -> None:
            done = progress.tasks[0].completed
            where = "before RL" if done == 0 and phase in ("SFT warm start", "eval") else f"iteration {done + 1}"
            progress.update(task, phase=f"{where}: {phase}")

        def on_iteration(i: int, metrics: dict) -> None:
            text = "  ".join(f"{label} {metrics[k]:.3g}" for k, label in _SHOWN if k in metrics)
            # A whole line per iteration (a bar's status would be cut to the width of the terminal).
            label = "iter 0 (after the warm start, before RL)" if i == 0 else f"iter {i}/{total}"
            progress.console.print(f"{label}: {text or 'no eval'}")
            progress.update(task, completed=i, phase="")

        try:
            rows = trainer.fit(on_iteration, on_phase=on_phase)
        finally:
            trainer.close()
    trainer.logger.close()
    evals = [r["eval/success_rate"] for r in rows if "eval/success_rate" in r]
    if len(evals) >= 2:
        console.print(f"eval success rate: {evals[0]:.3f} → {evals[-1]:.3f}")
    console.print(f"metrics: {trainer.logger.path}")
    if rec.train.plot:
        console.print(f"learning curve: {Path(rec.train.out_dir) / 'learning_curve.png'}")


# `train --help` names the bundled recipes ("\b": Click keeps the lines as they are).
train.__doc__ += "\n\n\b\nBundled recipes (agentgym train NAME):\n" + "\n".join(
    f"  {name}: {escape(summary)}" for name, summary in summaries().items())


def make_tiny_model(
    out_dir: Path = typer.Argument(..., help="Directory to write the model and tokenizer to."),
    hidden_size: int = typer.Option(128, help="Hidden size."),
    layers: int = typer.Option(2, help="Transformer layers."),
    vocab_size: int = typer.Option(1024, help="BPE vocabulary size (trained on the built-in envs' text)."),
    seed: int = typer.Option(0, help="Seed of the weights and the tokenizer corpus."),
) -> None:
    """Build a tiny Qwen2-architecture causal LM + tokenizer locally (no download)."""
    from .tiny import make_tiny_model as build

    path = build(out_dir, hidden_size=hidden_size, num_layers=layers, vocab_size=vocab_size, seed=seed)
    console.print(f"wrote {path}")


def recipe_keys() -> None:
    """Print every recipe key with its type and default (Markdown; the same as docs/RECIPES.md)."""
    from .config import recipe_reference

    typer.echo(recipe_reference())
