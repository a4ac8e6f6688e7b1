"""Issue 24's protocol: does turn-level credit help a shared-weights policy? Ceilings first.

``bench/credit_lm.py`` ran GRPO / GiGPO / IGPO / A²TGPO for 12 optimiser steps from an ε-greedy SFT
start that each seed rebuilt, scored by a 32-episode sampled eval: the seed decided, and a 2×
difference was below the metric's noise. This successor asks the question in an order that can
answer it, on the same tiny transformer (weights shared by every turn) and Bifurcation-v0:

1. **Pools** perceivable and balanced at every decisive stage (distinct decisive scenes, no good
   label on more than half the tasks; :func:`credit_lm.pool_problems`), asserted and printed.
2. **One format-only start per cell**, built once and shared by every run of the cell: SFT on
   ε = 1 episodes (every label uniform, all imitated), so the model emits valid turns and knows
   nothing about which label is good. Checked: sampled valid-turn share ≥ ``min_valid`` and π(good | t*)
   within ``chance_tol`` of 1/n_options on every task and decisive stage, else the bench stops.
   Seeds then change only the RL sampling and update order.
3. **An exact metric**: π(good | decisive context) per task, from the model's log-probs of each
   label's completion (the label and end-of-turn, as the expert writes it) after the expert's
   path to that stage, normalised over the labels (no sampling); a task's value is the product
   over its decisive stages, the cell's the mean over tasks. Scored every ``check_every``
   iterations. **Primary**: training episodes until the mean is ≥ 0.9 at ``hold`` consecutive
   checks (the first of them); **secondary**: its area under the curve over the whole budget (the
   last value carried after an early stop) and a sampled end-of-run success.
4. **Budget** ``max_iters`` (≥ 100) optimiser steps, one per iteration of ``tasks × group``
   rollouts, early stop once the metric holds.
5. **Ceilings before any estimator grid**: representability (expert-only SFT from the base model
   reaches π ≥ 0.95 on every task), the ``oracle`` method (GRPO's advantage kept on the decisive
   turns only), and GRPO and oracle each at their best learning rate from a sweep (``lrs`` ×
   ``sweep_seeds``; best = lowest median episodes, a run that never reached counted as beyond the
   budget, ties by area).
6. **Paired seeds** at the tuned learning rates; per seed the ratio of the method's episodes to
   GRPO's (a censored run counts the budget), the mean ratio and a percentile-bootstrap 95 % CI.
   **Decision rule** per cell: the oracle *clears* if the CI's upper bound is ≤ 0.5; a mean ratio
   > 0.5 means "no, for any estimator" (perfect placement does not halve GRPO's episodes);
   between the two, "not shown at n seeds". Only a cell that clears gets the estimator grid
   (``--grid``, ``GRID_METHODS``), each at its own tuned learning rate, judged by the same rule.
7. **Resumable**: every run is appended to ``credit_lm_protocol_runs.jsonl`` with its config
   hash, commit, load and wall time; a rerun skips what is done, so the grid can run in parts.

Grid rows (configs in ``METHODS``; each with the demo's invalid_turn_penalty 0.1): GiGPO, IGPO and
A²TGPO as in ``bench/credit_lm.py``; ``aem``, GRPO then AEM [reconstruction] (β 0.2, clip 3: each
turn's advantage rescaled by its sampled response's surprisal relative to its group, read from the
rollout's log-probs); ``spa``, SPA-RL with ``features: model`` (a ridge head on the policy's last
hidden state, refitted every batch; the trainer's scorer supplies the states and the bench's credit
hook passes it through) and ``spa_text`` (hashed words, no model). Not rows, because Bifurcation's
normal rollouts lack what they read: ``vpr`` needs state-group rollouts (K candidates per state,
a Markovian prompt) and an env oracle ``verify_action``; Bifurcation has neither, and a verifier
that knows the good label would be the oracle row again. ``siop`` probes the group's own final
answers: Bifurcation's turns carry no ``answer`` (a run is a path of option choices judged at the
end), so every reward would be 0. ``mapo`` needs per-turn judge scores and ``matchtir`` a gold tool
trace (``info["gold_trace"]``) to match tool calls against: there is no judge and no tool call
here, and scoring turns by the env's good labels would again be the oracle.

Cells are ``H:position[:papers]``: position ``early`` / ``middle`` / ``late`` puts t* at stage 0 /
H//2 / H−1 (the last turn: the control where IG cannot see the choice). ``papers`` is the regime
the credit papers target: two decisive stages (t*, t*+1; early 0, middle H//2−1, late H−2) that
must both be good, p_good 0.9 / p_bad 0.1 and independent outcomes per group member (so a
failed episode can hold good decisions GRPO punishes, and a success bad luck).

    .venv/bin/python bench/credit_lm_protocol.py --quick     # seconds: every stage and the AEM / SPA rows, tiny budget
    nice -n 10 .venv/bin/python bench/credit_lm_protocol.py --ceilings --cells 4:early --seeds 10
    .venv/bin/python bench/credit_lm_protocol.py --grid --cells 4:early --seeds 10   # only if cleared
    .venv/bin/python bench/credit_lm_protocol.py --report-only
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNS_NAME = "credit_lm_protocol_runs.jsonl"
CEILING_METHODS = ("grpo", "oracle")
GRID_METHODS = ("gigpo", "igpo", "a2tgpo", "aem", "spa", "spa_text")  # configs: METHODS below
THRESHOLD, CLAIM = 0.9, 0.5
STUCK = 0.05  # a task whose exact π ends below this has collapsed: a group of 8 seldom samples its good label

FULL: dict[str, Any] = {
    "tasks": 4, "group": 8, "max_iters": 100, "check_every": 2, "hold": 2, "eval_episodes": 8,
    "format_sft_steps": 150, "format_sft_episodes": 64, "expert_sft_steps": 300, "chance_tol": 0.15, "min_valid": 0.9,
    "representable": 0.95, "lrs": [3e-4, 1e-3, 3e-3], "sweep_seeds": 2, "threads": 1,
}
QUICK: dict[str, Any] = {
    "tasks": 2, "group": 4, "max_iters": 3, "check_every": 1, "hold": 2, "eval_episodes": 2,
    "format_sft_steps": 20, "format_sft_episodes": 16, "expert_sft_steps": 5, "chance_tol": 0.34, "min_valid": 0.5,
    "representable": 0.95, "lrs": [1e-3], "sweep_seeds": 1, "threads": 1,
}


def _load_lm() -> Any:
    """bench/credit_lm.py (pool checks, the credit hook with the oracle): one definition of each."""
    name = "credit_lm_for_protocol"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "credit_lm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


lm = _load_lm()

# Grid rows beyond bench/credit_lm.py's METHODS (whose CI test runs each): (credit config, needs the
# IG critic). Every one keeps the demo's invalid_turn_penalty 0.1, like the rest of the grid.
EXTRA_METHODS: dict[str, tuple[dict[str, Any], bool]] = {
    "aem": ({"stages": [{"invalid_turn_penalty": {"penalty": 0.1}}, "grpo", {"aem": {"beta": 0.2, "clip": 3.0}}]},
            False),
    "spa": ({"method": "spa", "features": "model", **lm.PENALTY}, False),
    "spa_text": ({"method": "spa", "features": "text", **lm.PENALTY}, False),
}
METHODS = {**lm.METHODS, **EXTRA_METHODS}


# -- cells and pools ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    horizon: int
    position: str  # early | middle | late
    regime: str = "det"  # det: one decisive stage, p 1/0, shared outcomes; papers: see the docstring

    @classmethod
    def parse(cls, text: str) -> Cell:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0].isdigit() or parts[1] not in ("early", "middle", "late") or (
                len(parts) == 3 and parts[2] != "papers"):
            raise ValueError(f"a cell is H:early|middle|late[:papers], got {text!r}")
        cell = cls(int(parts[0]), parts[1], parts[2] if len(parts) == 3 else "det")
        if cell.horizon < (3 if cell.regime == "papers" else 1):
            raise ValueError(f"{text!r}: the horizon is too short for this cell")
        return cell

    @property
    def name(self) -> str:
        return f"H{self.horizon}-{self.position}" + ("-papers" if self.regime == "papers" else "")

    @property
    def stars(self) -> tuple[int, ...]:
        h = self.horizon
        if self.regime == "papers":
            first = {"early": 0, "middle": h // 2 - 1, "late": h - 2}[self.position]
            return first, first + 1
        return ({"early": 0, "middle": h // 2, "late": h - 1}[self.position],)

    def env_kwargs(self) -> dict[str, Any]:
        base = {"horizon": self.horizon, "n_options": lm.N_OPTIONS}
        if self.regime == "papers":
            return {**base, "t_stars": list(self.stars), "p_good": 0.9, "p_bad": 0.1, "independent_outcomes": True}
        return {**base, "t_star": self.stars[0], "p_good": 1.0, "p_bad": 0.0}


def pool(cell: Cell, start: int, n: int) -> list[dict[int, tuple[str, str]]]:
    """Per task seed ``start`` … ``start + n − 1``: decisive stage -> (scene, good label)."""
    from agentgym.envs.bifurcation import BifurcationEnv

    env = BifurcationEnv(**cell.env_kwargs())
    out = []
    for seed in range(start, start + n):
        env.reset(seed=seed)
        out.append({s: (env.task.scenes[s], label) for s, label in env.task.good_labels.items()})
    return out


def pool_problems(cell: Cell, start: int, n: int) -> list[str]:
    tasks = pool(cell, start, n)
    return [f"stage {s}: {p}" for s in cell.stars
            for p in lm.pool_problems([(start + i, t[s][0], t[s][1]) for i, t in enumerate(tasks)])]


def balanced_start(cell: Cell, n: int, search: int = 20_000) -> int:
    from agentgym.envs.bifurcation import DECISION_SCENES

    if n > len(DECISION_SCENES):
        raise ValueError(f"a pool of {n} tasks cannot have distinct decisive scenes: Bifurcation has "
                         f"{len(DECISION_SCENES)}")
    for start in range(search):
        if not pool_problems(cell, start, n):
            return start
    raise ValueError(f"no balanced pool of {n} tasks for {cell.name} with seed_start < {search}")


def describe_pool(cell: Cell, start: int, n: int) -> str:
    tasks = pool(cell, start, n)
    problems = pool_problems(cell, start, n)
    body = "; ".join(", ".join(f"t{s} {t[s][0].split()[0]}→{t[s][1]}" for s in cell.stars) for t in tasks)
    return (f"{cell.name} seeds {start}–{start + n - 1}: {body}"
            + (f" — NOT balanced: {'; '.join(problems)}" if problems else " — balanced"))


# -- the exact metric -----------------------------------------------------------------------------
def decisive_contexts(cell: Cell, seeds: Sequence[int], system_prompt: str | None) -> list[list[tuple[list[Any], str]]]:
    """Per task: (the messages before each decisive stage on the expert's path, that stage's good
    label). The expert takes label 1 off the decisive stages, the good label on them."""
    from agentgym.envs.bifurcation import BifurcationEnv

    env = BifurcationEnv(**cell.env_kwargs())
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": info.get("role", "user"), "content": obs}]
        contexts = []
        while True:
            good = env.task.good_labels.get(env.stage)
            if good is not None:
                contexts.append((list(messages), good))
            action = env.expert_action()
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
            messages += [{"role": "assistant", "content": action}, {"role": info.get("role", "user"), "content": obs}]
        out.append(contexts)
    return out


def label_probs(pm: Any, messages: list[Any], labels: Sequence[str]) -> np.ndarray:
    """The model's probability of each label's whole completion (label tokens, then end-of-turn)."""
    import torch

    prompt = pm.chat.prompt_ids(messages)
    out = []
    with torch.no_grad():
        for label in labels:
            completion = pm.chat.encode(label) + [pm.chat.eos_id]
            ids = torch.tensor([prompt + completion], device=pm.device)
            logits = pm.model(input_ids=ids).logits[0, len(prompt) - 1: -1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion, device=pm.device)[:, None])
            out.append(float(logp.sum()))
    return np.exp(np.array(out))


def exact_metric(pm: Any, contexts: list[list[tuple[list[Any], str]]], labels: Sequence[str]) -> dict[str, Any]:
    """π(good | decisive context) per task (product over its decisive stages, each normalised over
    the labels), their mean, and the labels' probability mass (how much of the policy is valid)."""
    per_task, mass = [], []
    for task in contexts:
        value = 1.0
        for messages, good in task:
            p = label_probs(pm, messages, labels)
            value *= float(p[list(labels).index(good)] / p.sum())
            mass.append(float(p.sum()))
        per_task.append(value)
    return {"per_task": per_task, "mean": float(np.mean(per_task)), "label_mass": float(np.mean(mass))}


# -- training -------------------------------------------------------------------------------------
def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() + ("+dirty" if subprocess.run(
                                  ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cfg_hash(cfg: dict[str, Any]) -> str:
    keys = ("tasks", "group", "max_iters", "check_every", "hold", "eval_episodes", "format_sft_steps",
            "format_sft_episodes", "expert_sft_steps")
    return hashlib.sha1(json.dumps({k: cfg[k] for k in keys}, sort_keys=True).encode()).hexdigest()[:8]


def _recipe(cfg: dict[str, Any], cell: Cell, start: int, model_dir: Path, out_dir: Path, *, seed: int = 0,
            method: str = "grpo", lr: float = 1e-3, sft: tuple[int, float] | None = None) -> Any:
    from agentgym.trainers.config import load_recipe

    steps, epsilon = sft or (0, 0.0)
    return load_recipe("demo_bifurcation", [
        f"name=credit-lm-protocol-{method}", f"seed={seed}", f"model.path={model_dir}", "model.make_tiny=false",
        "model.device=cpu", f"env.kwargs={json.dumps(cell.env_kwargs())}", f"rollout.seed_start={start}",
        f"rollout.tasks_per_iter={cfg['tasks']}", f"rollout.task_pool={cfg['tasks']}",
        f"rollout.group_size={cfg['group']}", f"credit={json.dumps(METHODS[method][0])}", f"optim.lr={lr}",
        f"sft.steps={steps}", f"sft.episodes={cfg['format_sft_episodes']}", f"sft.epsilon={epsilon}",
        "sft.imitate_exploration=true", f"eval.episodes_per_task={cfg['eval_episodes']}", "eval.every=0",
        f"train.iterations={cfg['max_iters']}", f"train.out_dir={out_dir}", f"train.threads={cfg['threads']}",
        "train.tensorboard=false", "train.plot=false", "train.samples_per_iter=0",
    ])


def _valid_share(trainer: Any, seeds: list[int], k: int) -> float:
    trajs = trainer.collect(seeds, k, "format-check")
    turns = [t for traj in trajs for t in traj.turns]
    return sum(not t.parse_error for t in turns) / max(len(turns), 1)


def build_start(cfg: dict[str, Any], cell: Cell, start: int, base_dir: Path, out_dir: Path, *,
                expert: bool) -> dict[str, Any]:
    """SFT from the base model: ε = 1 (the format-only start, saved to ``out_dir``) or ε = 0, the
    expert alone (the representability ceiling, not saved). Returns its check row."""
    from agentgym.trainers.trainer import Trainer

    t0 = time.perf_counter()
    steps = cfg["expert_sft_steps"] if expert else cfg["format_sft_steps"]
    with tempfile.TemporaryDirectory(prefix="credit-lm-protocol-") as tmp:
        trainer = Trainer(_recipe(cfg, cell, start, base_dir, Path(tmp), sft=(steps, 0.0 if expert else 1.0)),
                          resume=False)
        sft = trainer.sft()
        seeds = trainer.task_seeds(0, cfg["tasks"])
        metric = exact_metric(trainer.pm, decisive_contexts(cell, seeds, trainer.system_prompt),
                              [str(i + 1) for i in range(lm.N_OPTIONS)])
        valid = _valid_share(trainer, seeds, cfg["eval_episodes"])
        if not expert:
            if out_dir.exists():
                shutil.rmtree(out_dir)
            shutil.copytree(base_dir, out_dir)
            trainer.pm.model.save_pretrained(out_dir)
    row = {"kind": "expert_sft" if expert else "format_start", "sft_steps": steps, "valid_share": valid,
           "pi_good": metric["per_task"], "label_mass": metric["label_mass"], "sft_loss_last": sft["sft/loss_last"]}
    if expert:
        row["representable"] = min(metric["per_task"]) >= cfg["representable"]
    else:
        chance = 1 / lm.N_OPTIONS
        stage_p = [p ** (1 / len(cell.stars)) for p in metric["per_task"]]  # per decisive stage, roughly
        row["at_chance"] = valid >= cfg["min_valid"] and all(abs(p - chance) <= cfg["chance_tol"] for p in stage_p)
    return {**row, "wall_s": time.perf_counter() - t0}


def rl_run(cfg: dict[str, Any], cell: Cell, start: int, start_dir: Path, method: str, lr: float,
           seed: int) -> dict[str, Any]:
    """One RL run from the shared format start, scored by the exact metric, stopped early."""
    import torch

    from agentgym.trainers.trainer import Trainer

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    critic = lm._critic_class()() if METHODS[method][1] else None
    credit = lm._Credit(cell.stars, critic, method in lm.DECISIVE_ONLY)
    per_iter = cfg["tasks"] * cfg["group"]
    labels = [str(i + 1) for i in range(lm.N_OPTIONS)]
    with tempfile.TemporaryDirectory(prefix="credit-lm-protocol-") as tmp:
        trainer = Trainer(_recipe(cfg, cell, start, start_dir, Path(tmp), seed=seed, method=method, lr=lr),
                          resume=False, credit_fn=credit)
        contexts = decisive_contexts(cell, trainer.task_seeds(0, cfg["tasks"]), trainer.system_prompt)
        first = exact_metric(trainer.pm, contexts, labels)
        curve, per_task = [(0, first["mean"])], [first["per_task"]]
        diagnostics: dict[str, list[float]] = {}
        for it in range(1, cfg["max_iters"] + 1):
            for k, v in trainer.step().items():
                if k.startswith("credit/"):
                    diagnostics.setdefault(k, []).append(float(v))
            if it % cfg["check_every"] == 0 or it == cfg["max_iters"]:
                m = exact_metric(trainer.pm, contexts, labels)
                curve.append((it * per_iter, m["mean"]))
                per_task.append(m["per_task"])
                if held(curve, cfg["hold"]) is not None:
                    break
        sampled = trainer.evaluate()
    budget = cfg["max_iters"] * per_iter
    return {"kind": "rl", "method": method, "lr": lr, "seed": seed, "episodes_to_90": held(curve, cfg["hold"]),
            "auc": auc(curve, budget), "final": curve[-1][1], "sampled_final": sampled, "curve": curve,
            "per_task_last": per_task[-1], "iterations": curve[-1][0] // per_iter, "budget": budget,
            "wall_s": time.perf_counter() - t0, "credit_mean": {k: float(np.mean(v)) for k, v in diagnostics.items()},
            **credit.summary()}


def held(curve: Sequence[tuple[int, float]], hold: int) -> int | None:
    """Episodes at the first of ``hold`` consecutive checks with the metric ≥ 0.9 (None: not yet)."""
    run = 0
    for i, (_, value) in enumerate(curve):
        run = run + 1 if value >= THRESHOLD else 0
        if run >= hold:
            return int(curve[i - hold + 1][0])
    return None


def auc(curve: Sequence[tuple[int, float]], budget: int) -> float:
    """Mean of the step curve over [0, budget] (each value holds until the next check; the last
    until the budget), so a run stopped early counts as holding its last value."""
    total = 0.0
    for (x0, v), (x1, _) in zip(curve, [*curve[1:], (budget, 0.0)], strict=True):
        total += v * max(0, min(x1, budget) - x0)
    return total / budget if budget else curve[-1][1]


# -- decision -------------------------------------------------------------------------------------
def censored(row: dict[str, Any]) -> float:
    """Episodes to 0.9; a run that never held it counts its whole budget (its true value is larger)."""
    return float(row["budget"] if row["episodes_to_90"] is None else row["episodes_to_90"])


def best_lr(rows: list[dict[str, Any]], method: str) -> float | None:
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        if r["kind"] == "rl" and r["method"] == method and r.get("phase") == "sweep":
            by_lr.setdefault(r["lr"], []).append(r)
    if not by_lr:
        return None
    return min(by_lr, key=lambda lr: (float(np.median([censored(r) for r in by_lr[lr]])),
                                      -float(np.mean([r["auc"] for r in by_lr[lr]]))))


def bootstrap_ci(values: Sequence[float], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the mean."""
    x = np.asarray(values, dtype=float)
    if len(x) == 1:
        return float(x[0]), float(x[0])
    means = np.random.default_rng(seed).choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_ratios(rows: list[dict[str, Any]], method: str, lrs: dict[str, float]) -> dict[int, float]:
    """Seed -> method's episodes / GRPO's, both at their tuned lr (equal episodes, 0 included: 1)."""
    out = {}
    for seed, (run, base) in paired_runs(rows, method, lrs).items():
        a, b = censored(run), censored(base)
        out[seed] = 1.0 if a == b else a / max(b, 1.0)
    return out


def paired_runs(rows: list[dict[str, Any]], method: str,
                lrs: dict[str, float]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Seed -> (method's run, GRPO's run), both at their tuned lr."""
    def at(m: str) -> dict[int, dict[str, Any]]:
        return {r["seed"]: r for r in rows if r["kind"] == "rl" and r["method"] == m and r["lr"] == lrs.get(m)}
    base, other = at("grpo"), at(method)
    return {seed: (other[seed], base[seed]) for seed in sorted(set(base) & set(other))}


def verdict(ratios: Sequence[float]) -> tuple[str, float, tuple[float, float]]:
    """The decision rule: ``clears`` (CI upper ≤ 0.5), ``no`` (mean > 0.5) or ``not shown``."""
    mean, ci = float(np.mean(ratios)), bootstrap_ci(ratios)
    if ci[1] <= CLAIM:
        return "clears", mean, ci
    return ("no" if mean > CLAIM else "not shown"), mean, ci


# -- the driver -----------------------------------------------------------------------------------
def read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["cell"], row["cfg"], row["kind"], row.get("method"), row.get("lr"), row.get("seed"))


def _rl_job(job: tuple[dict[str, Any], Cell, int, str, str, float, int]) -> dict[str, Any]:
    cfg, cell, start, start_dir, method, lr, seed = job
    return rl_run(cfg, cell, start, Path(start_dir), method, lr, seed)


class Bench:
    """Runs a cell's stages, appending each finished run to ``runs_file`` and skipping done ones."""

    def __init__(self, cfg: dict[str, Any], runs_file: Path, work_dir: Path, *, workers: int = 1,
                 deadline: float | None = None, log: Callable[[str], None] = print):
        self.cfg, self.runs_file, self.work_dir = cfg, runs_file, work_dir
        self.workers, self.deadline, self.log = workers, deadline, log
        self.hash, self.commit = cfg_hash(cfg), commit()
        self.executed = 0

    def rows(self, cell: Cell) -> list[dict[str, Any]]:
        return [r for r in read_runs(self.runs_file) if r["cell"] == cell.name and r["cfg"] == self.hash]

    def _append(self, cell: Cell, row: dict[str, Any], load0: float, extra: dict[str, Any]) -> dict[str, Any]:
        row = {**row, **extra, "cell": cell.name, "cfg": self.hash, "config": self.cfg, "commit": self.commit,
               "load": [round(load0, 2), round(os.getloadavg()[0], 2)], "finished": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                                   time.gmtime())}
        self.runs_file.parent.mkdir(parents=True, exist_ok=True)
        with self.runs_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self.executed += 1
        return row

    def base_model(self) -> Path:
        path = self.work_dir / "tiny-model"
        if not (path / "config.json").exists():
            lm.build_model(path)
        return path

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    def starts(self, cell: Cell) -> tuple[int, Path]:
        """The balanced pool's first seed and the cell's format-only start (built once)."""
        start = balanced_start(cell, self.cfg["tasks"])
        assert not pool_problems(cell, start, self.cfg["tasks"])
        self.log("pool " + describe_pool(cell, start, self.cfg["tasks"]))
        start_dir = self.work_dir / f"{cell.name}-{self.hash}-format-start"
        done = {r["kind"]: r for r in self.rows(cell)}
        if "format_start" not in done or not (start_dir / "config.json").exists():
            load0 = os.getloadavg()[0]
            row = build_start(self.cfg, cell, start, self.base_model(), start_dir, expert=False)
            done["format_start"] = self._append(cell, row, load0, {"seed_start": start})
        row = done["format_start"]
        self.log(f"format start {cell.name}: valid share {row['valid_share']:.2f}, π(good|t*) per task "
                 f"{[round(p, 2) for p in row['pi_good']]}")
        if not row["at_chance"]:
            raise RuntimeError(f"{cell.name}: the format-only start is not valid-and-at-chance ({row}); raise "
                               "format_sft_steps or check the SFT data")
        return start, start_dir

    def representability(self, cell: Cell, start: int) -> dict[str, Any]:
        done = [r for r in self.rows(cell) if r["kind"] == "expert_sft"]
        if done:
            return done[0]
        load0 = os.getloadavg()[0]
        row = build_start(self.cfg, cell, start, self.base_model(), self.work_dir / "unused", expert=True)
        row = self._append(cell, row, load0, {"seed_start": start})
        self.log(f"expert SFT {cell.name}: π(good|t*) per task {[round(p, 2) for p in row['pi_good']]}")
        return row

    def run_jobs(self, cell: Cell, start: int, start_dir: Path, jobs: list[tuple[str, float, int]],
                 phase: str) -> None:
        done = {_key(r) for r in self.rows(cell)}
        todo = [j for j in jobs if (cell.name, self.hash, "rl", *j) not in done]
        self.log(f"{cell.name} {phase}: {len(jobs) - len(todo)} of {len(jobs)} runs already done")
        args = [(self.cfg, cell, start, str(start_dir), m, lr, s) for m, lr, s in todo]

        def keep(row: dict[str, Any], load0: float) -> None:
            row = self._append(cell, row, load0, {"phase": phase, "seed_start": start})
            self.log(f"  {cell.name} {row['method']:6s} lr {row['lr']:.0e} seed {row['seed']}: to 0.9 "
                     f"{row['episodes_to_90']} auc {row['auc']:.2f} final {row['final']:.2f} sampled "
                     f"{row['sampled_final']:.2f} mass {row['mass']:.2f} {row['wall_s']:.0f}s")

        if self.workers <= 1:
            for a in args:
                if self.out_of_time():
                    return
                load0 = os.getloadavg()[0]
                keep(_rl_job(a), load0)
            return
        import multiprocessing

        with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            pending = []
            for a in args:
                if self.out_of_time():
                    break
                pending.append((ex.submit(_rl_job, a), os.getloadavg()[0]))
                if len(pending) >= self.workers:
                    fut, load0 = pending.pop(0)
                    keep(fut.result(), load0)
            for fut, load0 in pending:
                keep(fut.result(), load0)

    def tuned(self, cell: Cell, start: int, start_dir: Path, methods: Sequence[str],
              seeds: Sequence[int]) -> dict[str, float]:
        """Sweep each method's lr on the sweep seeds, then the paired seeds at the best lr."""
        sweep = [(m, lr, s) for s in range(self.cfg["sweep_seeds"]) for m in methods for lr in self.cfg["lrs"]]
        self.run_jobs(cell, start, start_dir, sweep, "sweep")
        rows = self.rows(cell)
        lrs = {m: best_lr(rows, m) for m in methods}
        if any(v is None for v in lrs.values()) or self.out_of_time():
            return {m: v for m, v in lrs.items() if v is not None}
        self.log(f"{cell.name} tuned lr: {lrs}")
        self.run_jobs(cell, start, start_dir, [(m, lrs[m], s) for s in seeds for m in methods], "paired")
        return lrs

    def ceilings(self, cell: Cell, seeds: Sequence[int]) -> None:
        start, start_dir = self.starts(cell)
        self.representability(cell, start)
        if not self.out_of_time():
            self.tuned(cell, start, start_dir, CEILING_METHODS, seeds)

    def grid(self, cell: Cell, seeds: Sequence[int], methods: Sequence[str] = GRID_METHODS, *,
             gated: bool = True) -> None:
        """The estimator grid, each method at its tuned lr, only where the oracle cleared (``gated``
        False: ``--quick``, which runs the rows' mechanics on a budget that cannot clear)."""
        rows = self.rows(cell)
        lrs = {m: best_lr(rows, m) for m in CEILING_METHODS}
        ratios = list(paired_ratios(rows, "oracle", lrs).values()) if None not in lrs.values() else []
        if gated and (not ratios or verdict(ratios)[0] != "clears"):
            self.log(f"{cell.name}: the oracle has not cleared {CLAIM}× tuned GRPO: no estimator grid")
            return
        start, start_dir = self.starts(cell)
        self.tuned(cell, start, start_dir, methods, seeds)


# -- report ---------------------------------------------------------------------------------------
def cell_report(cell: Cell, rows: list[dict[str, Any]]) -> list[str]:
    out = [f"### {cell.name} (decisive stage{'s' if len(cell.stars) > 1 else ''} {list(cell.stars)}; "
           f"env {json.dumps(cell.env_kwargs())})", ""]
    kinds = {r["kind"]: r for r in rows if r["kind"] != "rl"}
    if "format_start" in kinds:
        r = kinds["format_start"]
        out.append(f"* pool: {describe_pool(cell, r['seed_start'], r['config']['tasks'])}")
        out.append(f"* format-only start ({r['sft_steps']} SFT steps, ε = 1): sampled valid-turn share "
                   f"{r['valid_share']:.2f}, π(good | t*{'' if len(cell.stars) == 1 else ' at every decisive stage'}) "
                   f"per task {[round(p, 2) for p in r['pi_good']]} (chance {lm.N_OPTIONS ** -len(cell.stars):.2f}) — "
                   f"{'at chance' if r['at_chance'] else 'NOT at chance'}")
    if "expert_sft" in kinds:
        r = kinds["expert_sft"]
        out.append(f"* representability (expert-only SFT, {r['sft_steps']} steps from the base model): π(good | t*) "
                   f"per task {[round(p, 2) for p in r['pi_good']]} — "
                   f"{'≥' if r['representable'] else 'NOT ≥'} {r['config']['representable']} on every task")
    rl = [r for r in rows if r["kind"] == "rl"]
    if not rl:
        return [*out, "", "No RL runs yet.", ""]
    out += ["", "| method | lr | phase | runs | to 0.9: median [min–max] (held/runs) | AUC | final π | sampled "
            "success | \\|A\\| mass on t* | loc | iterations | wall s/run |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rl:
        groups.setdefault((r["method"], r["lr"]), []).append(r)
    for (m, lr), rs in sorted(groups.items()):
        reached = sorted(r["episodes_to_90"] for r in rs if r["episodes_to_90"] is not None)
        med = float(np.median([censored(r) for r in rs]))
        spread = (f"{'>' if len(reached) * 2 < len(rs) else ''}{med:.0f} [{reached[0] if reached else '—'}–"
                  f"{reached[-1] if len(reached) == len(rs) else '>' + str(rs[0]['budget'])}] ({len(reached)}/{len(rs)})")
        phases = "+".join(sorted({r.get("phase", "?") for r in rs}))
        out.append(f"| {m} | {lr:.0e} | {phases} | {len(rs)} | {spread} | {np.mean([r['auc'] for r in rs]):.2f} | "
                   f"{np.mean([r['final'] for r in rs]):.2f} | {np.mean([r['sampled_final'] for r in rs]):.2f} | "
                   f"{np.nanmean([r['mass'] for r in rs]):.2f} | {np.mean([r['loc'] for r in rs]):.2f} | "
                   f"{np.mean([r['iterations'] for r in rs]):.0f} | {np.mean([r['wall_s'] for r in rs]):.0f} |")
    out.append("")
    lrs = {m: best_lr(rows, m) for m in (*CEILING_METHODS, *GRID_METHODS)}
    out.append("Tuned lr (sweep): " + ", ".join(f"{m} {v:.0e}" for m, v in lrs.items() if v is not None))
    for m in ("oracle", *GRID_METHODS):
        if lrs.get(m) is None or lrs.get("grpo") is None:
            continue
        ratios = paired_ratios(rows, m, lrs)
        if not ratios:
            continue
        v, mean, (lo, hi) = verdict(list(ratios.values()))
        words = {"clears": f"clears: CI upper ≤ {CLAIM}", "no": f"**no** — mean ratio > {CLAIM}",
                 "not shown": f"not shown — mean ≤ {CLAIM} but the CI reaches above it"}[v]
        pairs = paired_runs(rows, m, lrs)
        both = sum(a["episodes_to_90"] is None and b["episodes_to_90"] is None for a, b in pairs.values())
        if both:
            words += (f"; on {both} of {len(pairs)} seeds neither run held 0.9 within the budget (ratio 1 there: "
                      "censored, not measured)")
        diffs = [a["auc"] - b["auc"] for a, b in pairs.values()]
        dlo, dhi = bootstrap_ci(diffs)
        out.append(f"* **{m} / GRPO** episodes to 0.9, paired by seed at tuned lr ({len(ratios)} seeds): per seed "
                   f"{ {s: round(x, 2) for s, x in ratios.items()} }; mean {mean:.2f}, bootstrap 95 % CI "
                   f"[{lo:.2f}, {hi:.2f}] → {words}. Secondary: AUC {m} − GRPO per seed mean {np.mean(diffs):+.3f}, "
                   f"95 % CI [{dlo:+.3f}, {dhi:+.3f}]")
    if "format_start" in kinds:
        out.append(stuck_tasks(cell, kinds["format_start"], paired_runs(rows, "oracle", lrs)))
    return [*out, ""]


def unique_stages(cell: Cell, tasks: list[dict[int, tuple[str, str]]]) -> list[list[int]]:
    """Per task of a pool: the decisive stages where its good label is one no other task in the pool wants there."""
    return [[s for s in cell.stars if sum(u[s][1] == t[s][1] for u in tasks) == 1] for t in tasks]


def stuck_tasks(cell: Cell, start_row: dict[str, Any], pairs: dict[int, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """Which tasks end collapsed (exact π < STUCK) in the paired runs at tuned lr, and whether each
    has a stage-unique good label: the report's evidence for the interference finding."""
    start, n = start_row["seed_start"], start_row["config"]["tasks"]
    tasks = pool(cell, start, n)
    unique = unique_stages(cell, tasks)
    runs = {"grpo": [b for _, b in pairs.values()], "oracle": [a for a, _ in pairs.values()]}
    if not runs["grpo"]:
        return "* stuck tasks: no paired runs yet"
    stuck = {m: [[i for i, p in enumerate(r["per_task_last"]) if p < STUCK] for r in rs] for m, rs in runs.items()}
    per_task = [sum(i in s for ss in stuck.values() for s in ss) for i in range(len(tasks))]
    together = Counter(tuple(s) for ss in stuck.values() for s in ss if s)
    cases = sum(per_task)
    in_unique = sum(k for k, u in zip(per_task, unique, strict=True) if u)
    by_task = "; ".join(
        f"task {i} ({', '.join(f't{s} label {tasks[i][s][1]} unique' for s in unique[i]) or 'no unique label'}) "
        f"{per_task[i]} ({together[(i,)]} alone)" for i in range(len(tasks)))
    return (f"* stuck tasks (exact π < {STUCK} at the end), paired runs at tuned lr: "
            + ", ".join(f"{m} {sum(bool(s) for s in ss)} / {len(ss)} runs" for m, ss in stuck.items())
            + f"; {in_unique} of {cases} stuck task-runs are tasks with a stage-unique good label. By task: {by_task}. "
            + "Stuck together (the set of stuck tasks per run, both methods): "
            + ", ".join(f"{{{', '.join(map(str, k))}}} {v}" for k, v in together.most_common()))


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], out_dir: Path) -> str:
    cells = sorted({r["cell"] for r in rows})
    rl = [r for r in rows if r["kind"] == "rl"]
    loads = [x for r in rows for x in r.get("load", [])]
    lines = [
        "# Issue 24's protocol: turn-level credit with a shared-weights policy (ceilings first)", "",
        f"Command: `` {meta['command']} ``  ",
        f"Commit(s): {', '.join(sorted({r['commit'] for r in rows}))}; machine: {meta['machine']}; "
        f"load (1-min, at each run's start and end) {min(loads, default=0):.1f}–{max(loads, default=0):.1f}; "
        f"{len(rows)} runs, {sum(r['wall_s'] for r in rows) / 60:.0f} min of run wall time; finished "
        f"{min((r['finished'] for r in rows), default='—')} – {max((r['finished'] for r in rows), default='—')}.  ",
        f"{meta.get('note', '')}", "",
        "Protocol: the docstring of bench/credit_lm_protocol.py. **to 0.9** = training episodes until the exact "
        "π(good | decisive context), averaged over the pool, is ≥ 0.9 at consecutive checks (a run that never held "
        "it counts its budget in the median and the ratios); **AUC** = that metric's mean over the budget; **final "
        "π** = its last value; **sampled success** = the end-of-run eval ("
        f"{rl[0]['config']['eval_episodes'] if rl else '?'} episodes per task); **|A| mass** = share of |A| on the "
        "decisive stage(s).", ""]
    for name in cells:
        cell = Cell.parse(name.replace("H", "", 1).replace("-", ":"))
        lines += cell_report(cell, [r for r in rows if r["cell"] == name])
    lines += meta.get("findings", [])
    text = "\n".join(lines) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "credit_lm_protocol.md").write_text(text)
    return text


def check_new_rows(rows: list[dict[str, Any]]) -> str:
    """--quick's check that the EXTRA_METHODS rows ran and that their stages did their work: AEM found
    the rollout's log-probs on every turn (without them its weight is 1 and it is GRPO in
    disguise), SPA fitted its progress estimator. Raises AssertionError; returns a summary."""
    ran = {r["method"]: r.get("credit_mean", {}) for r in rows if r["kind"] == "rl"}
    missing = set(EXTRA_METHODS) - set(ran)
    assert not missing, f"grid rows that did not run: {sorted(missing)}"
    known = ran["aem"].get("credit/aem_known_share")
    assert known == 1.0, f"aem saw turns without action log-probs (known share {known})"
    for m in ("spa", "spa_text"):
        assert "credit/spa_fit_rmse" in ran[m], f"{m} did not fit its progress estimator"
    return (f"grid rows {', '.join(EXTRA_METHODS)} ran; aem log-prob share {known:.2f}, SPA fit RMSE "
            f"{ran['spa']['credit/spa_fit_rmse']:.3f} (model features) / {ran['spa_text']['credit/spa_fit_rmse']:.3f} (text)")


def main(argv: Sequence[str] | None = None) -> int:
    import platform

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--quick", action="store_true",
                      help="seconds: every stage and the AEM / SPA grid rows on a tiny budget (no oracle gate), in a temp dir")
    what.add_argument("--ceilings", action="store_true", help="format start, expert SFT, GRPO + oracle lr sweep and seeds")
    what.add_argument("--grid", action="store_true",
                      help=f"{' / '.join(GRID_METHODS)}, only in cells whose oracle cleared")
    what.add_argument("--report-only", action="store_true")
    ap.add_argument("--cells", default="4:early")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sweep-seeds", type=int, help=f"seeds per lr in the sweep (default {FULL['sweep_seeds']})")
    ap.add_argument("--deadline-min", type=float, help="start no run after this many minutes")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--work-dir", default=str(ROOT / "runs" / "credit-lm-protocol"))
    ap.add_argument("--note", default="")
    ap.add_argument("--findings", help="a markdown file appended to the report")
    args = ap.parse_args(argv)
    cells = [Cell.parse(c) for c in args.cells.split(",")]
    given = list(argv if argv is not None else sys.argv[1:])
    for flag in ("--note", "--findings"):  # printed in full below the command; not repeated in it
        if flag in given[:-1]:
            del given[given.index(flag):given.index(flag) + 2]
    command = "python bench/credit_lm_protocol.py " + " ".join(given)
    meta = {"command": command, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}", "note": args.note,
            "findings": Path(args.findings).read_text().splitlines() if args.findings else []}
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="credit-lm-protocol-quick-") as tmp:
            bench = Bench(QUICK, Path(tmp) / RUNS_NAME, Path(tmp))
            bench.ceilings(cells[0], range(2))
            # The rows bench/credit_lm.py's test does not train (its METHODS do), once, the oracle's gate aside
            bench.grid(cells[0], range(1), tuple(EXTRA_METHODS), gated=False)
            first = bench.executed
            bench.ceilings(cells[0], range(2))  # resumable: nothing left to run
            bench.grid(cells[0], range(1), tuple(EXTRA_METHODS), gated=False)
            assert bench.executed == first, "a rerun repeated finished runs"
            rows = read_runs(Path(tmp) / RUNS_NAME)
            print(write_report(rows, meta, Path(tmp)))
            print(f"quick: {first} runs, rerun skipped all of them; " + check_new_rows(rows))
        return 0
    out = Path(args.out)
    runs_file = out / RUNS_NAME
    if not args.report_only:
        deadline = None if args.deadline_min is None else time.time() + 60 * args.deadline_min
        cfg = {**FULL, **({"sweep_seeds": args.sweep_seeds} if args.sweep_seeds else {})}
        bench = Bench(cfg, runs_file, Path(args.work_dir), workers=args.workers, deadline=deadline)
        for cell in cells:
            (bench.ceilings if args.ceilings else bench.grid)(cell, range(args.seeds))
    print(write_report(read_runs(runs_file), meta, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
