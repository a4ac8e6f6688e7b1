"""Training recipes: YAML files mapped onto typed dataclasses, with ``a.b=value`` overrides.

Unknown keys are errors (a typo must not silently fall back to a default). The ``credit``
section is handed unchanged to :mod:`agentgym.credit`, which validates it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentgym.errors import RecipeError

from .generation import SamplingParams
from .losses import LossConfig
from .models import LoraConfig
from .recipes import RECIPES_DIR

__all__ = [
    "EnvConfig",
    "EvalConfig",
    "GenerationConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "RecipeError",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "load_recipe",
    "recipe_from_dict",
]



@dataclass
class EnvConfig:
    id: str = "agentgym/Bifurcation-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_turns: int | None = None


@dataclass
class ModelConfig:
    """``make_tiny``: build the embedded tiny model at ``path`` when nothing is there (demos)."""

    path: str = "runs/tiny-model"
    make_tiny: bool = False
    device: str = "auto"
    dtype: str = "auto"
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = False
    chat_template: str | None = None


@dataclass
class GenerationConfig:
    """``backend``: ``hf`` (transformers generate), ``vllm`` (in process), ``vllm-server``."""

    backend: str = "hf"
    sampling: SamplingParams = field(default_factory=SamplingParams)
    batch_size: int = 64
    vllm: dict[str, Any] = field(default_factory=dict)  # kwargs of the vLLM backend

    def __post_init__(self) -> None:
        if self.backend not in ("hf", "vllm", "vllm-server"):
            raise ValueError(f"backend must be hf, vllm or vllm-server, got {self.backend!r}")


@dataclass
class RolloutConfig:
    """``task_pool``: cycle over that many seeds from ``seed_start`` (None: a fresh seed per task).

    ``deterministic``: step envs on the event loop, not in threads, so that thread timing cannot
    change which episodes share a generation batch: a run then repeats exactly for its seed (on the
    same machine and device). Set it false for envs that block (sandboxes, servers), whose waits
    threads overlap.
    ``dynamic_sampling``: see :meth:`agentgym.trainers.trainer.Trainer.collect_batch`.
    ``ray``: step the envs in ``ray_workers`` Ray actors (extra ``ray``; ``ray_address`` as
    ``agentgym rollout --ray-address``, None: a local cluster) while generation stays on the
    trainer's model; see :mod:`agentgym.ray_rollout`. Actors answer in their own time, so it
    needs ``deterministic: false``.
    """

    tasks_per_iter: int = 8
    group_size: int = 8
    concurrency: int = 64
    seed_start: int = 0
    task_pool: int | None = None
    max_tokens: int | None = None
    step_timeout: float | None = None
    deterministic: bool = True
    dynamic_sampling: bool = False  # drop groups whose outcomes are all equal, roll out more (DAPO)
    max_sampling_rounds: int = 3  # with dynamic_sampling: rounds of tasks_per_iter tasks at most
    ray: bool = False
    ray_workers: int = 2
    ray_address: str | None = None
    mode: str = "episodes"
    success_bonus: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("episodes", "state_group"):
            raise ValueError(f"mode must be episodes or state_group, got {self.mode!r}")
        if self.mode == "state_group" and (self.dynamic_sampling or self.ray):
            raise ValueError("mode: state_group supports neither dynamic_sampling nor ray (every state group "
                             "is already informative or masked by the vpr credit stage)")
        if self.max_sampling_rounds < 1:
            raise ValueError(f"max_sampling_rounds must be >= 1, got {self.max_sampling_rounds}")
        if self.ray_workers < 1:
            raise ValueError(f"ray_workers must be >= 1, got {self.ray_workers}")
        if self.ray and self.deterministic:
            raise ValueError("ray: true needs deterministic: false (env steps come back from the Ray actors "
                             "in their own time, which decides which episodes share a generation batch)")


@dataclass
class OptimConfig:
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "constant"  # "constant" | "cosine"
    max_grad_norm: float = 1.0
    epochs: int = 1
    mini_batch_size: int | None = None  # trajectories per optimiser step (None: the whole batch)
    micro_batch_size: int = 8  # trajectories per forward/backward (gradient accumulation)
    # padded tokens per forward/backward (rows × longest row); None: micro_batch_size rows always.
    # Rows are grouped by length either way, so a budget mostly matters when lengths vary widely.
    micro_batch_tokens: int | None = None
    # run each micro-batch's rows concatenated into one row, no padding (position ids restart per
    # row; attention stays within each, checked once per model); micro_batch_tokens then counts
    # real tokens. Off by default: it pays off on widely ragged rows, but sdpa attends over the
    # whole packed row (masked), so rows of similar length ran slower packed (docs/benchmarks.md).
    packing: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be constant or cosine, got {self.schedule!r}")
        if self.micro_batch_size < 1 or (self.micro_batch_tokens is not None and self.micro_batch_tokens < 1):
            raise ValueError("micro_batch_size and micro_batch_tokens must be at least 1")


@dataclass
class SFTConfig:
    """Warm start by imitating the env's ε-greedy scripted expert before RL (0 steps: none).

    ``epsilon``: the share of random moves in the demonstrations (they visit states off the expert's
    path). ``imitate_exploration``: learn those random moves too (a deliberately imperfect start,
    as the Bifurcation demo wants) instead of only the expert's moves.
    """

    steps: int = 0
    episodes: int = 64
    epsilon: float = 0.3
    lr: float = 1e-3
    batch_size: int = 16
    imitate_exploration: bool = False


@dataclass
class EvalConfig:
    """Success rate on the task pool (sampled at the training temperature) before and after."""

    episodes_per_task: int = 0
    every: int = 0


@dataclass
class TrainConfig:
    """``threads``: torch's CPU threads (process-wide); None: one fewer than the usable cores, at
    most 8 (torch's own default takes them all, and its waiting threads spin: on a busy 2-core
    machine that made the demo's warm start ~10x slower; see ``auto_threads`` in trainers/trainer.py)."""

    iterations: int = 100
    max_seq_len: int = 4096
    out_dir: str = "runs/train"
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    tensorboard: bool = True
    plot: bool = True
    samples_per_iter: int = 4  # trajectories of each iteration kept in out_dir/samples/trajectories.jsonl
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or null: automatic), got {self.threads}")


@dataclass
class Recipe:
    name: str = "recipe"
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    credit: dict[str, Any] = field(default_factory=dict)
    info_gain: dict[str, Any] = field(default_factory=dict)  # GoldAnswerScorer kwargs
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {e}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _coerce(hint, value, where)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, where)
    if hint is float and not isinstance(value, bool) and isinstance(value, (int, str)):
        try:  # YAML 1.1 reads 3e-5 (no dot) as a string
            return float(value)
        except ValueError:
            raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if origin is tuple and args[-1:] == (Ellipsis,):  # tuple[str, ...]: any length
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise RecipeError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    expected = origin or hint
    if expected is typing.Any or isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is list and isinstance(value, str):  # e.g. lora.target_modules: all-linear
        return value
    raise RecipeError(f"{where}: expected {getattr(expected, '__name__', expected)}, got {value!r}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``a.b.c=value`` (value parsed as YAML) set into a nested dict copy."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"override {item!r} is not key=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return out


def recipe_from_dict(data: dict[str, Any], overrides: list[str] = ()) -> Recipe:
    return _build(Recipe, apply_overrides(data, list(overrides)), "recipe")


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Load a YAML recipe (a path, or the name of a bundled recipe such as ``gigpo_sokoban``)."""
    p = Path(path)
    if not p.exists() and (RECIPES_DIR / f"{p.stem}.yaml").exists():
        p = RECIPES_DIR / f"{p.stem}.yaml"
    if not p.exists():
        raise RecipeError(f"no recipe at {path} (bundled: {sorted(q.stem for q in RECIPES_DIR.glob('*.yaml'))})")
    return recipe_from_dict(yaml.safe_load(p.read_text()) or {}, overrides)


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return re.sub(r"\b(?:[a-z_]\w*\.)+(?=[A-Za-z])", "", str(hint))  # typing.Any -> Any, a.b.LoraConfig -> LoraConfig


def recipe_reference() -> str:
    """Every recipe key with its type and default, as Markdown, read off the dataclasses above (so it
    cannot drift from them): ``agentgym recipe-keys`` prints it and docs/RECIPES.md holds it."""
    lines = ["# Recipe keys", "",
             "Generated by `agentgym recipe-keys` from the recipe dataclasses (agentgym/trainers/config.py);",
             "tests/trainers/test_trainer.py checks that this file is up to date. Override any key on the",
             "command line as `section.key=value`, e.g. `agentgym train demo_bifurcation optim.lr=1e-5`.", ""]

    def section(cls: type, prefix: str) -> None:
        doc = " ".join((cls.__doc__ or "").split()) if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else ""
        lines.extend([f"## `{prefix or 'top level'}`", ""] + ([doc, ""] if doc else [])
                     + ["| key | type | default |", "| --- | --- | --- |"])
        nested = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)] or (
                [hint] if dataclasses.is_dataclass(hint) else [])
            key = f"{prefix}.{f.name}" if prefix else f.name
            if inner and f.default is dataclasses.MISSING:
                nested.append((inner[0], key))
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            else:
                default = f.default_factory()  # type: ignore[misc]
            if inner:
                nested.append((inner[0], key))
            note = " (the credit pipeline: see docs/credit.md)" if key == "credit" else ""
            lines.append(f"| `{key}` | `{_type_name(hint)}` | `{default!r}`{note} |")
        lines.append("")
        for cls_, key in nested:
            section(cls_, key)

    section(Recipe, "")
    return "\n".join(lines)
