"""Issue 24's bias check: is any estimator biased when the policy controls episode length?

Null env: at each turn the policy may stop (action "stop") or go on, up to 4 turns; success is a
fair coin independent of both. An estimator without length bias gives the first action the same
expected advantage whether it stopped or went on. Checked for GRPO, IGPO (separate pooled
normalisation, γ 1) and A²TGPO (per-turn-index normalisation) with information-gain scorers that
carry no information (constant, noisy, drifting with the turn index), and for GiGPO's anchors.
Finding: no bias at this precision (±0.04 in advantage units) except GiGPO's discount, which
prefers stopping by design (γ < 1 shrinks the step return of later rewards); at γ = 1 it is gone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentgym.credit import assign_credit
from agentgym.trajectory import Trajectory, Turn

G, GROUPS, MAX_TURNS = 8, 1500, 4


class _Uninformative:
    """ℓ_k = log 0.5 + drift·k + sd·noise: independent of the outcome and of stopping."""

    def __init__(self, drift: float, sd: float):
        self.drift, self.sd, self.rng = drift, sd, np.random.default_rng(1)

    def score(self, contexts, golds):  # pragma: no cover - trajectory-level scorer
        raise NotImplementedError

    def trajectory_gold_logprobs(self, trajectories):
        return [[math.log(0.5) + self.drift * k + self.sd * float(self.rng.standard_normal())
                 for k in range(len(t["turns"]))] for t in trajectories]


@pytest.fixture(scope="module")
def null_batch() -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(0)
    trajs = []
    for n in range(GROUPS):
        for g in range(G):
            tr = Trajectory(traj_id=f"{n}-{g}", group_id=f"g{n}", task_id="t", env_id="null", seed=n, policy="p")
            for t in range(MAX_TURNS):
                stop = t == MAX_TURNS - 1 or rng.random() < 0.5
                tr.turns.append(Turn(index=t, observation=f"turn {t}", action="stop" if stop else "go",
                                     state_key=f"t={t}"))
                if stop:
                    break
            tr.turns[-1].reward = tr.outcome = float(rng.random() < 0.5)
            tr.terminated = True
            trajs.append(tr.to_dict())
    return trajs, np.array([t["turns"][0]["action"] == "stop" for t in trajs])


def _stop_minus_go(trajs: list[dict], stopped: np.ndarray, config: dict, scorer=None) -> tuple[float, float]:
    """E[A_0 | stop] − E[A_0 | go] and its 95% half-width."""
    a0 = np.array([row[0] for row in assign_credit(trajs, config, scorer=scorer).per_trajectory("advantages")])
    se = math.sqrt(a0[stopped].var() / stopped.sum() + a0[~stopped].var() / (~stopped).sum())
    return float(a0[stopped].mean() - a0[~stopped].mean()), 1.96 * se


@pytest.mark.parametrize(("config", "scorer"), [
    ({"method": "grpo"}, None),
    ({"method": "gigpo", "gamma": 1.0}, None),
    ({"method": "igpo"}, _Uninformative(0.0, 0.0)),
    ({"method": "igpo"}, _Uninformative(0.0, 0.3)),
    ({"method": "igpo"}, _Uninformative(0.2, 0.05)),
    ({"method": "a2tgpo"}, _Uninformative(0.0, 0.3)),
    ({"method": "a2tgpo"}, _Uninformative(0.2, 0.05)),
], ids=["grpo", "gigpo-g1", "igpo-const", "igpo-noisy", "igpo-drift", "a2tgpo-noisy", "a2tgpo-drift"])
def test_no_length_bias_when_stopping_does_not_matter(null_batch, config, scorer) -> None:
    trajs, stopped = null_batch
    diff, half = _stop_minus_go(trajs, stopped, config, scorer)
    assert abs(diff) < max(half, 0.05), (config, diff, half)


def test_gigpo_discount_prefers_stopping_by_design(null_batch) -> None:
    trajs, stopped = null_batch
    diff, half = _stop_minus_go(trajs, stopped, {"method": "gigpo", "gamma": 0.8})
    assert diff > half > 0  # a reward reached sooner is worth more under γ < 1
