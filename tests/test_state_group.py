"""VPR's state-group rollout (agentgym.state_group): K candidates per visited state, each scored by
the env's oracle without advancing, the first best one committed; records the credit stage and
``agentgym advantages`` read back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.credit import build_pipeline
from agentgym.envs.sokoban import INVALID_REWARD, ORACLE_REWARD, Board, SokobanEnv
from agentgym.errors import ConfigError
from agentgym.policies.base import Completion, Policy, current_episode
from agentgym.rollout import plan, rollout
from agentgym.state_group import episode_metrics, select_candidate
from agentgym.store import TrajectoryStore, read_jsonl

SOKOBAN = agentgym.spec("agentgym/Sokoban-v0")


class Menu(Policy):
    """Candidate j of a state replies ``replies[j % len(replies)]`` (its member is t·K + j)."""

    name = "menu"

    def __init__(self, replies, k):
        self.replies, self.k = replies, k

    async def act(self, messages, env):
        assert [m["role"] for m in messages] in (["system", "user"], ["user"])  # the state only
        return Completion(self.replies[current_episode().member % self.k % len(self.replies)])


def run(policy, k, tasks=2, store=None, **env_kwargs):
    items = plan("vpr", tasks=tasks, group_size=1, seed=5)
    return asyncio.run(rollout(SOKOBAN, policy, items, concurrency=2, state_groups=k, store=store,
                               env_kwargs=env_kwargs))


def test_all_four_moves_as_candidates_solve_optimally():
    """With every move among the candidates, committing the best one is a BFS-optimal play."""
    recs = run(Menu(["up", "down", "left", "right"], 4), 4, tasks=3)
    episodes: dict[str, list] = {}
    for r in recs:
        episodes.setdefault(r.info["vpr"]["episode"], []).append(r)
    assert len(episodes) == 3
    for eps in episodes.values():
        optimal = eps[0].info["optimal_moves"]
        assert len(eps) == 4 * optimal  # K records per state, one state per optimal move
        for t in range(optimal):
            group = eps[4 * t: 4 * t + 4]
            assert {r.group_id for r in group} == {group[0].group_id} and group[0].group_id.endswith(f"-s{t:03d}")
            rewards = [r.turns[0].reward for r in group]
            committed = [r.info["vpr"]["committed"] for r in group]
            assert committed.index(True) == select_candidate(rewards) == rewards.index(max(rewards))
            assert max(rewards) >= ORACLE_REWARD and all(r.turns[0].observation == group[0].turns[0].observation
                                                         for r in group)
        assert all(r.info["vpr"]["episode_success"] and r.info["vpr"]["episode_length"] == optimal for r in eps)
        last = eps[-4:]
        solver = next(r for r in last if r.info["vpr"]["committed"])
        assert solver.success and solver.turns[0].reward == ORACLE_REWARD + 1.0  # the success bonus
    m = episode_metrics(recs)
    assert m["vpr/episodes"] == 3 and m["vpr/episode_success_rate"] == 1.0
    out = build_pipeline({"method": "vpr"})(recs)
    assert np.isfinite(out.advantages).all() and out.loss_mask.any()


def test_candidates_record_the_oracle_and_invalid_replies_carry_their_error():
    recs = run(Menu(["<action>up</action>", "nonsense", "right"], 3), 3, tasks=1, max_turns=3)
    by_text = {}
    for r in recs:
        by_text.setdefault(r.turns[0].action, []).append(r)
    for r in by_text["nonsense"]:
        assert r.turns[0].reward == INVALID_REWARD and r.turns[0].parse_error and not r.info["vpr"]["valid"]
        assert not r.info["vpr"]["committed"] or all(
            o.turns[0].reward == INVALID_REWARD for o in recs if o.group_id == r.group_id)
    env = SokobanEnv(max_turns=3)
    for r in recs:  # the recorded reward is the oracle's score of that reply in that state
        env.reset(seed=r.seed)
        env.board = Board.parse(r.turns[0].state_key)
        reward, _, solves, _ = env.verify_action(r.turns[0].action)
        assert r.turns[0].reward == reward + (1.0 if solves else 0.0) == r.outcome


def test_all_invalid_candidates_commit_the_first_and_are_masked():
    recs = run(Menu(["hello", "<action>jump</action>"], 2), 2, tasks=1, max_turns=4)
    assert len(recs) == 8 and {r.turns[0].reward for r in recs} == {INVALID_REWARD}
    assert [r.info["vpr"]["committed"] for r in recs] == [True, False] * 4
    assert not recs[0].info["vpr"]["episode_success"]
    out = build_pipeline({"method": "vpr"})(recs)
    assert not out.advantages.any() and not out.loss_mask.any()


def test_k1_records_one_candidate_per_state():
    recs = run(Menu(["up", "down", "left", "right"], 1), 1, tasks=1, max_turns=3)
    assert len(recs) == 3 and len({r.group_id for r in recs}) == 3
    assert all(r.info["vpr"]["committed"] for r in recs)
    out = build_pipeline({"method": "vpr"})(recs)
    assert not out.loss_mask.any()


def test_env_without_an_oracle_is_refused():
    with pytest.raises(ConfigError, match="verify_action"):
        asyncio.run(rollout(agentgym.spec("agentgym/Bifurcation-v0"), Menu(["a"], 1),
                            plan("x", tasks=1, group_size=1), state_groups=2))


class _Oracle(SokobanEnv):
    answer: object = None

    def verify_action(self, action):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def _make_oracle(**kwargs):
    return _Oracle(**kwargs)


@pytest.mark.parametrize("answer", [RuntimeError("oracle crashed"), 2.0, ("x", True, False, None)])
def test_a_broken_oracle_is_an_env_error_never_a_score(answer):
    _Oracle.answer = answer
    recs = asyncio.run(rollout(SOKOBAN, Menu(["up"], 1), plan("x", tasks=1, group_size=1), state_groups=2,
                               make_env=_make_oracle))
    assert len(recs) == 1 and recs[0].failure == "error" and "verify_action" in recs[0].failure_detail


def test_nan_oracle_reward_is_never_committed_over_a_number_and_stops_credit():
    assert select_candidate([float("nan"), -2.0, 0.0, 0.0]) == 2
    assert select_candidate([float("nan")] * 3) == 0
    _Oracle.answer = (float("nan"), True, False, None)
    recs = asyncio.run(rollout(SOKOBAN, Menu(["up", "down"], 2), plan("x", tasks=1, group_size=1), state_groups=2,
                               max_turns=2, make_env=_make_oracle))
    assert len(recs) == 4 and all(np.isnan(r.turns[0].reward) for r in recs)
    with pytest.raises(ValueError, match="non-finite"):
        build_pipeline({"method": "vpr"})(recs)
    out = build_pipeline({"method": "vpr", "on_nonfinite": "mask_group"})(recs)
    assert not out.loss_mask.any() and not out.advantages.any()


def test_saved_records_recompute_with_agentgym_advantages(tmp_path):
    store = TrajectoryStore(tmp_path)
    recs = run(Menu(["up", "down", "left", "right", "hm"], 5), 5, tasks=2, store=store, max_turns=5)
    store.close()
    (tmp_path / "vpr.yaml").write_text("method: vpr\n")
    result = CliRunner().invoke(app, ["advantages", str(tmp_path), "--config", str(tmp_path / "vpr.yaml")])
    assert result.exit_code == 0, result.output
    rows = {r["traj_id"]: r for r in read_jsonl(tmp_path / "advantages.jsonl")}
    direct = build_pipeline({"method": "vpr"})(recs)
    for rec, adv, mask in zip(recs, direct.per_trajectory(), direct.per_trajectory("loss_mask"), strict=True):
        assert rows[rec.traj_id]["advantages"] == pytest.approx(adv) and rows[rec.traj_id]["loss_mask"] == mask
    assert all("vpr" in r["info"] for r in read_jsonl(tmp_path / "trajectories.jsonl"))


def test_cli_state_group_rollout_then_advantages(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["rollout", "--env", "agentgym/Sokoban-v0", "--policy", "scripted",
                                      "--policy-kwarg", "epsilon=0.5", "--tasks", "2", "--max-turns", "4",
                                      "--state-groups", "4", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recs = list(read_jsonl(out / "trajectories.jsonl"))
    assert recs and all(len(r["turns"]) == 1 and r["info"]["vpr"]["candidate"] < 4 for r in recs)
    assert len({r["info"]["vpr"]["episode"] for r in recs}) == 2
    (tmp_path / "vpr.yaml").write_text("method: vpr\n")
    result = CliRunner().invoke(app, ["advantages", str(out), "--config", str(tmp_path / "vpr.yaml")])
    assert result.exit_code == 0, result.output
    rows = list(read_jsonl(out / "advantages.jsonl"))
    assert len(rows) == len(recs) and any(r["advantages"][0] for r in rows)  # ε-random candidates differ
    again = CliRunner().invoke(app, ["rollout", "--out", str(out), "--resume"])
    assert again.exit_code == 2 and "cannot be resumed" in again.output
    bad = CliRunner().invoke(app, ["rollout", "--env", "agentgym/Bifurcation-v0", "--policy", "random",
                                   "--state-groups", "2", "--out", str(tmp_path / "b"), "-q"])
    assert bad.exit_code == 2 and "verify_action" in bad.output
