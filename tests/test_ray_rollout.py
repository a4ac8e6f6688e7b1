"""Rollouts on Ray (``agentgym.ray_rollout``, ``agentgym rollout --ray-workers``) on a local Ray cluster."""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from pathlib import Path

from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.policies import make_policy
from agentgym.rollout import plan, rollout
from agentgym.store import TrajectoryStore

BIF = "agentgym/Bifurcation-v0"


def _episodes(trajs) -> dict[str, tuple]:
    return {t.traj_id: (t.group_id, t.seed, t.outcome, [turn.action for turn in t.turns]) for t in trajs}


def test_ray_workers_produce_the_local_engines_trajectories(ray_cluster: None, tmp_path: Path) -> None:
    from agentgym.ray_rollout import rollout_on_ray

    spec = agentgym.spec(BIF)
    items = plan("r1", tasks=6, group_size=4)
    seen = []
    with TrajectoryStore(tmp_path / "run") as store:
        remote = asyncio.run(rollout_on_ray(spec, "scripted", items, workers=2, concurrency=4, store=store,
                                            on_done=seen.append))
    local = asyncio.run(rollout(spec, make_policy("scripted"), items))
    assert _episodes(remote) == _episodes(local) and len(seen) == 24
    assert _episodes(TrajectoryStore(tmp_path / "run").read()) == _episodes(local)  # the driver's one store
    workers = {t.info["rollout_worker"] for t in remote}
    assert len(workers) == 2 and all(int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)
    by_group = defaultdict(set)
    for t in remote:
        by_group[t.group_id].add(t.info["rollout_worker"])
    assert all(len(w) == 1 for w in by_group.values())  # a group stays on one worker


def test_cli_resumes_a_killed_run_on_ray_exactly(ray_cluster: None, tmp_path: Path) -> None:
    """A run cut short (five episodes written, a torn sixth line) is finished by Ray workers: every
    planned episode exactly once."""
    run = tmp_path / "run"
    args = ["rollout", "--env", BIF, "--policy", "random", "--tasks", "5", "--group-size", "3", "--out", str(run),
            "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    path = run / "trajectories.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # as if killed mid-write
    result = CliRunner().invoke(app, ["rollout", "--out", str(run), "--resume", "--ray-workers", "2", "-q"])
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["traj_id"] for line in path.read_text().splitlines()]
    manifest = json.loads((run / "run.json").read_text())
    assert sorted(ids) == sorted(i.traj_id for i in plan(manifest["run_id"], tasks=5, group_size=3))
    resumed = [json.loads(line) for line in path.read_text().splitlines()[5:]]
    assert len(resumed) == 10 and all("rollout_worker" in t["info"] for t in resumed)


def test_env_pool_steps_envs_in_actors_for_an_engine_here(ray_cluster: None) -> None:
    """The trainer's split: envs in Ray actors, the engine and the policy in this process (the
    scripted policy's expert_action() is a call into the actor)."""
    from agentgym.ray_rollout import RayEnvPool

    spec = agentgym.spec(BIF)
    items = plan("r2", tasks=4, group_size=3)
    pool = RayEnvPool(spec, workers=2)
    try:
        remote = asyncio.run(rollout(spec, make_policy("scripted", epsilon=0.5, seed=1), items, concurrency=1,
                                     make_env=pool.make, env_kwargs={"horizon": 3}))
        envs = [asyncio.run(pool.make(max_turns=2)) for _ in range(2)]
    finally:
        pool.close()
    local = asyncio.run(rollout(spec, make_policy("scripted", epsilon=0.5, seed=1), items, concurrency=1,
                                env_kwargs={"horizon": 3}))
    assert _episodes(remote) == _episodes(local) and not any(t.failure for t in remote)
    # Round-robin: the rollout's one env (concurrency 1) went to actor 0, the next two to actors 1 and 0.
    assert {t.info["rollout_worker"] for t in remote} == {envs[1].host}
    assert envs[0].host != envs[1].host and os.getpid() not in {int(e.host.rsplit(":", 1)[1]) for e in envs}
    assert envs[0].max_turns == 2 and envs[0].system_prompt == agentgym.make(BIF).system_prompt
    assert callable(envs[0].expert_action) and not hasattr(envs[0], "no_such_method")


def test_env_pool_drops_a_dead_actor(ray_cluster: None) -> None:
    import ray

    from agentgym.ray_rollout import RayEnvPool

    spec = agentgym.spec(BIF)
    pool = RayEnvPool(spec, workers=2)
    try:
        live = [asyncio.run(pool.make()).host for _ in pool.hosts][1]  # slots 0 and 1: actors 0 and 1
        ray.kill(pool.hosts[0])  # a real actor death (as when its node goes away)
        trajs = asyncio.run(rollout(spec, make_policy("scripted"), plan("r3", tasks=3, group_size=2), concurrency=2,
                                    make_env=pool.make))
        assert not any(t.failure for t in trajs) and {t.info["rollout_worker"] for t in trajs} == {live}
        assert len(pool.hosts) == 1
        ray.kill(pool.hosts[0])
        trajs = asyncio.run(rollout(spec, make_policy("scripted"), plan("r4", tasks=1, group_size=2),
                                    make_env=pool.make))
        assert [t.failure for t in trajs] == ["infra", "infra"] and "actor" in trajs[0].failure_detail
    finally:
        pool.close()
