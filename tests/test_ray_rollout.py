"""Rollouts on Ray (``agentgym.ray_rollout``, ``agentgym rollout --ray-workers``) on a local Ray cluster."""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.policies import make_policy
from agentgym.rollout import plan, rollout
from agentgym.store import TrajectoryStore

BIF = "agentgym/Bifurcation-v0"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


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
