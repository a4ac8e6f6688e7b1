"""Typer commands of the trainer, mounted by the core CLI as ``agentgym train`` and
``agentgym make-tiny-model`` (kept here so ``agentgym`` itself never imports torch)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from .progress import Progress
    from .trainer import Trainer

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
    progress_every: float = typer.Option(
        10.0, "--progress-every", min=0,
        help="Seconds between progress lines when the output is not a terminal (a file, a pipe); 0: every step."),
) -> None:
    """Train a policy with a YAML recipe: rollouts → credit assignment → PPO updates.

    Ctrl-C stops it and says what is saved and how to resume."""
    import torch

    from agentgym.registry import UnknownEnvError

    from .config import RecipeError, load_recipe
    from .progress import ConsoleProgress
    from .trainer import Trainer

    again = shlex.join([_program(), "train", recipe, *(overrides or [])])  # resumes: --resume is the default
    try:
        rec = load_recipe(recipe, overrides or [])
        if not console.is_terminal:  # a spinner shows nothing in a file
            console.print(f"loading the model ({rec.model.path}) and the env")
        with console.status(f"loading the model ({rec.model.path}) and the env"):
            trainer = Trainer(rec, resume=resume)
    except (RecipeError, UnknownEnvError, FileNotFoundError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print(f"[bold yellow]interrupted[/] while loading: nothing saved. Start again with:\n  {again}")
        raise typer.Exit(130) from None
    console.print(f"[bold]{rec.name}[/]: {rec.env.id}, model {rec.model.path}, out {rec.train.out_dir}, "
                  f"{torch.get_num_threads()} CPU threads"
                  + (f" (resuming at iteration {trainer.iteration})" if trainer.iteration else ""))
    total = rec.train.iterations
    progress = ConsoleProgress(console, total, start=trainer.iteration, every=progress_every)

    def on_iteration(i: int, metrics: dict) -> None:
        text = "  ".join(f"{label} {metrics[k]:.3g}" for k, label in _SHOWN if k in metrics)
        # A whole line per iteration (a bar's status would be cut to the width of the terminal).
        label = "iter 0 (after the warm start, before RL)" if i == 0 else f"iter {i}/{total}"
        console.print(f"{label}: {text or 'no eval'}")

    try:
        with progress:
            rows = trainer.fit(on_iteration, progress=progress)
    except KeyboardInterrupt:
        console.print(_interrupted(trainer, progress, again))
        raise typer.Exit(130) from None
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


def _program() -> str:
    """How this process was started, when it was the ``agentgym`` script (``.venv/bin/agentgym``
    in scripts/demo.sh), so that the resume line can be pasted as it is."""
    return sys.argv[0] if Path(sys.argv[0]).name == "agentgym" else "agentgym"


def _interrupted(trainer: Trainer, progress: Progress, again: str) -> str:
    """What Ctrl-C stopped, what is on disk, and the command that resumes from it."""
    phase = progress.phase
    where = progress.where() + (f", {phase.name} ({phase.status()})" if phase is not None else "")
    ckpt = trainer.latest_checkpoint()
    if ckpt is None:
        return (f"[bold yellow]interrupted[/] ({where}): nothing saved yet (the first checkpoint comes after the "
                f"SFT warm start and the first eval). Start again with:\n  {again}")
    done = int(ckpt.name.split("_")[1])
    logged = max((r["iteration"] for r in trainer.logger.read()), default=0)
    redo = f"; iterations {done + 1}-{logged} in it are run again" if logged > done else ""
    return (f"[bold yellow]interrupted[/] ({where}). Saved: checkpoint {ckpt} (iteration {done}/{progress.iterations}), "
            f"metrics to iteration {logged} in {trainer.logger.path}{redo}. Resume with:\n  {again}")


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
