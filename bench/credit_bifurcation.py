"""Credit assignment on controlled bifurcation tasks (docs/credit.md#bifurcation), with a tabular softmax policy.

Why: the credit estimators are only worth their complexity if they put advantage on the turn that
decides the outcome and so learn faster than outcome-only GRPO. ``agentgym/Bifurcation-v0`` has
exactly one decisive stage t* (good option → success with p_good, else p_bad) and filler or
distractor stages that cannot change the outcome, so both things can be measured exactly.

Setup (the same for every estimator): one task per seed; each iteration rolls out a group of G
episodes of that task (same env seed; ``outcome_seed`` = member + G·iteration, so outcomes are
independent within a group and common random numbers across estimators); trajectories are built
as JSONL-schema dicts and go through ``agentgym.credit.assign_credit`` exactly as in production;
then one on-policy REINFORCE step on a tabular softmax policy (logits per (stage, option); the
stage is parsed from the observation, the decisive status is hidden from the policy). Sokoban:
logits per (board, move), board = ``state_key`` = the board drawn in the observation.

Update: ``θ[s] += lr · Σ_{i,t} A_{i,t} (e_{a_{i,t}} − π(·|s_{i,t})) / G / rms(A)``. Dividing by the
batch RMS of the advantages (one scalar per group) removes each estimator's overall scale (IGPO's
sums over turns are several times larger than GRPO's z-scores) and keeps its relative per-turn
credit, so one learning rate serves all. One on-policy step per batch: the importance ratio is 1,
so clipping (and A²TGPO's adaptive clip scale) has no effect here.

Information gain needs ℓ_t = "log-prob of the gold answer after turn t". A tabular policy has no
answer distribution, so ℓ_t = log of the probability of success from the state reached after
turn t, the analogue of IGPO's teacher-forced gold probability (privileged: it knows the gold).
Two scorers: ``oracle`` = the exact value V^π(s) (p_good / p_bad once the decisive choice is made,
p_bad + π(good | t*)·(p_good − p_bad) before, with π the rollout policy) — an upper bound for IG
credit; ``learned`` = a Laplace-smoothed success rate per state_key counted over earlier
iterations (a tabular critic, no privileged knowledge). The last turn is the outcome turn and
carries no IG (agentgym's convention), so with t* = H−1 IG cannot see the decisive choice.

Metrics: (a) credit localisation on a probe of uniform-policy groups shared by all estimators (and
on the training groups): share of groups whose group-mean |A| is strictly largest at t*, and mean
|A| at t* over mean |A| on the other turns; (b) episodes until π(good | t*) ≥ 0.9 (the policy's
exact probability of the good decisive choice, i.e. 90% of the attainable success gain), mean and
bootstrap 95% CI over the seeds that reached it, "not reached" counted; (c) wall time.

    .venv/bin/python bench/credit_bifurcation.py            # full run (~5 min on 2 busy cores)
    .venv/bin/python bench/credit_bifurcation.py --quick    # smoke run (~20 s)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import agentgym
from agentgym.credit import assign_credit
from agentgym.trajectory import Trajectory, Turn

BIF_ID = "agentgym/Bifurcation-v0"
SOK_ID = "agentgym/Sokoban-v0"
RESULTS = Path(__file__).parent / "results"
PER_TURN_KEYS = frozenset({"state_key", "parse_error", "void", "failure", "tool_calls", "answer", "role"})
MOVES = ("up", "down", "left", "right")
_STAGE = re.compile(r"Stage (\d+) of \d+\.")

# name -> (credit config, IG scorer kind or None). Library defaults otherwise (docs/credit.md#defaults).
ESTIMATORS: dict[str, tuple[dict[str, Any], str | None]] = {
    "grpo": ({"method": "grpo"}, None),
    "gigpo": ({"method": "gigpo"}, None),  # γ 0.95, ω 1, F_norm 1
    "igpo_oracle": ({"method": "igpo"}, "oracle"),  # log-prob IG, separate norm, γ 1
    "igpo_learned": ({"method": "igpo"}, "learned"),
    "a2tgpo_oracle": ({"method": "a2tgpo"}, "oracle"),  # α 0.3, turn-group norm
    # Baselines for the step-size question (issue 24): the RMS division gives an estimator that puts
    # less |A| on filler turns a larger step on t*. `grpo_lr_sqrtH` is GRPO at lr·√H; `oracle_credit`
    # is GRPO's advantage kept on t* only (perfect localisation). With the RMS division both take the
    # same step on t* (rms over H turns of one nonzero turn = |A|/√H), so their π(good | t*) curves agree.
    "grpo_lr_sqrtH": ({"method": "grpo"}, None),
    "oracle_credit": ({"method": "grpo"}, None),
}
LR_SQRT_H = frozenset({"grpo_lr_sqrtH"})
DECISIVE_ONLY = frozenset({"oracle_credit"})
DEFAULT_ESTIMATORS = ("grpo", "grpo_lr_sqrtH", "oracle_credit", "gigpo", "igpo_oracle", "igpo_learned",
                      "a2tgpo_oracle")
COLORS = {"grpo": "black", "gigpo": "tab:blue", "igpo_oracle": "tab:orange", "igpo_learned": "tab:red",
          "a2tgpo_oracle": "tab:green", "grpo_lr_sqrtH": "tab:gray", "oracle_credit": "tab:purple"}


# -- IG scorers (agentgym.credit's GoldAnswerScorer protocol, trajectory form) -----------------
class OracleValueScorer:
    """ℓ_k = log V^π(state before turn k), exact, from the hidden decisive status in state_key."""

    def __init__(self, probs: np.ndarray, good: np.ndarray, t_star: int, p_good: float, p_bad: float):
        self.probs, self.good, self.t_star, self.p_good, self.p_bad = probs, good, t_star, p_good, p_bad

    def score(self, contexts: Sequence[Any], golds: Sequence[str]) -> Sequence[float]:
        raise NotImplementedError("trajectory-level scorer: use trajectory_gold_logprobs")

    def trajectory_gold_logprobs(self, trajectories: Sequence[dict[str, Any]]) -> list[list[float]]:
        out = []
        for tr in trajectories:
            run = tr["info"]["run"]
            pending = self.p_bad + self.probs[run, self.t_star, self.good[run]] * (self.p_good - self.p_bad)
            value = {"pending": math.log(pending), "good": math.log(self.p_good), "bad": math.log(self.p_bad)}
            out.append([value[t["state_key"].rsplit("=", 1)[1]] for t in tr["turns"]])
        return out


class LearnedValueScorer:
    """ℓ_k = log of a Laplace-smoothed success rate of (run, state_key), from earlier episodes only."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], list[float]] = {}

    def score(self, contexts: Sequence[Any], golds: Sequence[str]) -> Sequence[float]:
        raise NotImplementedError("trajectory-level scorer: use trajectory_gold_logprobs")

    def trajectory_gold_logprobs(self, trajectories: Sequence[dict[str, Any]]) -> list[list[float]]:
        out = []
        for tr in trajectories:
            run = tr["info"]["run"]
            row = []
            for t in tr["turns"]:
                won, n = self.counts.get((run, t["state_key"]), (0.0, 0.0))
                row.append(math.log((won + 1.0) / (n + 2.0)))
            out.append(row)
        return out

    def update(self, trajectories: Sequence[dict[str, Any]]) -> None:
        for tr in trajectories:
            run, won = tr["info"]["run"], float(tr["outcome"] > 0)
            for t in tr["turns"]:
                c = self.counts.setdefault((run, t["state_key"]), [0.0, 0.0])
                c[0] += won
                c[1] += 1.0


# -- rollouts --------------------------------------------------------------------------------
def _new_traj(tag: str, run: int, it: int, member: int, seed: int, env_id: str, info: dict[str, Any]) -> Trajectory:
    return Trajectory(traj_id=f"{tag}-r{run}-i{it}-m{member}", group_id=f"{tag}-r{run}-i{it}", task_id=info["task_id"],
                      env_id=env_id, seed=seed, policy="tabular-softmax",
                      info={**{k: v for k, v in info.items() if k not in PER_TURN_KEYS}, "run": run})


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def rollout_bifurcation(envs: list[list[Any]], seeds: Sequence[int], probs: np.ndarray, rng: np.random.Generator,
                        it: int, tag: str) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """One group of G episodes per run, stepped in lock-step; returns (trajectory dicts, stages, actions).

    ``stages`` / ``actions`` are (runs, G, H) arrays in the canonical row order of the credit batch.
    """
    S, G = len(envs), len(envs[0])
    H, K = probs.shape[1], probs.shape[2]
    cum = np.cumsum(probs, -1)
    trajs, obs, keys = [], [], []
    for s in range(S):
        for g in range(G):
            o, info = envs[s][g].reset(seed=seeds[s], options={"outcome_seed": it * G + g})
            trajs.append(_new_traj(tag, s, it, g, seeds[s], BIF_ID, info))
            obs.append(o)
            keys.append(info["state_key"])
    stages = np.zeros((S, G, H), dtype=np.int64)
    actions = np.zeros((S, G, H), dtype=np.int64)
    runs = np.repeat(np.arange(S), G)
    for h in range(H):
        st = np.array([int(_STAGE.search(o).group(1)) - 1 for o in obs])  # type: ignore[union-attr]
        a = np.minimum((rng.random(S * G)[:, None] > cum[runs, st]).sum(-1), K - 1)
        stages[:, :, h] = st.reshape(S, G)
        actions[:, :, h] = a.reshape(S, G)
        for i, tr in enumerate(trajs):
            env = envs[i // G][i % G]
            action = str(a[i] + 1)
            o2, r, term, trunc, info = env.step(action)
            tr.turns.append(Turn(index=h, observation=obs[i], action=action, reward=r, state_key=keys[i],
                                 void=bool(info["void"]), parse_error=info["parse_error"]))
            tr.outcome += r
            obs[i], keys[i] = o2, info["state_key"]
            if term or trunc:
                tr.terminated, tr.truncated, tr.final_observation = term, trunc, o2
                tr.info.update({k: v for k, v in info.items() if k not in PER_TURN_KEYS})
    assert all(t.terminated for t in trajs), "a bifurcation episode did not end after H valid choices"
    return [t.to_dict() for t in trajs], stages, actions


# -- statistics ------------------------------------------------------------------------------
@dataclass
class Localisation:
    """Accumulates per-group credit localisation: argmax hit counts and |A| sums."""

    groups: int = 0
    hits: int = 0
    at_star: float = 0.0
    elsewhere: float = 0.0
    profile: np.ndarray | None = None  # Σ over groups of the group-mean |A| per turn position

    def add(self, adv: np.ndarray, t_star: int) -> None:
        """``adv``: (groups, G, H) advantages; one group per first axis."""
        m = np.abs(adv).mean(1)
        others = np.delete(m, t_star, axis=1)
        self.groups += len(m)
        self.hits += int((m[:, t_star] > others.max(1) * (1 + 1e-9) + 1e-12).sum())
        self.at_star += float(m[:, t_star].sum())
        self.elsewhere += float(others.mean(1).sum())
        self.profile = m.sum(0) if self.profile is None else self.profile + m.sum(0)

    @property
    def share(self) -> float:
        return self.hits / max(self.groups, 1)

    @property
    def ratio(self) -> float:
        if self.elsewhere > 0:
            return self.at_star / self.elsewhere
        return math.inf if self.at_star > 0 else float("nan")

    @property
    def mass(self) -> float:
        """Share of the total |A| mass on t* (the group-mean |A| summed over turns)."""
        if self.profile is None:
            return float("nan")
        total = float(self.profile.sum())
        return self.at_star / total if total > 0 else float("nan")


def bootstrap_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (NaN with fewer than 2 values)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(x, (n_boot, len(x))).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def first_reach(curve: np.ndarray, episodes: np.ndarray, threshold: float) -> np.ndarray:
    """Per run (rows of ``curve``): episodes at the first point ≥ threshold, NaN if never."""
    hit = curve >= threshold
    return np.where(hit.any(1), episodes[hit.argmax(1)], np.nan)


# -- Bifurcation ------------------------------------------------------------------------------
@dataclass
class BifResult:
    """One (H, t*, estimator): learning curves and credit statistics."""

    horizon: int
    t_star: int
    estimator: str
    episodes: np.ndarray  # (I+1,) episodes seen at each curve point
    curve: np.ndarray  # (runs, I+1) π(good | t*)
    to_90: np.ndarray  # (runs,) episodes to π(good) ≥ 0.9, NaN = not reached
    probe: Localisation
    train: Localisation
    wall_s: float
    credit_s: float
    turns: int
    extra: dict[str, float] = field(default_factory=dict)


def _pg_step(logits: np.ndarray, probs: np.ndarray, stages: np.ndarray, actions: np.ndarray, adv: np.ndarray,
             lr: float, rms_norm: bool) -> None:
    """In-place REINFORCE step on (runs, H, K) logits from (runs, G, H) stages/actions/advantages."""
    S, G, _ = adv.shape
    K = logits.shape[2]
    run = np.broadcast_to(np.arange(S)[:, None, None], adv.shape)
    score = np.eye(K)[actions] - probs[run, stages]  # ∇ log π(a|s) w.r.t. the logits of s
    scale = lr / G
    if rms_norm:
        rms = np.sqrt((adv**2).mean((1, 2)))
        scale = np.where(rms > 0, scale / np.maximum(rms, 1e-12), 0.0)[:, None, None, None]
    grad = np.zeros_like(logits)
    np.add.at(grad, (run, stages), adv[..., None] * score * scale)
    logits += grad


def _turn_credit(name: str, res: Any, seeds: int, group_size: int, horizon: int, t_star: int) -> np.ndarray:
    """(runs, G, H) masked advantages; ``oracle_credit`` keeps t* only (every turn here is a valid
    choice, so the turn index is the stage)."""
    adv = (res.advantages * res.loss_mask).reshape(seeds, group_size, horizon)
    return np.where(np.arange(horizon) == t_star, adv, 0.0) if name in DECISIVE_ONLY else adv


def run_bifurcation(horizon: int, t_star: int, estimators: Sequence[str] = DEFAULT_ESTIMATORS, *, seeds: int = 10,
                    group_size: int = 8, iterations: int = 150, lr: float = 0.1, probe_iters: int = 8,
                    rms_norm: bool = True, env_kwargs: dict[str, Any] | None = None,
                    seed0: int = 0) -> list[BifResult]:
    """Train one tabular policy per (seed, estimator) on Bifurcation(H, t*); same seeds and budget for all."""
    kw = {"horizon": horizon, "t_star": t_star, **(env_kwargs or {})}
    envs = [[agentgym.make(BIF_ID, **kw) for _ in range(group_size)] for _ in range(seeds)]
    p_good, p_bad = envs[0][0].p_good, envs[0][0].p_bad
    K = envs[0][0].n_options
    task_seeds = [seed0 + 1000 * horizon + 100 * t_star + s for s in range(seeds)]
    good = np.array([int(envs[s][0].reset(seed=task_seeds[s])[1]["good_label"]) - 1 for s in range(seeds)])
    uniform = np.full((seeds, horizon, K), 1.0 / K)

    # Probe: uniform-policy groups, identical for every estimator; the learned critic is fit on a
    # separate warm-up set of uniform-policy episodes of the same tasks.
    rng = np.random.default_rng([seed0, horizon, t_star, 1])
    probe = [rollout_bifurcation(envs, task_seeds, uniform, rng, 10_000 + k, "probe") for k in range(probe_iters)]
    warm = LearnedValueScorer()
    for k in range(probe_iters):
        warm.update(rollout_bifurcation(envs, task_seeds, uniform, rng, 20_000 + k, "warm")[0])

    results = []
    for name in estimators:
        config, scorer_kind = ESTIMATORS[name]
        loc_probe = Localisation()
        for trajs, _, _ in probe:
            sc = OracleValueScorer(uniform, good, t_star, p_good, p_bad) if scorer_kind == "oracle" else warm
            res = assign_credit(trajs, config, scorer=sc if scorer_kind else None)
            loc_probe.add(_turn_credit(name, res, seeds, group_size, horizon, t_star), t_star)

        rng = np.random.default_rng([seed0, horizon, t_star, 2])  # same action stream start for all
        logits = np.zeros((seeds, horizon, K))
        probs = _softmax(logits)
        learned = LearnedValueScorer()
        curve = [probs[np.arange(seeds), t_star, good]]
        loc_train = Localisation()
        credit_s, turns, rms_sum = 0.0, 0, 0.0
        t0 = time.perf_counter()
        for it in range(iterations):
            trajs, stages, actions = rollout_bifurcation(envs, task_seeds, probs, rng, it, "train")
            tc = time.perf_counter()
            scorer = (OracleValueScorer(probs, good, t_star, p_good, p_bad) if scorer_kind == "oracle"
                      else learned if scorer_kind == "learned" else None)
            res = assign_credit(trajs, config, scorer=scorer)
            credit_s += time.perf_counter() - tc
            adv = _turn_credit(name, res, seeds, group_size, horizon, t_star)
            turns += res.batch.n_rows
            rms_sum += float(np.sqrt((adv**2).mean((1, 2))).mean())
            loc_train.add(adv, t_star)
            if scorer_kind == "learned":
                learned.update(trajs)
            _pg_step(logits, probs, stages, actions, adv, lr * (math.sqrt(horizon) if name in LR_SQRT_H else 1.0),
                     rms_norm)
            probs = _softmax(logits)
            curve.append(probs[np.arange(seeds), t_star, good])
        wall = time.perf_counter() - t0
        episodes = np.arange(iterations + 1) * group_size
        c = np.stack(curve, 1)
        results.append(BifResult(horizon, t_star, name, episodes, c, first_reach(c, episodes, 0.9), loc_probe,
                                 loc_train, wall, credit_s, turns, {"adv_rms": rms_sum / max(iterations, 1)}))
    return results


# -- Sokoban ----------------------------------------------------------------------------------
@dataclass
class SokResult:
    """One estimator on Sokoban: per-run batch success curves and GiGPO anchor statistics."""

    estimator: str
    episodes: np.ndarray  # (I,) episodes seen after each iteration
    success: np.ndarray  # (runs, I) batch success rate
    length: np.ndarray  # (runs, I) mean episode length (turns)
    to_90: np.ndarray  # (runs,) episodes to a smoothed success ≥ 0.9, NaN = not reached
    wall_s: float
    credit_s: float
    turns: int
    extra: dict[str, float] = field(default_factory=dict)


def run_sokoban(estimators: Sequence[str] = ("grpo", "gigpo"), *, seeds: int = 10, group_size: int = 8,
                iterations: int = 150, lr: float = 0.1, window: int = 4, rms_norm: bool = True,
                env_kwargs: dict[str, Any] | None = None, seed0: int = 0) -> list[SokResult]:
    """Tabular policy over (board, move) on one small level per seed; GRPO vs GiGPO (no IG scorer here)."""
    kw = {"width": 6, "height": 6, "n_boxes": 1, "n_walls": 2, "max_moves": 8, "max_turns": 20, **(env_kwargs or {})}
    env = agentgym.make(SOK_ID, **kw)
    task_seeds = [seed0 + 5000 + s for s in range(seeds)]
    results = []
    for name in estimators:
        config, scorer_kind = ESTIMATORS[name]
        if scorer_kind is not None:
            raise ValueError("the Sokoban benchmark has no IG scorer; use grpo / gigpo")
        rng = np.random.default_rng([seed0, 7])
        tables: list[dict[str, np.ndarray]] = [{} for _ in range(seeds)]
        success = np.zeros((seeds, iterations))
        length = np.zeros((seeds, iterations))
        credit_s, turns = 0.0, 0
        group_sizes, singleton = [], []
        t0 = time.perf_counter()
        for it in range(iterations):
            trajs, rows = [], []  # rows: (run, board, action, probs), canonical order
            for s in range(seeds):
                table = tables[s]
                for g in range(group_size):
                    obs, info = env.reset(seed=task_seeds[s])
                    tr = _new_traj("sok", s, it, g, task_seeds[s], SOK_ID, info)
                    key, done = info["state_key"], False
                    while not done:
                        p = _softmax(table.get(key, np.zeros(4)))
                        a = min(int((rng.random() > np.cumsum(p)).sum()), 3)
                        o2, r, term, trunc, info = env.step(MOVES[a])
                        tr.turns.append(Turn(index=len(tr.turns), observation=obs, action=MOVES[a], reward=r,
                                             state_key=key, void=bool(info["void"]), parse_error=info["parse_error"]))
                        tr.outcome += r
                        rows.append((s, key, a, p))
                        obs, key, done = o2, info["state_key"], term or trunc
                        if done:
                            tr.terminated, tr.truncated, tr.final_observation = term, trunc, o2
                            tr.info.update({k: v for k, v in info.items() if k not in PER_TURN_KEYS})
                    success[s, it] += float(tr.outcome > 0) / group_size
                    length[s, it] += len(tr.turns) / group_size
                    trajs.append(tr.to_dict())
            tc = time.perf_counter()
            res = assign_credit(trajs, config)
            credit_s += time.perf_counter() - tc
            turns += res.batch.n_rows
            if "mean_step_group_size" in res.diagnostics:
                group_sizes.append(res.diagnostics["mean_step_group_size"])
                singleton.append(res.diagnostics["singleton_turn_share"])
            adv = res.advantages * res.loss_mask
            run = np.array([r[0] for r in rows])
            sq = np.bincount(run, weights=adv**2, minlength=seeds) / np.maximum(np.bincount(run, minlength=seeds), 1)
            scale = np.full(seeds, lr / group_size)
            if rms_norm:
                scale = np.where(sq > 0, scale / np.sqrt(np.maximum(sq, 1e-24)), 0.0)
            for (s, key, a, p), A in zip(rows, adv.tolist(), strict=True):
                if A:
                    step = -A * scale[s] * p
                    step[a] += A * scale[s]
                    tables[s][key] = tables[s].get(key, np.zeros(4)) + step
        wall = time.perf_counter() - t0
        episodes = (np.arange(iterations) + 1) * group_size
        window = min(window, iterations)
        kernel = np.ones(window) / window
        smooth = np.array([np.convolve(row, kernel, mode="valid") for row in success])
        to_90 = first_reach(smooth, episodes[window - 1:], 0.9)
        extra = {}
        if group_sizes:
            extra = {"mean_step_group_size": float(np.mean(group_sizes)),
                     "singleton_turn_share": float(np.mean(singleton))}
        results.append(SokResult(name, episodes, success, length, to_90, wall, credit_s, turns, extra))
    return results


# -- report -----------------------------------------------------------------------------------
def _fmt_ci(x: np.ndarray) -> str:
    done = x[~np.isnan(x)]
    if not len(done):
        return "—"
    lo, hi = bootstrap_ci(done)
    return f"{done.mean():.0f}" + ("" if math.isnan(lo) else f" [{lo:.0f}, {hi:.0f}]")


def paired_delta(x: np.ndarray, base: np.ndarray, budget: float) -> tuple[float, float, float]:
    """Mean per-seed difference in episodes-to-90% vs the baseline, with a bootstrap 95% CI.

    A run that never reached 90% counts as ``budget`` (a lower bound on its true value)."""
    d = np.where(np.isnan(x), budget, x) - np.where(np.isnan(base), budget, base)
    lo, hi = bootstrap_ci(d, seed=1)
    return float(d.mean()), lo, hi


def _verdict(mean: float, lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "n/a"
    return "faster" if hi < 0 else "slower" if lo > 0 else "no clear difference"


def position_name(horizon: int, t_star: int) -> str:
    return "early" if t_star == 0 else "late" if t_star == horizon - 1 else "middle"


def write_markdown(path: Path, bif: list[BifResult], sok: list[SokResult], meta: dict[str, Any],
                   raw: Sequence[BifResult] = ()) -> str:
    """Markdown tables + findings; returns the text."""
    budget = float(meta["iterations"] * meta["group_size"] + meta["group_size"])
    by_cfg: dict[tuple[int, int], dict[str, BifResult]] = {}
    for r in bif:
        by_cfg.setdefault((r.horizon, r.t_star), {})[r.estimator] = r
    lines = [
        "# Credit assignment on controlled bifurcation tasks (tabular policy)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; total wall {meta['total_s']:.0f} s; 1-min load average "
        f"{meta.get('load', '—')}; commit {meta.get('commit', '—')}.",
        "",
        f"Bifurcation-v0: p_good {meta['p_good']}, p_bad {meta['p_bad']}, {meta['n_options']} options, "
        f"1 distractor stage, no observation noise. {meta['seeds']} seeds (one task each), groups of "
        f"G = {meta['group_size']}, {meta['iterations']} iterations = {meta['iterations'] * meta['group_size']} "
        f"episodes per run, lr {meta['lr']}, advantages divided by their batch RMS "
        f"({'on' if meta['rms_norm'] else 'off'}). Same seeds, outcome draws and budget for every estimator. "
        "Estimator configs are the library defaults (`grpo`; `gigpo` γ 0.95, ω 1, F_norm 1; `igpo` log-prob IG, "
        "separate normalisation, γ 1; `a2tgpo` α 0.3). IG scorer: `oracle` = log of the exact success "
        "probability of the state after each turn under the rollout policy; `learned` = log of a "
        "Laplace-smoothed success rate per state_key from earlier iterations (see the module docstring). "
        "Baselines for the step size: `grpo_lr_sqrtH` = GRPO at lr·√H; `oracle_credit` = GRPO's advantage "
        "kept on t* only (perfect localisation), which under the RMS division takes exactly GRPO lr·√H's step "
        "on t*.",
        "",
        "Columns: **loc** = share of groups whose group-mean |A| is strictly largest at t* (ties, e.g. "
        "GRPO's equal credit on every turn, and all-zero groups count as misses); **ratio** = mean |A| at "
        f"t* / mean |A| on the other turns; *probe* = {meta['probe_groups']} uniform-policy groups per "
        "config, the same for every estimator; *train* = all training groups. **to 90%** = episodes until "
        "the policy's exact π(good | t*) ≥ 0.9: mean over the runs that reached it [bootstrap 95% CI]; "
        "**Δ vs GRPO** = paired per-seed difference (not reached counts as the budget), mean [95% CI]; "
        "**Δ vs GRPO lr·√H** = the same against GRPO at lr·√H; **|A| mass on t*** = share of the group-mean "
        "|A| summed over turns that lies on t*, training groups (GRPO: 1/H).",
        "",
        "| H | t* | estimator | loc probe | ratio probe | loc train | ratio train | |A| mass on t* (train) | "
        "reached | to 90% | Δ vs GRPO | Δ vs GRPO lr·√H | final π(good) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts: dict[str, dict[str, list[str]]] = {}
    for (h, ts), rs in sorted(by_cfg.items()):
        base, tuned = rs.get("grpo"), rs.get("grpo_lr_sqrtH")
        for name, r in rs.items():
            reached = int((~np.isnan(r.to_90)).sum())
            delta = delta_tuned = "—"
            if base is not None and name != "grpo":
                m, lo, hi = paired_delta(r.to_90, base.to_90, budget)
                delta = f"{m:+.0f} [{lo:+.0f}, {hi:+.0f}]"
                tag = f"H={h}, t*={ts} ({position_name(h, ts)})"
                verdicts.setdefault(name, {}).setdefault(_verdict(m, lo, hi), []).append(tag)
            if tuned is not None and name not in ("grpo", "grpo_lr_sqrtH"):
                m, lo, hi = paired_delta(r.to_90, tuned.to_90, budget)
                delta_tuned = f"{m:+.0f} [{lo:+.0f}, {hi:+.0f}]"
                verdicts.setdefault(f"{name} vs GRPO lr·√H", {}).setdefault(_verdict(m, lo, hi), []).append(
                    f"H={h}, t*={ts} ({position_name(h, ts)})")
            lines.append(
                f"| {h} | {ts} | {name} | {r.probe.share:.2f} | {r.probe.ratio:.2f} | {r.train.share:.2f} | "
                f"{r.train.ratio:.2f} | {r.train.mass:.2f} | {reached}/{len(r.to_90)} | {_fmt_ci(r.to_90)} | {delta} | "
                f"{delta_tuned} | {r.curve[:, -1].mean():.3f} |")

    lines += ["", "## Wall time per estimator (all bifurcation configs, training only)", "",
              "| estimator | train wall s | of which assign_credit s | credit µs / turn | turns |",
              "|---|---|---|---|---|"]
    for name in dict.fromkeys(r.estimator for r in bif):
        rs = [r for r in bif if r.estimator == name]
        wall, credit, turns = sum(r.wall_s for r in rs), sum(r.credit_s for r in rs), sum(r.turns for r in rs)
        lines.append(f"| {name} | {wall:.1f} | {credit:.1f} | {1e6 * credit / max(turns, 1):.1f} | {turns} |")

    if raw:
        lines += ["", "## Sensitivity: raw advantage scale (no RMS division)", "",
                  "Same runs without dividing by the batch RMS: the step size then follows each estimator's own "
                  "scale (mean batch RMS of |A| shown, from the scaled run).", "",
                  "| H | t* | estimator | mean adv RMS | to 90% (RMS-scaled) | to 90% (raw) | Δ vs GRPO (raw) |",
                  "|---|---|---|---|---|---|---|"]
        scaled = {(r.horizon, r.t_star, r.estimator): r for r in bif}
        raw_base = {(r.horizon, r.t_star): r for r in raw if r.estimator == "grpo"}
        for r in raw:
            ref = scaled.get((r.horizon, r.t_star, r.estimator))
            base = raw_base.get((r.horizon, r.t_star))
            delta = "—"
            if base is not None and r is not base:
                m, lo, hi = paired_delta(r.to_90, base.to_90, budget)
                delta = f"{m:+.0f} [{lo:+.0f}, {hi:+.0f}]"
            lines.append(f"| {r.horizon} | {r.t_star} | {r.estimator} | "
                         f"{'—' if ref is None else format(ref.extra['adv_rms'], '.2f')} | "
                         f"{'—' if ref is None else _fmt_ci(ref.to_90)} | {_fmt_ci(r.to_90)} | {delta} |")

    if sok:
        s0 = sok[0]
        sbudget = float(s0.episodes[-1] + meta["group_size"])
        lines += ["", "## Sokoban-v0 (tabular over (board, move))", "",
                  f"{meta['sok_desc']}. {s0.success.shape[0]} seeds (one level each), G = {meta['group_size']}, "
                  f"{s0.success.shape[1]} iterations, same lr and RMS scaling. **to 90%** = episodes until the "
                  "batch success rate averaged over 4 iterations reaches 0.9; final = last 10 iterations.",
                  "",
                  "| estimator | reached | to 90% | Δ vs GRPO | final success | final mean turns | "
                  "mean step-group size | singleton-turn share | wall s | credit s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        base_s = next((r for r in sok if r.estimator == "grpo"), None)
        for r in sok:
            delta = "—"
            if base_s is not None and r is not base_s:
                m, lo, hi = paired_delta(r.to_90, base_s.to_90, sbudget)
                delta = f"{m:+.0f} [{lo:+.0f}, {hi:+.0f}]"
                verdicts.setdefault(f"{r.estimator} (Sokoban)", {}).setdefault(_verdict(m, lo, hi), []).append(
                    "Sokoban")
            gs = r.extra.get("mean_step_group_size")
            sh = r.extra.get("singleton_turn_share")
            lines.append(
                f"| {r.estimator} | {int((~np.isnan(r.to_90)).sum())}/{len(r.to_90)} | {_fmt_ci(r.to_90)} | {delta} | "
                f"{r.success[:, -10:].mean():.3f} | {r.length[:, -10:].mean():.1f} | "
                f"{'—' if gs is None else f'{gs:.1f}'} | {'—' if sh is None else f'{sh:.3f}'} | "
                f"{r.wall_s:.1f} | {r.credit_s:.1f} |")

    lines += ["", "## Findings", "", "Sample efficiency against GRPO (paired 95% CI of the episode difference):", ""]
    for name, v in verdicts.items():
        parts = [f"{k}: {', '.join(cfgs)}" for k, cfgs in v.items()]
        lines.append(f"* **{name}** — " + "; ".join(parts) + ".")
    lines += ["", meta.get("discussion", "").strip(), ""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def plot(path: Path, bif: list[BifResult], sok: list[SokResult]) -> None:
    """Learning curves (mean ± 1.96·SE over seeds), a probe |A| profile, and Sokoban success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = sorted({r.horizon for r in bif})
    cols = ["early", "middle", "late"]
    fig, axes = plt.subplots(len(horizons) + 1, 3, figsize=(14, 3.2 * (len(horizons) + 1)), squeeze=False)
    for r in bif:
        ax = axes[horizons.index(r.horizon), cols.index(position_name(r.horizon, r.t_star))]
        mean = r.curve.mean(0)
        se = r.curve.std(0, ddof=1) / math.sqrt(len(r.curve)) if len(r.curve) > 1 else np.zeros_like(mean)
        ax.plot(r.episodes, mean, color=COLORS.get(r.estimator), label=r.estimator, lw=1.4,
                ls="--" if "learned" in r.estimator else "-")
        ax.fill_between(r.episodes, mean - 1.96 * se, np.minimum(mean + 1.96 * se, 1), color=COLORS.get(r.estimator),
                        alpha=0.15, lw=0)
        ax.axhline(0.9, color="grey", ls=":", lw=0.8)
        ax.set_title(f"Bifurcation H={r.horizon}, t*={r.t_star}", fontsize=9)
        ax.set_ylim(0.2, 1.01)
        ax.set_xlabel("episodes", fontsize=8)
        ax.set_ylabel("π(good | t*)", fontsize=8)
    for row in axes[:-1]:
        for ax in row:
            if not ax.lines:
                ax.set_visible(False)
    axes[0, 0].legend(fontsize=7)
    # Probe |A| profile of the longest horizon, middle t*.
    ax = axes[-1, 0]
    hmax = horizons[-1]
    for r in bif:
        if r.horizon == hmax and position_name(r.horizon, r.t_star) == "middle" and r.probe.profile is not None:
            prof = r.probe.profile / r.probe.profile.mean()
            ax.plot(np.arange(len(prof)), prof, marker="o", ms=3, color=COLORS.get(r.estimator), label=r.estimator,
                    ls="--" if "learned" in r.estimator else "-")
            ax.axvline(r.t_star, color="grey", ls=":", lw=0.8)
            ax.set_title(f"probe: group-mean |A| per turn / its mean (H={hmax}, t*={r.t_star})", fontsize=9)
    ax.set_xlabel("turn", fontsize=8)
    ax = axes[-1, 1]
    for r in sok:
        k = 4
        smooth = np.array([np.convolve(row, np.ones(k) / k, mode="valid") for row in r.success])
        mean = smooth.mean(0)
        se = smooth.std(0, ddof=1) / math.sqrt(len(smooth)) if len(smooth) > 1 else np.zeros_like(mean)
        x = r.episodes[k - 1:]
        ax.plot(x, mean, color=COLORS.get(r.estimator), label=r.estimator)
        ax.fill_between(x, mean - 1.96 * se, np.minimum(mean + 1.96 * se, 1), color=COLORS.get(r.estimator),
                        alpha=0.15, lw=0)
    ax.axhline(0.9, color="grey", ls=":", lw=0.8)
    ax.set_title("Sokoban 6x6: batch success (4-iteration mean)", fontsize=9)
    ax.set_xlabel("episodes", fontsize=8)
    if sok:
        ax.legend(fontsize=7)
    ax = axes[-1, 2]
    names = list(dict.fromkeys(r.estimator for r in bif))
    wall = [sum(r.wall_s for r in bif if r.estimator == n) for n in names]
    credit = [sum(r.credit_s for r in bif if r.estimator == n) for n in names]
    ax.bar(names, wall, color=[COLORS.get(n, "grey") for n in names], alpha=0.5, label="train wall")
    ax.bar(names, credit, color=[COLORS.get(n, "grey") for n in names], label="assign_credit")
    ax.set_title("wall seconds per estimator (all bifurcation configs)", fontsize=9)
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    ax.set_ylim(0, 1.3 * max(wall + [1e-9]))
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rng(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    lo, hi = fmt.format(min(values)).replace("-", "−"), fmt.format(max(values)).replace("-", "−")
    return lo if lo == hi else f"{lo} to {hi}"


def discussion(bif: list[BifResult], sok: list[SokResult], raw: Sequence[BifResult]) -> str:
    """The findings paragraphs, with every number taken from this run's results."""
    cfg = {(r.horizon, r.t_star, r.estimator): r for r in bif}
    budget = float(bif[0].episodes[-1] + (bif[0].episodes[1] - bif[0].episodes[0]))
    names = set(r.estimator for r in bif)
    out = []

    def mean90(r: BifResult) -> float:
        return float(np.nanmean(np.where(np.isnan(r.to_90), budget, r.to_90)))

    not_late = [(h, t) for (h, t, e) in cfg if e == "grpo" and t != h - 1]
    late = [(h, t) for (h, t, e) in cfg if e == "grpo" and t == h - 1]
    ig = [e for e in ("igpo_oracle", "igpo_learned") if e in names]
    if {"grpo", "grpo_lr_sqrtH"} <= names:
        tuned = [(h, t) for (h, t, e) in cfg if e == "grpo_lr_sqrtH"]
        text = ("**Step size, not credit (issue 24).** Dividing each group's advantages by their RMS over all H "
                "turns gives an estimator that puts less |A| on filler turns a larger step on t*, and in a tabular "
                "policy the filler logits cannot affect π(good | t*). GRPO at lr·√H needs "
                f"{_rng([mean90(cfg[(h, t, 'grpo_lr_sqrtH')]) / mean90(cfg[(h, t, 'grpo')]) for (h, t) in tuned], '{:.2f}')}"
                "× the episodes of GRPO at the common lr. ")
        if "oracle_credit" in names:
            gap = max(float(np.abs(cfg[(h, t, "oracle_credit")].curve - cfg[(h, t, "grpo_lr_sqrtH")].curve).max())
                      for (h, t) in tuned)
            text += ("Perfect localisation (`oracle_credit`: GRPO's advantage on t* only) takes exactly GRPO lr·√H's "
                     f"step on t*: their π(good | t*) curves agree to {gap:.0e} in every config. ")
        for e in ig:
            rows = [(h, t, mean90(cfg[(h, t, e)]), mean90(cfg[(h, t, "grpo_lr_sqrtH")])) for (h, t) in not_late]
            d = [paired_delta(cfg[(h, t, e)].to_90, cfg[(h, t, "grpo_lr_sqrtH")].to_90, budget) for (h, t) in not_late]
            text += (f"Against that baseline {e} (decisive turn not last) is faster in {sum(hi < 0 for _, _, hi in d)}"
                     f"/{len(d)} configs, slower in {sum(lo > 0 for _, lo, _ in d)}/{len(d)} (mean episodes to 90 %, "
                     f"{e} vs GRPO lr·√H: " + "; ".join(f"H={h} t*={t}: {a:.0f} vs {b:.0f}" for h, t, a, b in rows)
                     + "). ")
        text += ("So the common-lr gaps below measure how each estimator spreads |A| over turns under the RMS "
                 "division, not better credit; √H is the analytic match to the oracle's step, not a sweep.")
        out.append(text)
    if "grpo" in names and ig and not_late:
        speed = [mean90(cfg[(h, t, "grpo")]) / mean90(cfg[(h, t, e)]) for (h, t) in not_late for e in ig]
        early = sorted((h, mean90(cfg[(h, 0, "grpo")]) / mean90(cfg[(h, 0, ig[0])])) for (h, t) in not_late if t == 0)
        wins = all(paired_delta(cfg[(h, t, e)].to_90, cfg[(h, t, "grpo")].to_90, budget)[2] < 0
                   for (h, t) in not_late for e in ig)
        best = all(mean90(cfg[(h, t, ig[0])]) <= min(mean90(cfg[(h, t, e)]) for e in names if e not in ig)
                   for (h, t) in not_late)
        grows = len(early) > 1 and all(a[1] < b[1] for a, b in zip(early, early[1:], strict=False))
        text = (("Information gain (IGPO) is the fastest estimator whenever the decisive turn is not the last one: "
                 if wins and best else "Information gain (IGPO) against GRPO at the common lr, decisive turn not last: ")
                + f"{_rng(speed, '{:.1f}')}× fewer episodes than GRPO to reach π(good) ≥ 0.9"
                + (f", and the gap grows with the horizon at t* = 0 ({', '.join(f'H={h}: {x:.1f}×' for h, x in early)})"
                   if grows else "")
                + (" — the step-size effect above, matched by GRPO at lr·√H. " if "grpo_lr_sqrtH" in names else ". ")
                + "The IG at t* is a deterministic function of the choice (no Bernoulli outcome noise) and is "
                "there even in groups whose outcomes tie. ")
        if len(ig) == 2:
            d = [paired_delta(cfg[(h, t, "igpo_learned")].to_90, cfg[(h, t, "igpo_oracle")].to_90, budget)
                 for (h, t) in not_late]
            same = sum(lo <= 0 <= hi for _, lo, hi in d)
            text += (f"The count-based critic (igpo_learned) matches the oracle (paired CI covers 0 in {same}/{len(d)} "
                     "configs): the state_key carries the hidden decisive status, so V(good) → 0.9 and V(bad) → 0.1 "
                     "within a few iterations. That is the friendly case for IG; an LLM's gold log-prob is a noisier "
                     "proxy. ")
        if late:
            ident = [np.allclose(cfg[(h, t, e)].curve, cfg[(h, t, "grpo")].curve, rtol=0, atol=1e-6)
                     for (h, t) in late for e in ig + (["a2tgpo_oracle"] if "a2tgpo_oracle" in names else [])]
            text += ("At t* = H − 1 IGPO and A²TGPO " + ("are identical to GRPO (same curves to 1e-6, Δ = 0)" if all(ident)
                                                          else "do not differ from GRPO")
                     + ": the last turn is the outcome turn and carries no IG (agentgym's convention, as in IGPO), so "
                     "a decision taken on the answer turn gets outcome credit only. ")
        tr = [(cfg[(h, t, ig[0])].train.ratio, h, t) for (h, t) in not_late]
        worst = min(tr)
        text += ((f"IGPO's credit is not well localised *during training*: its train |A| ratio falls to {worst[0]:.2f} "
                  f"(H={worst[1]}, t*={worst[2]})" + (" while it learns fastest. " if best else ". "))
                 if worst[0] < 1 else f"IGPO's lowest train |A| ratio is {worst[0]:.2f} (H={worst[1]}, t*={worst[2]}). ")
        text += ("The `separate` normalisation z-scores the IG "
                 "pooled over all turns, so the exact zeros of the filler turns become a constant −μ/σ, and γ = 1 "
                 "accumulation multiplies it by the number of remaining turns: a converged group in which every "
                 "rollout chose well and succeeded (zero information) still gets advantages down to −√(H−2) "
                 "on its filler turns (t* = 0; −3.7 at H = 16). In a tabular policy that is zero-mean noise on filler logits; "
                 "with shared LLM weights it is a systematic push on whatever was sampled (a zero-variance group "
                 "filter would drop such groups). ")
        out.append(text)
    if "gigpo" in names and "grpo" in names:
        d = [paired_delta(cfg[(h, t, "gigpo")].to_90, cfg[(h, t, "grpo")].to_90, budget) for (h, t, e) in cfg
             if e == "grpo"]
        faster = sum(hi < 0 for _, _, hi in d)
        text = (f"GiGPO is faster than GRPO in {faster}/{len(d)} configs"
                + (", but modestly" if faster and max(m for m, _, _ in d) > -0.5 * budget / 4 else "")
                + f" (Δ {_rng([m for m, _, _ in d])} episodes). Its anchors split only after t* (where the hidden "
                "status enters state_key); before and at t* every rollout shares the anchor, so the step term there "
                "is just the discounted, group-centred return, and at t* = H − 1 its argmax localisation comes from "
                "the discount γ^(H−1−t), which favours late turns in general, not from anchoring. The episode term "
                f"A^E on every turn caps its |A| ratio at {_rng([cfg[k].probe.ratio for k in cfg if k[2] == 'gigpo'], '{:.2f}')}. ")
        raw_cfg = {(r.horizon, r.t_star, r.estimator): r for r in raw}
        rd = [paired_delta(raw_cfg[(h, t, "gigpo")].to_90, raw_cfg[(h, t, "grpo")].to_90, budget)
              for (h, t, e) in raw_cfg if e == "grpo" and (h, t, "gigpo") in raw_cfg]
        if rd:
            slower = sum(lo > 0 for _, lo, _ in rd)
            ig_raw = [paired_delta(raw_cfg[(h, t, e)].to_90, raw_cfg[(h, t, "grpo")].to_90, budget)[2] < 0
                      for (h, t, e2) in raw_cfg if e2 == "grpo" for e in ig if (h, t, e) in raw_cfg]
            text += (f"Without RMS scaling GiGPO is slower than GRPO in {slower}/{len(rd)} of the sensitivity configs"
                     + (" (its F_norm = 1 advantages are smaller than GRPO's z-scores), so its edge above is about the "
                        "direction of its credit at a matched step size" if slower else "")
                     + ("; IGPO stays faster than GRPO at the raw scale too. " if ig_raw and all(ig_raw) else ". "))
        out.append(text)
    if "a2tgpo_oracle" in names and not_late:
        a = [cfg[(h, t, "a2tgpo_oracle")] for (h, t) in not_late]
        d = [paired_delta(r.to_90, cfg[(r.horizon, r.t_star, "grpo")].to_90, budget)[0] for r in a]
        top = all(cfg[(h, t, "a2tgpo_oracle")].probe.share >= max(cfg[(h, t, e)].probe.share for e in names)
                  for (h, t) in not_late)
        out.append("A²TGPO (oracle IG) " + ("puts the largest |A| on t* most reliably in the probe" if top else
                                           "localises the argmax in the probe") + " (share "
                   f"{_rng([r.probe.share for r in a], '{:.2f}')}), because per-turn-position normalisation keeps "
                   "the zero-IG filler turns at exactly 0; but with α = 0.3 the outcome term Â^O on every turn "
                   f"dominates (ratio {_rng([r.probe.ratio for r in a], '{:.2f}')}); its Δ vs GRPO is "
                   f"{_rng(d)} episodes" + (", a fraction of IGPO's gain" if ig and all(
                       mean90(cfg[(r.horizon, r.t_star, ig[0])]) < mean90(r) for r in a) else "")
                   + ". Its adaptive clip scale does nothing in this single-step on-policy update. ")
    per_turn = {e: 1e6 * sum(r.credit_s for r in bif if r.estimator == e)
                / max(sum(r.turns for r in bif if r.estimator == e), 1) for e in names}
    out.append(f"Wall time is dominated by the text-env rollouts; assign_credit costs {_rng(per_turn.values(), '{:.1f}')} "
               "µs per turn for every estimator, IG scorers included.")
    g = {r.estimator: r for r in sok}
    if "grpo" in g and "gigpo" in g:
        m, lo, hi = paired_delta(g["gigpo"].to_90, g["grpo"].to_90, float(g["grpo"].episodes[-1] + 8))
        out.append(f"On Sokoban GiGPO reached 90% on {int((~np.isnan(g['gigpo'].to_90)).sum())}/{len(g['gigpo'].to_90)} "
                   f"levels vs GRPO's {int((~np.isnan(g['grpo'].to_90)).sum())}/{len(g['grpo'].to_90)} "
                   f"(paired Δ {m:+.0f} [{lo:+.0f}, {hi:+.0f}] episodes); final episodes last "
                   f"{g['gigpo'].length[:, -10:].mean():.1f} vs {g['grpo'].length[:, -10:].mean():.1f} turns (GiGPO's "
                   "γ = 0.95 rewards short solutions, GRPO has no length pressure). Anchors are plentiful on a 6×6 board "
                   f"(mean step group {g['gigpo'].extra.get('mean_step_group_size', float('nan')):.1f} turns). ")
    out.append("**Caveats.** A tabular policy has separate logits per stage, so credit misplaced on filler turns "
               "costs nothing at t*; only the size and noise of the t* credit matter after RMS scaling. What "
               "localisation buys with shared parameters is not measured here. One learning rate for all but "
               "`grpo_lr_sqrtH` (no estimator was tuned by a sweep); the RMS division is a choice (see the sensitivity "
               "table). The tasks are idealised: "
               "one decisive turn, its status Markov in state_key, outcome noise p_good/p_bad = 0.9/0.1.")
    return "\n\n".join(t.strip() for t in out)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()


def _commit() -> str:
    """Short hash of the checked-out commit (+ "-dirty" with uncommitted tracked changes), or "unknown"."""
    try:
        return _git("rev-parse", "--short", "HEAD") + ("-dirty" if _git("status", "--porcelain", "-uno") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 horizons, 3 seeds, short budgets")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=None, help="bifurcation iterations (groups per run)")
    ap.add_argument("--sokoban-iterations", type=int, default=None)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--no-rms", action="store_true", help="do not divide advantages by their batch RMS")
    ap.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                    help=f"comma separated, from {', '.join(ESTIMATORS)}")
    ap.add_argument("--out", type=Path, default=None, help="output dir (default bench/results; quick: runs/)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    quick = args.quick
    seeds = args.seeds or (3 if quick else 12)
    iters = args.iterations or (30 if quick else 150)
    sok_iters = args.sokoban_iterations or (15 if quick else 150)
    horizons = (4, 8) if quick else (4, 8, 16)
    out = args.out or (Path("runs/credit_bifurcation_quick") if quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    estimators = [e for e in args.estimators.split(",") if e]
    probe_iters = 2 if quick else 8
    t0 = time.perf_counter()
    load0, commit = os.getloadavg()[0], _commit()  # the code this run uses, before any later edit
    bif: list[BifResult] = []
    for h in horizons:
        for ts in sorted({0, h // 2, h - 1}):
            rs = run_bifurcation(h, ts, estimators, seeds=seeds, group_size=args.group_size, iterations=iters,
                                 lr=args.lr, probe_iters=probe_iters, rms_norm=not args.no_rms)
            for r in rs:
                done = r.to_90[~np.isnan(r.to_90)]
                print(f"H={h:2d} t*={ts:2d} {r.estimator:14s} loc {r.probe.share:.2f}/{r.train.share:.2f} "
                      f"ratio {r.probe.ratio:.2f}/{r.train.ratio:.2f} reached {len(done)}/{len(r.to_90)} "
                      f"to90 {done.mean() if len(done) else float('nan'):.0f} wall {r.wall_s:.1f}s", flush=True)
            bif += rs
    raw: list[BifResult] = []
    h = horizons[-1] if quick else 8
    for ts in (0, h // 2):
        raw += run_bifurcation(h, ts, estimators, seeds=seeds, group_size=args.group_size, iterations=iters,
                               lr=args.lr, probe_iters=1, rms_norm=False)
    sok_names = [e for e in ("grpo", "gigpo") if e in estimators]
    sok = run_sokoban(sok_names, seeds=seeds, group_size=args.group_size, iterations=sok_iters, lr=args.lr,
                      rms_norm=not args.no_rms)
    for r in sok:
        print(f"Sokoban {r.estimator:6s} reached {int((~np.isnan(r.to_90)).sum())}/{len(r.to_90)} "
              f"final {r.success[:, -10:].mean():.3f} wall {r.wall_s:.1f}s", flush=True)
    env = agentgym.make(BIF_ID)
    meta = {
        "command": " ".join([".venv/bin/python bench/credit_bifurcation.py", *argv]),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}, {os.cpu_count()} CPUs",
        "load": f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end", "commit": commit,
        "total_s": time.perf_counter() - t0, "p_good": env.p_good, "p_bad": env.p_bad, "n_options": env.n_options,
        "seeds": seeds, "group_size": args.group_size, "iterations": iters, "lr": args.lr,
        "rms_norm": not args.no_rms, "probe_groups": probe_iters * seeds,
        "sok_desc": "6x6 boards, 1 box, 2 inner walls, optimal solution 3–8 moves, max 20 turns, reward 1 on solve",
    }
    meta["discussion"] = discussion(bif, sok, raw)
    write_markdown(out / "credit_bifurcation.md", bif, sok, meta, raw)
    plot(out / "credit_bifurcation.png", bif, sok)
    print(f"wrote {out / 'credit_bifurcation.md'} and {out / 'credit_bifurcation.png'} "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
