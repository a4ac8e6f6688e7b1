"""Straightforward per-turn Python versions of the estimators: slow, obvious, for cross-checks.

They read plain lists (:func:`records`) and loop over trajectories and turns with dicts, the way
the released verl-agent / IGPO code does. Tests compare them with the vectorised estimators on
random batches; ``bench/credit_speed.py`` times both.
"""

from __future__ import annotations

import math
import string
from collections import defaultdict
from typing import Any

from .batch import TurnBatch

__all__ = ["records", "ref_a2tgpo", "ref_gigpo", "ref_grpo", "ref_igpo", "ref_aem", "ref_mapo", "ref_matchtir", "ref_siop",
           "ref_spa", "ref_void_mask", "ref_vpr"]


def records(batch: TurnBatch, include: Any = None) -> list[dict[str, Any]]:
    """The batch as one dict per trajectory (group, outcome, stats flag, turns with reward/state/void/ℓ)."""
    out = []
    for i in range(batch.n_traj):
        s, e = int(batch.starts[i]), int(batch.ends[i])
        inc = not bool(batch.infra[i]) and (include is None or bool(include[i]))
        out.append({
            "group": int(batch.traj_group[i]),
            "outcome": float(batch.outcome[i]),
            "stats": inc,
            "ell0": None if batch.gold_logp0 is None else float(batch.gold_logp0[i]),
            "ref_ell0": None if batch.ref_logp0 is None else float(batch.ref_logp0[i]),
            "answer": None if batch.answers is None else batch.answers[i],
            "turns": [
                {"reward": float(batch.reward[r]),
                 "state": int(batch.state[r]) if batch.state[r] >= 0 else ("none", r),
                 "void": bool(batch.void[r]),
                 "ell": None if batch.gold_logp is None else float(batch.gold_logp[r]),
                 "ref_ell": None if batch.ref_logp is None else float(batch.ref_logp[r]),
                 "score": None if batch.turn_score is None else float(batch.turn_score[r])}
                for r in range(s, e)
            ],
        })
    return out


def _mean_std(xs: list[float], ddof: int, var_eps: float) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return 0.0, 1.0
    m = sum(xs) / n
    if n <= 1:
        return m, 1.0
    var = sum((x - m) ** 2 for x in xs) / (n - ddof)
    return m, math.sqrt(var + var_eps)


def _returns(traj: dict[str, Any], key: str, gamma: float) -> list[float]:
    """Discounted returns ``Σ_{k≥t} γ^{k−t} x_k`` of one trajectory's turn values, turn by turn."""
    out, acc = [0.0] * len(traj["turns"]), 0.0
    for k in range(len(traj["turns"]) - 1, -1, -1):
        acc = traj["turns"][k][key] + gamma * acc
        out[k] = acc
    return out


def _z(x: float, stats: tuple[float, float], std: bool, eps: float = 1e-6) -> float:
    m, s = stats
    return (x - m) / (s + eps) if std else x - m


def ref_grpo(trajs: list[dict[str, Any]], std: bool = True) -> list[list[float]]:
    by_group: dict[int, list[float]] = defaultdict(list)
    for t in trajs:
        if t["stats"]:
            by_group[t["group"]].append(t["outcome"])
    stats = {g: _mean_std(v, 1, 0.0) for g, v in by_group.items()}
    return [[_z(t["outcome"], stats[t["group"]], std) if t["stats"] else 0.0] * len(t["turns"]) for t in trajs]


def ref_gigpo(trajs: list[dict[str, Any]], gamma: float = 0.95, omega: float = 1.0, std: bool = False,
              episode_stats: str = "trajectory") -> list[list[float]]:
    # episode returns
    ep: dict[int, list[float]] = defaultdict(list)
    for t in trajs:
        if t["stats"]:
            ret = sum(u["reward"] for u in t["turns"])
            ep[t["group"]].extend([ret] * (len(t["turns"]) if episode_stats == "step" else 1))
    ep_stats = {g: _mean_std(v, 1, 0.0) for g, v in ep.items()}
    # discounted step returns and anchor groups
    step_ret = []
    anchors: dict[tuple[int, Any], list[float]] = defaultdict(list)
    for t in trajs:
        rets = _returns(t, "reward", gamma)
        step_ret.append(rets)
        if t["stats"]:
            for u, r in zip(t["turns"], rets, strict=True):
                anchors[(t["group"], u["state"])].append(r)
    a_stats = {k: _mean_std(v, 1, 0.0) for k, v in anchors.items()}
    out = []
    for t, rets in zip(trajs, step_ret, strict=True):
        if not t["stats"]:
            out.append([0.0] * len(t["turns"]))
            continue
        a_e = _z(sum(u["reward"] for u in t["turns"]), ep_stats[t["group"]], std)
        out.append([a_e + omega * _z(r, a_stats[(t["group"], u["state"])], std)
                    for u, r in zip(t["turns"], rets, strict=True)])
    return out


def _ig(t: dict[str, Any], ig_type: str) -> list[float]:
    ells = [t["ell0"]] + [u["ell"] for u in t["turns"][:-1]]
    f = math.exp if ig_type == "prob_diff" else (lambda x: x)
    return [f(ells[k + 1]) - f(ells[k]) for k in range(len(ells) - 1)]


def ref_igpo(trajs: list[dict[str, Any]], ig_type: str = "log_prob_diff", norm: str = "separate",
             gamma: float = 1.0, std: bool = True, outcome: bool = True) -> list[list[float]]:
    pool_ig: dict[Any, list[float]] = defaultdict(list)
    pool_out: dict[int, list[float]] = defaultdict(list)
    igs = [_ig(t, ig_type) for t in trajs]
    for t, ig in zip(trajs, igs, strict=True):
        if not t["stats"]:
            continue
        for k, x in enumerate(ig):
            if math.isfinite(x):
                pool_ig[(t["group"], k) if norm == "turn_group" else t["group"]].append(x)
        if norm == "joint":
            if t["turns"]:
                pool_ig[t["group"]].append(t["outcome"])
        else:
            pool_out[t["group"]].append(t["outcome"])
    st_ig = {g: _mean_std(v, 0, 1e-8) for g, v in pool_ig.items()}
    st_out = st_ig if norm == "joint" else {g: _mean_std(v, 0, 1e-8) for g, v in pool_out.items()}
    out = []
    for t, ig in zip(trajs, igs, strict=True):
        if not t["stats"]:
            out.append([0.0] * len(t["turns"]))
            continue
        r = [_z(x, st_ig[(t["group"], k) if norm == "turn_group" else t["group"]], std) if math.isfinite(x) else 0.0
             for k, x in enumerate(ig)]
        if t["turns"]:
            r.append(_z(t["outcome"], st_out[t["group"]], std) if outcome else 0.0)
        adv, acc = [0.0] * len(r), 0.0
        for k in range(len(r) - 1, -1, -1):
            acc = r[k] + gamma * acc
            adv[k] = acc
        out.append(adv)
    return out


def ref_a2tgpo(trajs: list[dict[str, Any]], alpha: float = 0.3, beta: float = 0.3, gamma: float = 1.0,
               ig_type: str = "log_prob_diff") -> tuple[list[list[float]], list[list[float]]]:
    igs = [_ig(t, ig_type) for t in trajs]
    pool: dict[tuple[int, int], list[float]] = defaultdict(list)
    outs: dict[int, list[float]] = defaultdict(list)
    for t, ig in zip(trajs, igs, strict=True):
        if t["stats"]:
            outs[t["group"]].append(t["outcome"])
            for k, x in enumerate(ig):
                if math.isfinite(x):
                    pool[(t["group"], k)].append(x)
    st = {k: _mean_std(v, 0, 1e-8) for k, v in pool.items()}
    st_out = {g: _mean_std(v, 0, 1e-8) for g, v in outs.items()}
    adv_all, clip_all = [], []
    for t, ig in zip(trajs, igs, strict=True):
        if not t["stats"]:
            adv_all.append([0.0] * len(t["turns"]))
            clip_all.append([1.0] * len(t["turns"]))
            continue
        nt = [_z(x, st[(t["group"], k)], True) if math.isfinite(x) else 0.0 for k, x in enumerate(ig)]
        a_o = _z(t["outcome"], st_out[t["group"]], True)
        n = len(nt)
        adv, clip = [], []
        for k in range(n):
            d = sum(gamma ** (j - k) * nt[j] for j in range(k, n))
            adv.append(alpha * d / math.sqrt(n - k) + a_o)
            clip.append(1 + beta * (2 / (1 + math.exp(-nt[k])) - 1) if math.isfinite(ig[k]) else 1.0)
        if t["turns"]:
            adv.append(a_o)
            clip.append(1.0)
        adv_all.append(adv)
        clip_all.append(clip)
    return adv_all, clip_all


def ref_void_mask(trajs: list[dict[str, Any]]) -> list[list[float]]:
    out = []
    for t in trajs:
        void = any(u["void"] for u in t["turns"])
        out.append([0.0 if void else 1.0 for _ in t["turns"]])
    return out


def _norm_answer(text: str) -> str:
    out = "".join(" " if c in string.punctuation else c for c in text.lower())
    return " ".join(out.split())


def ref_siop(trajs: list[dict[str, Any]], lam: float = 0.5, eps: float = 1e-8, gamma: float = 1.0,
             std: bool = True) -> list[list[float]]:
    """SIOP as its released code does it, turn by turn: greedy exact-match clusters, q = |c|/K, the
    log-ratio rewards, a pooled per-prompt z-score (unbiased std, < 1e-6 → 1) and a suffix sum."""
    answered: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(trajs):
        a = t["answer"]
        if t["stats"] and a is not None and a.strip():
            answered[t["group"]].append(i)
    q = [0.0] * len(trajs)
    for idx in answered.values():
        todo = list(idx)
        while todo:
            head = todo[0]
            members = [j for j in todo if _norm_answer(trajs[j]["answer"]) == _norm_answer(trajs[head]["answer"])]
            for j in members:
                q[j] = len(members) / len(idx)
            todo = [j for j in todo if j not in members]

    def log_p(x: float) -> float:  # log(exp(x) + eps), written so a large x cannot overflow
        if eps <= 0:
            return x
        hi, lo = max(x, math.log(eps)), min(x, math.log(eps))
        return hi + math.log1p(math.exp(lo - hi))

    rewards = []
    for i, t in enumerate(trajs):
        turns = t["turns"]
        ells = [t["ref_ell0"]] + [u["ref_ell"] for u in turns]
        r = []
        for k in range(len(turns)):
            if len(turns) > 1 and math.isfinite(ells[k]) and math.isfinite(ells[k + 1]):
                r.append(q[i] * (log_p(ells[k + 1]) - log_p(ells[k])))
            else:
                r.append(0.0)
        if r:
            r[-1] += (1 - lam) * q[i]
        rewards.append(r)
    return _pooled_z_returns(trajs, rewards, gamma, std)


def _pooled_z_returns(trajs: list[dict[str, Any]], rewards: list[list[float]], gamma: float,
                      std: bool) -> list[list[float]]:
    """Each trajectory's turn rewards z-scored over all turn rewards of its prompt group (unbiased
    std, < 1e-6 → 1), then summed backwards with γ (SIOP's and SPA's last step)."""
    pools: dict[int, list[float]] = defaultdict(list)
    for t, r in zip(trajs, rewards, strict=True):
        if t["stats"]:
            pools[t["group"]].extend(r)
    stats = {}
    for g, xs in pools.items():
        m, sd = _mean_std(xs, 1, 0.0)
        stats[g] = (m, 1.0 if sd < 1e-6 else sd)
    out = []
    for t, r in zip(trajs, rewards, strict=True):
        if not t["stats"]:
            out.append([0.0] * len(r))
            continue
        z = [_z(x, stats[t["group"]], std) for x in r]
        adv, acc = [0.0] * len(z), 0.0
        for k in range(len(z) - 1, -1, -1):
            acc = z[k] + gamma * acc
            adv[k] = acc
        out.append(adv)
    return out


def ref_mapo(trajs: list[dict[str, Any]], gamma: float = 1.0, lam: float = 0.5, std: bool = True) -> list[list[float]]:
    """MAPO [recon]: Monte-Carlo returns of the turn scores, z-scored per (prompt, turn position)
    and over the whole batch (unbiased std), mixed λ : 1 − λ."""
    returns = [_returns(t, "score", gamma) for t in trajs]
    by_turn: dict[tuple[int, int], list[float]] = defaultdict(list)
    everything: list[float] = []
    for t, g in zip(trajs, returns, strict=True):
        if t["stats"]:
            for k, x in enumerate(g):
                by_turn[(t["group"], k)].append(x)
                everything.append(x)
    st_turn = {k: _mean_std(v, 1, 0.0) for k, v in by_turn.items()}
    st_all = _mean_std(everything, 1, 0.0)
    return [[lam * _z(x, st_turn[(t["group"], k)], std) + (1 - lam) * _z(x, st_all, std) for k, x in enumerate(g)]
            if t["stats"] else [0.0] * len(g) for t, g in zip(trajs, returns, strict=True)]


def ref_matchtir(trajs: list[dict[str, Any]], gamma: float = 0.9, mix: float = 0.5,
                 std: bool = True) -> list[list[float]]:
    """MatchTIR's dual-level advantage as its released code loops: the turn rewards ("score")
    summed per trajectory and z-scored per prompt, their γ-returns z-scored per (prompt, turn
    position), mixed ``mix : 1 − mix`` (unbiased std; a group of one gives 0)."""
    totals: dict[int, list[float]] = defaultdict(list)
    steps: dict[tuple[int, int], list[float]] = defaultdict(list)
    returns = [_returns(t, "score", gamma) for t in trajs]
    for t, g in zip(trajs, returns, strict=True):
        if t["stats"]:
            totals[t["group"]].append(sum(u["score"] for u in t["turns"]))
            for k, x in enumerate(g):
                steps[(t["group"], k)].append(x)
    st_total = {k: _mean_std(v, 1, 0.0) for k, v in totals.items()}
    st_step = {k: _mean_std(v, 1, 0.0) for k, v in steps.items()}
    out = []
    for t, g in zip(trajs, returns, strict=True):
        if not t["stats"]:
            out.append([0.0] * len(g))
            continue
        a_traj = _z(sum(u["score"] for u in t["turns"]), st_total[t["group"]], std)
        out.append([mix * _z(x, st_step[(t["group"], k)], std) + (1 - mix) * a_traj for k, x in enumerate(g)])
    return out


def ref_spa(trajs: list[dict[str, Any]], contributions: list[list[float]], executed: list[list[bool]],
            grounding: float = 0.5, gamma: float = 1.0, std: bool = True) -> list[list[float]]:
    """SPA-RL, turn by turn: reward = contribution + grounding if the action executed (as the
    released rl_data_org.py adds 0.5), then SIOP's pooled z-score and suffix sum."""
    rewards = [[c + (grounding if ok else 0.0) for c, ok in zip(cs, ex, strict=True)] if t["stats"] else [0.0] * len(cs)
               for t, cs, ex in zip(trajs, contributions, executed, strict=True)]
    return _pooled_z_returns(trajs, rewards, gamma, std)


def ref_aem(trajs: list[dict[str, Any]], advantages: list[list[float]], surprisal: list[list[float]],
            beta: float = 0.2, clip: float = 3.0) -> list[list[float]]:
    """AEM [recon], turn by turn: each known response surprisal z-scored over its prompt group's
    known responses (unbiased std, < 1e-6 → 1), weight exp(−β·clip(z)), times the advantage."""
    pools: dict[int, list[float]] = defaultdict(list)
    for t, us in zip(trajs, surprisal, strict=True):
        if t["stats"]:
            pools[t["group"]].extend(u for u in us if not math.isnan(u))
    stats = {}
    for g, xs in pools.items():
        m, sd = _mean_std(xs, 1, 0.0)
        stats[g] = (m, 1.0 if sd < 1e-6 else sd)
    out = []
    for t, adv, us in zip(trajs, advantages, surprisal, strict=True):
        row = []
        for a, u in zip(adv, us, strict=True):
            if not t["stats"] or math.isnan(u):
                row.append(a)
                continue
            z = max(-clip, min(clip, _z(u, stats[t["group"]], True)))
            row.append(a * math.exp(-beta * z))
        out.append(row)
    return out
def ref_vpr(trajs: list[dict[str, Any]], mode: str = "group_whiten",
            eps: float = 1e-8) -> tuple[list[list[float]], list[list[float]]]:
    """VPR, candidate by candidate as the released ``compute_vpr_turn_level_advantage`` loops:
    per state group, population std; a group of one or with std ≤ eps is skipped (mask 0).
    Returns (advantages, train mask) per trajectory."""
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(trajs):
        if t["stats"] and t["turns"]:
            by_group[t["group"]].append(i)
    adv = {i: 0.0 for i in range(len(trajs))}
    train: set[int] = set()
    for members in by_group.values():
        rs = [trajs[i]["turns"][0]["reward"] for i in members]
        if len(rs) < 2:
            continue
        mean = sum(rs) / len(rs)
        std = math.sqrt(sum((x - mean) ** 2 for x in rs) / len(rs))
        if std <= eps:
            continue
        for i, x in zip(members, rs, strict=True):
            adv[i] = (x - mean) / (std + eps) if mode == "group_whiten" else x - mean
            train.add(i)
    if mode == "mean_then_batch_whiten" and train:
        xs = [adv[i] for i in sorted(train)]
        m = sum(xs) / len(xs)
        s = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
        for i in train:
            adv[i] = (adv[i] - m) / (s + eps) if s > eps else 0.0
    return ([[adv[i]] * len(t["turns"]) for i, t in enumerate(trajs)],
            [[1.0 if i in train else 0.0] * len(t["turns"]) for i, t in enumerate(trajs)])
