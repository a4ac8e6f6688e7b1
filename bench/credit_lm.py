"""Does turn-level credit help a *neural* policy? GRPO, GiGPO, IGPO and A²TGPO on Bifurcation-v0.

``bench/credit_bifurcation.py`` compares the estimators with a tabular policy, where each (stage,
option) has its own logit, so credit put on the wrong turn costs little. Here the policy is the
tiny transformer of the demo (``trainers/recipes/demo_bifurcation.yaml``: a 2-layer Qwen2 and a
byte-level BPE tokenizer built locally), whose weights are shared by every turn: advantage on a
filler turn moves the same weights as advantage on the decisive one.

Protocol, the same for every method (only the ``credit`` config differs): the demo recipe with
``horizon`` H and a fixed decisive stage ``t_star`` (``early`` = stage 0, ``late`` = stage H−1, the
last), 3 options, p_good 1 / p_bad 0, one distractor stage; a pool of ``tasks`` task seeds; SFT
warm start on ε-greedy (ε = 0.5) expert episodes, then ``iterations`` RL iterations of ``tasks`` ×
``group`` rollouts (the same rollout budget for every method), one PPO epoch, lr 1e-3; eval success
over the pool every ``eval_every`` iterations from a fixed RNG stream. Seeds change the SFT data,
sampling and update order; the tiny model's initial weights and tokenizer are built once (seed 0)
and shared by every run. Credit configs: ``grpo``; ``gigpo`` γ 0.95, ω 1, F_norm 1; ``igpo`` log-prob IG, separate normalisation, γ 1, with the
zero-variance group filter the IGPO recipe pairs it with; ``a2tgpo`` α 0.3, β 0.3; every method with
the demo's ``invalid_turn_penalty`` 0.1 (see PENALTY); ``oracle`` = GRPO's advantage kept on the
decisive turn only, the ceiling of credit placement. Each cell trains on the first pool of ``tasks``
consecutive seeds that is perceivable and balanced (distinct decisive scenes, no good label on more
than half the tasks; :func:`pool_problems`): an aliased pool caps success below 1 for any credit.

Information gain needs ℓ_t, the log-prob of "the gold answer" after turn t. Bifurcation has no
answer the tiny LM could be teacher-forced on (it is never trained to predict success), so ℓ_t =
log of a Laplace-smoothed success rate per (task, state_key) over earlier iterations — the
``learned`` critic of ``bench/credit_bifurcation.py``. state_key carries the hidden decisive status,
the same privileged Markov state GiGPO's anchors use. The last turn is the outcome turn (agentgym's
convention), so with t* = H−1 IG cannot see the decisive choice.

Metrics per run: episodes (training rollouts) until eval success ≥ 0.9 (first eval that reaches it;
0 if the SFT start already does); final eval success; credit localisation over all training groups
with any nonzero advantage: **loc** = share of groups whose mean |A| is strictly largest on the
decisive stage, **ratio** = mean |A| on the decisive stage / mean |A| on the other stages; wall time.

    .venv/bin/python bench/credit_lm.py --quick          # seconds: pool balance + oracle mechanics (CI)
    .venv/bin/python bench/credit_lm.py --smoke          # one cell, two seeds, tiny training budget
    .venv/bin/python bench/credit_lm.py --cells 4:early,4:late --seeds 5 --workers 2
    .venv/bin/python bench/credit_lm.py --report-only --findings bench/results/credit_lm_reading.md
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNS_FILE = RESULTS / "credit_lm_runs.jsonl"
ENV_ID = "agentgym/Bifurcation-v0"
# Every method gets the demo's invalid_turn_penalty 0.1: without it one update that stops the policy
# emitting end-of-turn makes every turn invalid, every reward 0 and every advantage 0 for good.
PENALTY = {"invalid_turn_penalty": 0.1}
METHODS: dict[str, tuple[dict[str, Any], bool]] = {  # name -> (credit config, needs the IG critic)
    "grpo": ({"method": "grpo", **PENALTY}, False),
    # The ceiling of credit placement: GRPO's advantage kept only on the decisive turn, 0 on valid
    # filler turns (invalid turns keep their format credit). Bench-only: it needs t* from the env.
    "oracle": ({"method": "grpo", **PENALTY}, False),
    "gigpo": ({"method": "gigpo", "gamma": 0.95, "omega": 1.0, **PENALTY}, False),
    "igpo": ({"method": "igpo", "group_filter": {"zero_variance": True}, **PENALTY}, True),
    "a2tgpo": ({"method": "a2tgpo", **PENALTY}, True),
}
DECISIVE_ONLY = frozenset({"oracle"})
COLORS = {"grpo": "black", "oracle": "tab:purple", "gigpo": "tab:blue", "igpo": "tab:orange", "a2tgpo": "tab:green"}
_STAGE = re.compile(r"stage=(\d+)\|")
N_OPTIONS = 3


def _critic_class() -> type:
    """The ``learned`` IG critic of bench/credit_bifurcation.py (one definition of it)."""
    spec = importlib.util.spec_from_file_location("credit_bifurcation_bench", ROOT / "bench" / "credit_bifurcation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.LearnedValueScorer


def t_star_of(horizon: int, position: str) -> int:
    return {"early": 0, "late": horizon - 1}[position]


def env_kwargs(horizon: int, t_star: int) -> dict[str, Any]:
    return {"horizon": horizon, "t_star": t_star, "n_options": N_OPTIONS, "p_good": 1.0, "p_bad": 0.0}


# -- the task pool ------------------------------------------------------------------------------
def pool_tasks(horizon: int, t_star: int, seed_start: int, n: int) -> list[tuple[int, str, str]]:
    """``(seed, decisive scene, good label)`` of the pool the trainer cycles over (seeds
    ``seed_start`` … ``seed_start + n − 1``)."""
    import agentgym

    env = agentgym.make(ENV_ID, **env_kwargs(horizon, t_star))
    out = []
    for seed in range(seed_start, seed_start + n):
        env.reset(seed=seed)
        task = env.unwrapped.task
        out.append((seed, task.scenes[t_star], task.good_label))
    return out


def pool_problems(pool: Sequence[tuple[int, str, str]]) -> list[str]:
    """Why a pool is not perceivable and balanced ([] if it is). Two tasks with the same decisive
    scene and different good labels cap success below 1 for a policy that reads the scene (issue 24:
    the old 0.75 plateau); a good label on more than half the tasks rewards "always pick it"."""
    scenes = Counter(scene for _, scene, _ in pool)
    labels = Counter(label for _, _, label in pool)
    out = [f"decisive scene {scene.split('.')[0]!r} on {k} tasks" for scene, k in scenes.items() if k > 1]
    out += [f"good label {label} on {k} of {len(pool)} tasks" for label, k in labels.items() if 2 * k > len(pool)]
    return out


def balanced_seed_start(horizon: int, t_star: int, n: int, search: int = 1000) -> int:
    """The first ``seed_start`` ≥ 0 whose pool of ``n`` tasks has no :func:`pool_problems`."""
    from agentgym.envs.bifurcation import DECISION_SCENES

    if n > len(DECISION_SCENES):
        raise ValueError(f"a pool of {n} tasks cannot have distinct decisive scenes: Bifurcation has "
                         f"{len(DECISION_SCENES)}")
    for start in range(search):
        if not pool_problems(pool_tasks(horizon, t_star, start, n)):
            return start
    raise ValueError(f"no balanced pool of {n} tasks with seed_start < {search} (H={horizon}, t*={t_star})")


def describe_pool(horizon: int, t_star: int, seed_start: int, n: int) -> str:
    pool = pool_tasks(horizon, t_star, seed_start, n)
    problems = pool_problems(pool)
    return (f"H={horizon} t*={t_star}: seeds {seed_start}–{seed_start + n - 1}: "
            + ", ".join(f"{scene.split()[0]}→{label}" for _, scene, label in pool)
            + (f" — NOT balanced: {'; '.join(problems)}" if problems else " — balanced"))


def recipe_overrides(cfg: dict[str, Any], method: str, seed: int, model_dir: Path, out_dir: Path) -> list[str]:
    h, t_star = cfg["horizon"], t_star_of(cfg["horizon"], cfg["position"])
    kw = ", ".join(f"{k}: {v}" for k, v in env_kwargs(h, t_star).items())
    return [
        f"name=credit-lm-{method}", f"seed={seed}", f"model.path={model_dir}", "model.device=cpu",
        f"env.kwargs={{{kw}}}", f"rollout.seed_start={cfg['seed_start']}",
        f"rollout.tasks_per_iter={cfg['tasks']}", f"rollout.task_pool={cfg['tasks']}",
        f"rollout.group_size={cfg['group']}",
        f"credit={json.dumps(METHODS[method][0])}",
        f"sft.steps={cfg['sft_steps']}", f"sft.episodes={cfg['sft_episodes']}",
        f"eval.episodes_per_task={cfg['eval_episodes']}", f"eval.every={cfg['eval_every']}",
        f"train.iterations={cfg['iterations']}", f"train.out_dir={out_dir}", f"train.checkpoint_every={10**6}",
        "train.tensorboard=false", "train.plot=false",
    ]


class _Credit:
    """The trainer's credit hook: the IG critic's ℓ for IG methods, then the library pipeline with
    the trainer's scorer (SPA's ``features: model`` reads the policy's hidden states through it),
    and localisation counts on the decisive stage."""

    def __init__(self, t_star: int | Sequence[int], critic: Any | None, decisive_only: bool = False):
        self.stars = frozenset([t_star] if isinstance(t_star, int) else t_star)  # the decisive stage(s)
        self.critic, self.decisive_only = critic, decisive_only
        self.hits = self.groups = 0
        self.abs_star = self.abs_other = 0.0
        self.n_star = self.n_other = 0

    def __call__(self, trajs: list[Any], pipeline: Any, scorer: Any) -> Any:
        from agentgym.credit import TurnBatch
        from agentgym.trainers.credit_bridge import TurnCredit

        dicts = gold = None
        if self.critic is not None:
            dicts = [{**t.to_dict(), "info": {**t.info, "run": t.seed}} for t in trajs]
            gold = self.critic.trajectory_gold_logprobs(dicts)
        out = pipeline(TurnBatch.from_trajectories(trajs, gold_logp=gold), scorer=scorer)
        if self.critic is not None:
            self.critic.update(dicts)
        adv = out.per_trajectory("advantages")
        if self.decisive_only:
            adv = [[a if turn.parse_error or self.stage(turn) in self.stars else 0.0 for turn, a in zip(t.turns, row,
                                                                                                         strict=True)]
                   for t, row in zip(trajs, adv, strict=True)]
        self._localise(trajs, adv, out.per_trajectory("loss_mask"))
        return TurnCredit(adv, out.per_trajectory("loss_mask"), out.per_trajectory("clip_scale"), dict(out.metrics))

    @staticmethod
    def stage(turn: Any) -> int | None:
        """The Bifurcation stage a turn answered (from its state_key), None if not a stage."""
        match = _STAGE.search(turn.state_key or "")
        return None if match is None else int(match.group(1))

    def _localise(self, trajs: list[Any], adv: list[list[float]], mask: list[list[float]]) -> None:
        groups: dict[str, dict[int, list[float]]] = {}
        for t, a, m in zip(trajs, adv, mask, strict=True):
            for turn, x, w in zip(t.turns, a, m, strict=True):
                stage = self.stage(turn)
                if stage is None or not w:
                    continue
                groups.setdefault(t.group_id, {}).setdefault(stage, []).append(abs(x))
        for by_stage in groups.values():
            star = [v for s, vals in by_stage.items() if s in self.stars for v in vals]
            other = [v for s, vals in by_stage.items() if s not in self.stars for v in vals]
            self.abs_star += sum(star)
            self.n_star += len(star)
            self.abs_other += sum(other)
            self.n_other += len(other)
            if not any(star) and not any(other):
                continue
            self.groups += 1
            means = {s: float(np.mean(v)) for s, v in by_stage.items()}
            best_other = max((v for s, v in means.items() if s not in self.stars), default=-1.0)
            self.hits += int(min((v for s, v in means.items() if s in self.stars), default=-1.0) > best_other)

    def summary(self) -> dict[str, float]:
        star = self.abs_star / max(self.n_star, 1)
        other = self.abs_other / max(self.n_other, 1)
        total = self.abs_star + self.abs_other
        return {"loc": self.hits / max(self.groups, 1), "ratio": star / other if other > 0 else float("nan"),
                "mass": self.abs_star / total if total > 0 else float("nan")}


class _MixedPolicy:
    """A seeded random policy: a valid label most of the time, otherwise an invalid reply, so the
    quick check sees decisive, filler and invalid turns."""

    name = "mixed-random"

    def __init__(self, seed: int, invalid: float = 0.2):
        self.rng, self.invalid = random.Random(seed), invalid

    async def act(self, messages: list[Any], env: Any) -> Any:
        from agentgym.policies.base import Completion

        if self.rng.random() < self.invalid:
            return Completion(text="no idea")
        return Completion(text=f"<answer>{self.rng.choice(env.unwrapped.labels)}</answer>")


def quick_check(cells: Sequence[tuple[int, str]], tasks: int, group: int = 8, seed: int = 0) -> list[str]:
    """Seconds, no model: (1) each cell's pool is perceivable and balanced; (2) the oracle's
    mechanics on real env rollouts through the real pipeline and the bench's credit hook: every
    valid turn off t* gets 0, the decisive turn and invalid turns get GRPO's advantage, and the
    |A| mass of valid turns is all on t*. Raises AssertionError on a failure; returns the report."""
    from agentgym.credit import TurnBatch, build_pipeline
    from agentgym.registry import spec
    from agentgym.rollout import plan, rollout

    lines = []
    for h, pos in cells:
        t_star = t_star_of(h, pos)
        start = balanced_seed_start(h, t_star, tasks)
        problems = pool_problems(pool_tasks(h, t_star, start, tasks))
        assert not problems, problems
        lines.append("pool " + describe_pool(h, t_star, start, tasks))
        items = plan(f"quick-h{h}-{pos}", seeds=range(start, start + tasks), group_size=group)
        trajs = asyncio.run(rollout(spec(ENV_ID), _MixedPolicy(seed), items, env_kwargs=env_kwargs(h, t_star),
                                    threads=False))
        grpo = build_pipeline(METHODS["grpo"][0])(TurnBatch.from_trajectories(trajs)).per_trajectory("advantages")
        hook = _Credit(t_star, None, decisive_only=True)
        oracle = hook(trajs, build_pipeline(METHODS["oracle"][0]), None).advantages
        on = off = off_oracle = invalid = 0.0
        for t, g_row, o_row in zip(trajs, grpo, oracle, strict=True):
            for turn, g, o in zip(t.turns, g_row, o_row, strict=True):
                if turn.parse_error:
                    assert o == g, (t.traj_id, turn.index)
                    invalid += abs(o)
                elif hook.stage(turn) == t_star:
                    assert o == g, (t.traj_id, turn.index)
                    on += abs(o)
                else:
                    off_oracle += abs(o)
                    assert o == 0.0, (t.traj_id, turn.index, o)
                    off += abs(g)
        assert on > 0 and off > 0, "no credit to move: the check would pass vacuously"
        summary = hook.summary()
        lines.append(f"oracle H={h} t*={t_star}: valid-turn |A| mass on t* {on / (on + off_oracle):.2f} (GRPO's would be "
                     f"{on / (on + off):.2f}); all-turn mass {summary['mass']:.2f}, invalid turns keep "
                     f"{invalid:.1f} of GRPO's |A|")
    return lines


def run_one(task: tuple[dict[str, Any], str, int, str]) -> dict[str, Any]:
    """One training run; returns its result row (also the unit a worker process runs)."""
    cfg, method, seed, model_dir = task
    import torch

    from agentgym.trainers.config import load_recipe
    from agentgym.trainers.trainer import Trainer

    torch.set_num_threads(cfg["threads"])
    t_star = t_star_of(cfg["horizon"], cfg["position"])
    credit = _Credit(t_star, _critic_class()() if METHODS[method][1] else None, method in DECISIVE_ONLY)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="credit-lm-") as tmp:
        recipe = load_recipe("demo_bifurcation", recipe_overrides(cfg, method, seed, Path(model_dir), Path(tmp)))
        rows = Trainer(recipe, resume=False, credit_fn=credit).fit()
    wall = time.perf_counter() - start
    per_iter = cfg["tasks"] * cfg["group"]
    curve = [(int(r["iteration"]) * per_iter, float(r["eval/success_rate"])) for r in rows if "eval/success_rate" in r]
    reached = next((ep for ep, s in curve if s >= 0.9), None)
    return {"horizon": cfg["horizon"], "position": cfg["position"], "t_star": t_star, "method": method,
            "seed_start": cfg["seed_start"],
            "seed": seed, "episodes_to_90": reached, "final_success": curve[-1][1], "start_success": curve[0][1],
            "curve": curve, "budget": cfg["iterations"] * per_iter, "wall_s": wall, **credit.summary()}


def build_model(path: Path) -> Path:
    from agentgym.trainers.tiny import make_tiny_model

    if not (path / "config.json").exists():
        make_tiny_model(path, seed=0, env_ids=(ENV_ID,))
    return path


def run_grid(cfg: dict[str, Any], cells: Sequence[tuple[int, str]], methods: Sequence[str], seeds: Sequence[int],
             *, workers: int, model_dir: Path, runs_file: Path | None = None,
             deadline: float | None = None) -> list[dict[str, Any]]:
    """Runs seed-major (every cell and method of seed 0, then seed 1, …) so a deadline leaves a
    balanced subset; each finished run is appended to ``runs_file`` at once."""
    build_model(model_dir)
    starts = {}
    for h, pos in cells:  # a perceivable, balanced pool per cell, asserted and printed
        t_star = t_star_of(h, pos)
        starts[h, pos] = balanced_seed_start(h, t_star, cfg["tasks"])
        assert not pool_problems(pool_tasks(h, t_star, starts[h, pos], cfg["tasks"]))
        print("pool " + describe_pool(h, t_star, starts[h, pos], cfg["tasks"]), flush=True)
    tasks = [({**cfg, "horizon": h, "position": pos, "seed_start": starts[h, pos]}, m, s, str(model_dir))
             for s in seeds for h, pos in cells for m in methods]
    out: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        out.append(row)
        print(f"  H={row['horizon']} {row['position']:5s} {row['method']:6s} seed {row['seed']}: to90 "
              f"{row['episodes_to_90']} final {row['final_success']:.2f} loc {row['loc']:.2f} "
              f"ratio {row['ratio']:.2f} {row['wall_s']:.0f}s", flush=True)
        if runs_file is not None:
            with runs_file.open("a") as f:
                f.write(json.dumps({**row, "config": {k: v for k, v in cfg.items()}}) + "\n")

    if workers <= 1:
        for task in tasks:
            if deadline is not None and time.time() > deadline:
                break
            keep(run_one(task))
        return out
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = []
        it = iter(tasks)
        for task in it:  # keep `workers` runs in flight; stop submitting at the deadline
            pending.append(pool.submit(run_one, task))
            if len(pending) >= workers:
                keep(pending.pop(0).result())
                if deadline is not None and time.time() > deadline:
                    break
        for fut in pending:
            keep(fut.result())
    return out


# -- report -----------------------------------------------------------------------------------
def _median_spread(values: list[float | None], budget: int) -> str:
    done = sorted(v for v in values if v is not None)
    n, k = len(values), len(done)
    if not k:
        return f"not reached (0/{n}, > {budget})"
    if k < n:  # a run that never reached 90% counts as > budget: the median exists if most did
        full = sorted([float(v) for v in done] + [math.inf] * (n - k))
        med = full[n // 2] if n % 2 else (full[n // 2 - 1] + full[n // 2]) / 2
        med_s = f"> {budget}" if math.isinf(med) else f"{med:.0f}"
        return f"{med_s} [{done[0]:.0f}–{'>' + str(budget)}] ({k}/{n})"
    return f"{np.median(done):.0f} [{done[0]:.0f}–{done[-1]:.0f}] ({k}/{n})"


def truncate(rows: list[dict[str, Any]], iterations: int) -> list[dict[str, Any]]:
    """Rows cut to a common budget of ``iterations``: a run is a prefix of a longer run with the
    same seed (constant lr, eval RNG restored), so its eval curve up to there is the shorter run's.
    Localisation (loc, ratio) still covers every iteration the run trained."""
    out = []
    for r in rows:
        per_iter = r["config"]["tasks"] * r["config"]["group"] if "config" in r else r["budget"] // max(len(r["curve"]) - 1, 1)
        budget = iterations * per_iter
        curve = [(ep, s) for ep, s in r["curve"] if ep <= budget]
        reached = next((ep for ep, s in curve if s >= 0.9), None)
        out.append({**r, "curve": curve, "budget": min(budget, r["budget"]), "episodes_to_90": reached,
                    "final_success": curve[-1][1], "trained_budget": r["budget"]})
    return out


def cfg_tasks(row: dict[str, Any]) -> int:
    """The pool size a run trained on."""
    return int(row["config"]["tasks"]) if "config" in row else int(FULL["tasks"])


def _mean_or_dash(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{np.mean(finite):.2f}" if finite else "—"


def curve_mean(row: dict[str, Any]) -> float:
    return float(np.mean([s for ep, s in row["curve"] if ep > 0]))


def _paired_vs_grpo(rs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    if rs[0]["method"] == "grpo":
        return "—"
    base = {r["seed"]: r["final_success"] for r in rows
            if (r["horizon"], r["position"], r["method"]) == (rs[0]["horizon"], rs[0]["position"], "grpo")}
    diffs = [r["final_success"] - base[r["seed"]] for r in rs if r["seed"] in base]
    return f"{np.mean(diffs):+.2f} ± {np.std(diffs):.2f} (n={len(diffs)})" if diffs else "—"


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], out_dir: Path = RESULTS) -> str:
    cells = sorted({(r["horizon"], r["position"]) for r in rows}, key=lambda c: (c[0], c[1] != "early"))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = [
        "# Turn-level credit with a shared-weights policy (tiny transformer, Bifurcation-v0)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['note']}",
        "",
        f"Per run: SFT warm start ({meta['sft_steps']} steps on {meta['sft_episodes']} ε-greedy expert episodes), "
        f"then {meta['iterations']} iterations × {meta['tasks']} tasks × G = {meta['group']} = "
        f"{meta['iterations'] * meta['tasks'] * meta['group']} training episodes (the same budget for every "
        f"method); eval over the {meta['tasks']}-task pool × {meta['eval_episodes']} episodes every "
        f"{meta['eval_every']} iterations. Protocol and configs: the docstring of bench/credit_lm.py.",
        "",
        "**to 90%** = training episodes until eval success ≥ 0.9: median [min–max] (runs that reached it / "
        "runs). **loc** = share of training groups whose mean |A| is strictly largest on the decisive stage; "
        "**ratio** = mean |A| on the decisive stage / on the others (means over seeds). **curve** = mean "
        "eval success over the evals after the start (the area under the learning curve, a speed measure "
        "when no run reaches 90%). **Δ final vs GRPO** = final success minus GRPO's with the same seed "
        "(mean ± std over the seeds both ran; a seed gives every method the same SFT start). **|A| mass** = "
        "share of all |A| (every trained turn) on the decisive stage (GRPO ≈ 1/H); — for runs recorded before it "
        "was measured. **pool** = the task pool's check (:func:`pool_problems`): runs on an aliased pool "
        "(two tasks with one decisive scene and different good labels) cannot reach 1.0 with any credit.",
        "",
        "| H | t* | method | pool | runs | start | to 90% | final success | curve | Δ final vs GRPO | loc "
        "| |A| mass | ratio | wall s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h, pos in cells:
        for m in methods:
            rs = [r for r in rows if (r["horizon"], r["position"], r["method"]) == (h, pos, m)]
            if not rs:
                continue
            starts = sorted({r.get("seed_start", 0) for r in rs})  # runs before issue 24 used seed 0 on
            problems = [p for st in starts for p in pool_problems(pool_tasks(h, rs[0]["t_star"], st, cfg_tasks(rs[0])))]
            pool = ("balanced" if not problems else "aliased: " + "; ".join(problems)) + f" (seeds from {starts})"
            lines.append(
                f"| {h} | {pos} ({rs[0]['t_star']}) | {m} | {pool} | {len(rs)} | {np.mean([r['start_success'] for r in rs]):.2f} | "
                f"{_median_spread([r['episodes_to_90'] for r in rs], rs[0]['budget'])} | "
                f"{np.mean([r['final_success'] for r in rs]):.2f} ± {np.std([r['final_success'] for r in rs]):.2f} | "
                f"{np.mean([curve_mean(r) for r in rs]):.2f} | {_paired_vs_grpo(rs, rows)} | "
                f"{np.mean([r['loc'] for r in rs]):.2f} | {_mean_or_dash([r.get('mass') for r in rs])} | "
                f"{_mean_or_dash([r['ratio'] for r in rs])} | "
                f"{np.mean([r['wall_s'] for r in rs]):.0f} |")
    lines += ["", *meta.get("findings", [])]
    text = "\n".join(lines) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "credit_lm.md").write_text(text)
    _plot(rows, cells, methods, out_dir / "credit_lm.png")
    return text


def _plot(rows: list[dict[str, Any]], cells: list[tuple[int, str]], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.4), squeeze=False)
    for ax, (h, pos) in zip(axes[0], cells, strict=True):
        for m in methods:
            rs = [r for r in rows if (r["horizon"], r["position"], r["method"]) == (h, pos, m)]
            if not rs:
                continue
            xs = [ep for ep, _ in rs[0]["curve"]]
            ys = np.array([[s for _, s in r["curve"]][: len(xs)] for r in rs if len(r["curve"]) >= len(xs)])
            ax.plot(xs, np.median(ys, axis=0), color=COLORS[m], label=f"{m} (n={len(ys)})")
            ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=COLORS[m], alpha=0.12)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_title(f"H={h}, t* {pos}")
        ax.set_xlabel("training episodes")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("eval success (median, min–max band)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FULL = {"tasks": 4, "group": 8, "iterations": 12, "eval_every": 2, "eval_episodes": 8, "sft_steps": 100,
        "sft_episodes": 64, "threads": 1}
SMOKE = {"tasks": 2, "group": 4, "iterations": 2, "eval_every": 1, "eval_episodes": 2, "sft_steps": 5,
         "sft_episodes": 8, "threads": 1}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="seconds, no model: assert each cell's pool balance and the oracle's mechanics")
    ap.add_argument("--smoke", action="store_true", help="train: one cell (H=4, early), two seeds, a tiny budget")
    ap.add_argument("--cells", default="4:early,4:late,8:early,8:late", help="H:early|late, comma separated")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="5", help="N (seeds 0 … N−1) or a comma-separated list of seeds")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--iterations", type=int, help="RL iterations per run (with --report-only: cut every run to this)")
    ap.add_argument("--deadline-min", type=float, help="stop submitting runs after this many minutes")
    ap.add_argument("--model-dir", default=str(ROOT / "runs" / "credit-lm-tiny"))
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the saved runs file")
    ap.add_argument("--note", default="", help="a sentence for the report (scope, what was not run)")
    ap.add_argument("--findings", help="a markdown file appended to the report (the reading of the results)")
    args = ap.parse_args(argv)
    if args.quick:
        cells = [(int(h), p) for h, p in (c.split(":") for c in args.cells.split(","))]
        print("\n".join(quick_check(cells, FULL["tasks"])))
        return 0
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.iterations:
        cfg["iterations"] = args.iterations
    out = Path(args.out)
    runs_file = out / RUNS_FILE.name
    cells = [(4, "early")] if args.smoke else [(int(h), p) for h, p in (c.split(":") for c in args.cells.split(","))]
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; known: {list(METHODS)}")
    command = "python bench/credit_lm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    if args.report_only:
        rows = [json.loads(line) for line in runs_file.read_text().splitlines() if line.strip()]
        cfg = dict(rows[0]["config"]) if rows else cfg
        if args.iterations:  # a common budget for runs trained for different numbers of iterations
            rows = truncate(rows, args.iterations)
            cfg["iterations"] = args.iterations
    else:
        seeds = range(2) if args.smoke else (
            [int(x) for x in args.seeds.split(",") if x] if "," in args.seeds else range(int(args.seeds)))
        if not seeds:
            ap.error(f"--seeds {args.seeds!r} selects no seed: give a count N >= 1 or a list such as 0, or 0,3")
        out.mkdir(parents=True, exist_ok=True)
        deadline = None if args.deadline_min is None else time.time() + 60 * args.deadline_min
        rows = run_grid(cfg, cells, methods, list(seeds), workers=args.workers, model_dir=Path(args.model_dir),
                        runs_file=None if args.smoke else runs_file, deadline=deadline)
    meta = {**cfg, "command": command, "machine": f"{platform.machine()}, {platform.python_version()}, CPU",
            "note": args.note or f"{len(rows)} runs, total wall {time.perf_counter() - t0:.0f} s.",
            "findings": Path(args.findings).read_text().splitlines() if args.findings else []}
    text = write_report(rows, meta, out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
