"""Credit-assignment speed: ~1M turns through GiGPO + information gain + void filter, then SIOP,
MAPO, MatchTIR, SPA-RL and AEM one by one, and VPR on a batch of state-group candidates.

Times the vectorised pipeline (``agentgym.credit``) and a straightforward per-turn Python version
(``agentgym.credit.reference``) on the same synthetic batch, checks they agree, prints the ratio
(and, for each of the newer methods, seconds per million turns both ways; SPA-RL's progress-estimator
fit is timed apart, on 16 features per turn).

    .venv/bin/python bench/credit_speed.py                    # 16384 trajectories × 60 turns
    .venv/bin/python bench/credit_speed.py --ragged --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from agentgym.credit import (
    TurnBatch,
    aem,
    anchor_groups,
    answer_clusters,
    build_pipeline,
    fit_progress,
    gigpo,
    igpo,
    mapo,
    matchtir,
    matchtir_turn_rewards,
    siop,
    spa,
    void_loss_mask,
    vpr,
)
from agentgym.credit.process import ASSIGNMENTS
from agentgym.credit.reference import (
    records,
    ref_aem,
    ref_gigpo,
    ref_igpo,
    ref_mapo,
    ref_matchtir,
    ref_siop,
    ref_spa,
    ref_void_mask,
    ref_vpr,
)

CONFIG = {"stages": [
    {"gigpo": {"gamma": 0.95, "omega": 1.0, "std": False}},
    {"info_gain": {"ig_type": "log_prob_diff", "norm": "separate", "gamma": 1.0, "outcome": False}},
    {"void_filter": {"void_in_group_stats": True}},
]}


def synthetic_batch(n_traj: int, turns: int, group_size: int, n_states: int, ragged: bool, seed: int) -> TurnBatch:
    """Groups of ``group_size`` rollouts; each turn's anchor drawn from ``n_states`` states of its group
    (so anchors repeat within and across rollouts); sparse final reward; ~5% void trajectories."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 2 * turns, n_traj) if ragged else np.full(n_traj, turns)
    n = int(lengths.sum())
    traj = np.repeat(np.arange(n_traj), lengths)
    ends = np.cumsum(lengths)
    last = np.zeros(n, dtype=bool)
    last[ends - 1] = True
    traj_group = np.arange(n_traj) // group_size
    success = rng.random(n_traj) < 0.4
    reward = np.where(last, success[traj].astype(np.float64), 0.0)
    reward += np.where(rng.random(n) < 0.02, -0.1, 0.0)  # occasional shaped penalty
    state = traj_group[traj] * n_states + rng.integers(0, n_states, n)
    void_traj = rng.random(n_traj) < 0.05
    void = last & void_traj[traj]
    gold = np.cumsum(rng.normal(0.05, 0.3, n)) - 3.0
    choices = np.array(["Paris", "paris.", "Lyon", "Nice", None], dtype=object)  # 4 answers, 3 clusters, or none
    return TurnBatch(
        traj=traj, turn_idx=np.arange(n) - (ends - lengths)[traj], reward=reward, state=state, void=void,
        invalid=np.zeros(n, dtype=bool), traj_group=traj_group, outcome=np.bincount(traj, reward, n_traj),
        infra=np.zeros(n_traj, dtype=bool), gold_logp=gold, gold_logp0=rng.normal(-3.0, 0.3, n_traj),
        ref_logp=-np.abs(rng.normal(1.5, 1.0, n)), ref_logp0=rng.normal(-3.0, 0.3, n_traj),
        answers=choices[rng.integers(0, len(choices), n_traj)], turn_score=rng.random(n),
    )


def timed(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=16384)
    ap.add_argument("--turns", type=int, default=60)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--states", type=int, default=40, help="distinct anchor states per prompt group")
    ap.add_argument("--ragged", action="store_true", help="trajectory lengths uniform in [1, 2·turns)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true", help="skip the per-turn Python version")
    ap.add_argument("--match-trajectories", type=int, default=2000,
                    help="synthetic tool-call trajectories for timing MatchTIR's call matching")
    ap.add_argument("--vpr-candidates", type=int, default=262144,
                    help="state-group candidates (one-turn records, 8 per state) for timing VPR")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()

    t0 = time.perf_counter()
    batch = synthetic_batch(args.trajectories, args.turns, args.group_size, args.states, args.ragged, args.seed)
    build_s = time.perf_counter() - t0
    pipe = build_pipeline(CONFIG)
    best, med, out = timed(lambda: pipe(batch), args.repeats)
    stages = {
        "anchor_groups": timed(lambda: anchor_groups(batch), args.repeats)[0],
        "gigpo": timed(lambda: gigpo(batch, gamma=0.95), args.repeats)[0],
        "info_gain": timed(lambda: igpo(batch, outcome=False), args.repeats)[0],
        "void_filter": timed(lambda: void_loss_mask(batch), args.repeats)[0],
    }
    res = {
        "turns": batch.n_rows, "trajectories": batch.n_traj, "groups": batch.n_groups,
        "anchor_groups": out.diagnostics["n_anchor_groups"],
        "singleton_anchor_share": round(out.diagnostics["singleton_anchor_share"], 4),
        "void_ratio": round(out.diagnostics["void_ratio"], 4),
        "vectorised_best_s": round(best, 4), "vectorised_median_s": round(med, 4),
        "stage_best_s": {k: round(v, 4) for k, v in stages.items()},
        "synthetic_batch_build_s": round(build_s, 3),
        "machine": f"{platform.processor() or platform.machine()}, numpy {np.__version__}",
    }
    print(f"{batch.n_rows:,} turns, {batch.n_traj:,} trajectories, {batch.n_groups:,} groups, "
          f"{res['anchor_groups']:,} anchor groups (singleton share {res['singleton_anchor_share']}), "
          f"void ratio {res['void_ratio']}")
    print(f"vectorised GiGPO + info gain + void filter: best {best:.3f} s, median {med:.3f} s "
          f"over {args.repeats} runs  ({'PASS' if best <= 1.0 else 'FAIL'} ≤ 1 s)")
    print("  stages (best): " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))
    if not args.no_reference:
        recs = records(batch)
        t0 = time.perf_counter()
        ref = np.asarray([x for row in ref_gigpo(recs, gamma=0.95) for x in row])
        ref += np.asarray([x for row in ref_igpo(recs, outcome=False) for x in row])
        ref_mask = np.asarray([x for row in ref_void_mask(recs) for x in row])
        ref_s = time.perf_counter() - t0
        err = float(np.abs(ref - out.advantages).max())
        assert err < 1e-6 and np.array_equal(ref_mask, out.loss_mask), f"mismatch: max |Δ| = {err}"
        res.update(reference_s=round(ref_s, 3), speedup=round(ref_s / best, 1), max_abs_diff=err)
        print(f"per-turn Python reference: {ref_s:.2f} s  → speed-up ×{ref_s / best:.0f} "
              f"(max |Δadvantage| = {err:.1e}, loss masks equal)")
    res["methods"] = method_rows(batch, args.repeats, not args.no_reference)
    res["matchtir_matching"] = matching_rows(args.match_trajectories, args.seed)
    res["vpr"] = vpr_row(args.vpr_candidates, args.repeats, not args.no_reference, args.seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


def method_rows(batch: TurnBatch, repeats: int, reference: bool) -> dict[str, dict[str, float]]:
    """SIOP, MAPO, MatchTIR, SPA-RL and AEM's advantage, each timed alone (best of ``repeats``)
    against its per-turn reference; SIOP's answer clustering (a Python pass over trajectories) and
    SPA's progress-estimator fit (16 random features per turn) are timed apart. SPA gets random
    contributions and executed flags (a 20% non-executed rate), AEM random response surprisals (5%
    unknown) and the batch's MAPO advantage as its base."""
    per_m = 1e6 / batch.n_rows
    cluster_s, _, (q, _, _) = timed(lambda: answer_clusters(batch.answers, batch.traj_group), repeats)
    rng = np.random.default_rng(1)
    contrib = rng.normal(0.0, 0.3, batch.n_rows)
    executed = rng.random(batch.n_rows) > 0.2
    surprisal = np.where(rng.random(batch.n_rows) < 0.05, np.nan, rng.gamma(2.0, 0.5, batch.n_rows))
    base = mapo(batch)
    feats = rng.normal(size=(batch.n_rows, 16))
    fit_s = timed(lambda: fit_progress(batch, feats), repeats)[0]
    rows = {
        "siop": (lambda: siop(batch, q), lambda recs: ref_siop(recs)),
        "mapo": (lambda: mapo(batch), lambda recs: ref_mapo(recs)),
        "matchtir": (lambda: matchtir(batch, rewards=batch.turn_score), lambda recs: ref_matchtir(recs)),
        "spa": (lambda: spa(batch, contrib, executed=executed),
                lambda recs: ref_spa(recs, batch.per_trajectory(contrib), batch.per_trajectory(executed))),
        "aem": (lambda: aem(batch, base, surprisal),
                lambda recs: ref_aem(recs, batch.per_trajectory(base), batch.per_trajectory(surprisal))),
    }
    out: dict[str, dict[str, float]] = {}
    recs = records(batch) if reference else None
    for name, (fast, slow) in rows.items():
        best, _, got = timed(fast, repeats)
        row = {"vectorised_s": round(best, 4), "vectorised_s_per_million_turns": round(best * per_m, 4)}
        if name == "siop":
            row["answer_clusters_s"] = round(cluster_s, 4)
        if name == "spa":
            row["progress_fit_16_features_s"] = round(fit_s, 4)
        line = f"{name:9s} vectorised {best:.3f} s ({best * per_m:.3f} s per million turns)"
        if recs is not None:
            t0 = time.perf_counter()
            ref = np.asarray([x for r in slow(recs) for x in r])
            ref_s = time.perf_counter() - t0
            err = float(np.abs(ref - got).max())
            assert err < 1e-6, f"{name}: max |Δ| = {err}"
            row.update(reference_s=round(ref_s, 3), reference_s_per_million_turns=round(ref_s * per_m, 3),
                       speedup=round(ref_s / best, 1), max_abs_diff=err)
            line += f", per-turn Python {ref_s:.2f} s → ×{ref_s / best:.0f} (max |Δ| = {err:.1e})"
        if name == "siop":
            line += f"; answer clustering {cluster_s:.3f} s"
        if name == "spa":
            line += f"; progress-estimator fit (16 features per turn) {fit_s:.3f} s"
        print(line)
        out[name] = row
    return out


def matching_rows(n_traj: int, seed: int) -> dict[str, float]:
    """MatchTIR's call matching (per trajectory, Python): ToolWorld-like traces of 4–8 gold calls over
    6 tools, the agent's calls a noisy copy (wrong value, wrong tool, dropped, extra); s per million turns."""
    rng = np.random.default_rng(seed)
    tools = [f"tool_{k}" for k in range(6)]
    trajs, n_turns = [], 0
    for _ in range(n_traj):
        gold = [{"name": str(rng.choice(tools)), "arguments": {"id": int(rng.integers(100)), "x": "a"}}
                for _ in range(int(rng.integers(4, 9)))]
        turns = []
        for g in gold:
            u = rng.random()
            if u < 0.1:
                continue  # dropped
            call = {"name": str(rng.choice(tools)) if u < 0.25 else g["name"],
                    "arguments": {**g["arguments"], "id": int(rng.integers(100))} if u < 0.4 else g["arguments"]}
            turns.append([call, call] if u > 0.9 else [call])  # an extra (repeated) call
        turns.append([])  # the answer turn
        trajs.append((turns, gold))
        n_turns += len(turns)
    out: dict[str, float] = {"turns": n_turns}
    for assignment in ASSIGNMENTS:
        t0 = time.perf_counter()
        for turns, gold in trajs:
            matchtir_turn_rewards(turns, gold, assignment=assignment)
        sec = time.perf_counter() - t0
        out[f"{assignment}_s_per_million_turns"] = round(sec * 1e6 / n_turns, 2)
    print(f"MatchTIR call matching, {n_traj:,} trajectories / {n_turns:,} turns, s per million turns: "
          + ", ".join(f"{a} {out[f'{a}_s_per_million_turns']:.1f}" for a in ASSIGNMENTS))
    return out


def vpr_row(n: int, repeats: int, reference: bool, seed: int, k: int = 8) -> dict[str, float]:
    """VPR over ``n`` state-group candidates (K = 8 per state; Sokoban's reward tiers, so a share of
    groups tie and are masked), both modes, against the per-candidate reference; s per million turns."""
    rng = np.random.default_rng(seed)
    reward = rng.choice([-2.0, 0.0, 2.0, 3.0], n, p=[0.3, 0.4, 0.25, 0.05])
    batch = TurnBatch.from_arrays(group_id=np.arange(n) // k, traj_id=np.arange(n), turn_idx=np.zeros(n, dtype=int),
                                  reward=reward)
    per_m = 1e6 / n
    out: dict[str, float] = {"turns": n, "state_groups": batch.n_groups}
    recs = records(batch) if reference else None
    for mode in ("group_whiten", "mean_then_batch_whiten"):
        best, _, (adv, train) = timed(lambda mode=mode: vpr(batch, mode=mode), repeats)
        out[f"{mode}_s_per_million_turns"] = round(best * per_m, 4)
        line = f"vpr {mode}: vectorised {best * per_m:.3f} s per million turns"
        if recs is not None:
            t0 = time.perf_counter()
            ref_adv, ref_train = ref_vpr(recs, mode=mode)
            ref_s = time.perf_counter() - t0
            err = float(np.abs(np.asarray([x for r in ref_adv for x in r]) - adv).max())
            assert err < 1e-6 and np.array_equal(np.asarray([x for r in ref_train for x in r]), train), mode
            out[f"{mode}_reference_s_per_million_turns"] = round(ref_s * per_m, 3)
            out[f"{mode}_speedup"] = round(ref_s / best, 1)
            line += f", per-candidate Python {ref_s * per_m:.2f} s → ×{ref_s / best:.0f} (max |Δ| = {err:.1e})"
        out["masked_group_share"] = round(1 - len(np.unique(batch.group[train])) / batch.n_groups, 4)
        print(line)
    return out


if __name__ == "__main__":
    main()
