"""Bifurcation's papers regime (issue 24): several decisive stages that must all be good, and
independent noisy outcomes per group member."""

from __future__ import annotations

import asyncio

import pytest
from test_bifurcation import play

from agentgym.envs.bifurcation import BifurcationEnv
from agentgym.policies.simple import ScriptedPolicy
from agentgym.registry import spec
from agentgym.rollout import plan, rollout


def chooser(bad_at: set[int]):
    """Good at every decisive stage except those in ``bad_at``; "1" on the others."""
    def pick(env: BifurcationEnv) -> str:
        good = env.task.good_labels.get(env.stage)
        if good is None:
            return "1"
        return next(x for x in env.labels if x != good) if env.stage in bad_at else good
    return pick


def test_success_needs_every_decisive_stage_good() -> None:
    env = BifurcationEnv(horizon=8, t_stars=[0, 4], p_good=1.0, p_bad=0.0)
    for seed in range(50):
        reward, infos = play(env, seed, chooser(set()))
        assert reward == 1.0 and env.task.kinds[0] == env.task.kinds[4] == "decisive"
        assert set(env.task.good_labels) == {0, 4} and infos[0]["good_labels"].keys() == {"0", "4"}
        for bad_at in ({0}, {4}, {0, 4}):
            reward, infos = play(env, seed, chooser(bad_at))
            assert reward == 0.0
            assert infos[-1]["state_key"] == "end|decisive=bad"
    # the anchor status is "good" between the stages only while every decisive choice was good
    _, infos = play(env, 1, chooser({0}))
    assert all("decisive=bad" in i["state_key"] for i in infos[1:])
    _, infos = play(env, 1, chooser({4}))
    assert [i["state_key"].rsplit("=", 1)[1] for i in infos] == ["pending", *["good"] * 4, *["bad"] * 4]


def test_good_labels_differ_across_stages_for_some_tasks_and_one_t_star_tasks_are_unchanged() -> None:
    env = BifurcationEnv(horizon=8, t_stars=[3, 4], p_good=1.0, p_bad=0.0)
    pairs = set()
    for seed in range(60):
        env.reset(seed=seed)
        pairs.add(tuple(env.task.good_labels.values()))
    assert any(a != b for a, b in pairs) and any(a == b for a, b in pairs)
    one, listed = BifurcationEnv(horizon=8, t_star=2), BifurcationEnv(horizon=8, t_stars=[2])
    for seed in range(20):
        assert one.reset(seed=seed)[1]["task_id"] == listed.reset(seed=seed)[1]["task_id"]
        assert one.task == listed.task and one.task.good_labels == {2: one.task.good_label}


@pytest.mark.parametrize("kwargs", [{"t_stars": []}, {"t_stars": [1, 1]}, {"t_stars": [0, 8]},
                                    {"t_stars": [1, 2], "t_star": 2}, {"t_stars": [0, 1], "n_distractors": 7}])
def test_bad_t_stars_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="t_star|n_distractors"):
        BifurcationEnv(horizon=8, **kwargs)


def test_independent_outcomes_per_reset_and_reproducible() -> None:
    def draws() -> list[float]:
        env = BifurcationEnv(horizon=3, t_star=0, p_good=0.5, p_bad=0.5, independent_outcomes=True)
        return [play(env, 7, chooser(set()))[0] for _ in range(400)]
    first = draws()
    assert 0.4 < sum(first) / len(first) < 0.6 and first == draws()
    shared = BifurcationEnv(horizon=3, t_star=0, p_good=0.5, p_bad=0.5)  # common random numbers
    assert len({play(shared, 7, chooser(set()))[0] for _ in range(50)}) == 1


def test_independent_outcomes_differ_across_a_group_in_the_rollout_engine() -> None:
    """Same seed, same (expert) choices in every member: outcomes still vary, and a rerun repeats them."""
    kwargs = {"horizon": 4, "t_stars": [0, 2], "p_good": 0.9, "p_bad": 0.1, "independent_outcomes": True}

    def run(run_id: str) -> list[float]:
        trajs = asyncio.run(rollout(spec("agentgym/Bifurcation-v0"), ScriptedPolicy(), plan(run_id, seeds=range(20),
                                    group_size=10), env_kwargs=kwargs, threads=False))
        return [t.outcome for t in sorted(trajs, key=lambda t: t.traj_id)]
    outcomes = run("a")
    assert 0.8 < sum(outcomes) / len(outcomes) < 0.97  # p_good 0.9 per episode, not per group
    assert outcomes == run("a") and outcomes != run("b")
