import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agentgym.store import CorruptStoreError, TrajectoryStore, read_jsonl
from agentgym.trajectory import Trajectory, Turn


def make_traj(i: int) -> Trajectory:
    return Trajectory(
        traj_id=f"r-{i}", group_id=f"g-{i // 2}", task_id="t", env_id="tests/Echo-v0", seed=i,
        policy="scripted", turns=[Turn(0, "obs ü", "act", 1.0, "s0", obs_span=(0, 3), action_span=(3, 5))],
        outcome=1.0, terminated=True,
    )


def test_round_trip_keeps_every_field(tmp_path):
    with TrajectoryStore(tmp_path) as store:
        store.extend(make_traj(i) for i in range(3))
    back = TrajectoryStore(tmp_path).read()
    assert back == [make_traj(i) for i in range(3)]
    assert back[0].turns[0].obs_span == (0, 3)


def test_torn_last_line_is_dropped_on_read_and_cut_before_append(tmp_path, caplog):
    store = TrajectoryStore(tmp_path)
    store.extend(make_traj(i) for i in range(2))
    store.close()
    with open(store.path, "ab") as f:
        f.write(b'{"traj_id": "r-2", "gro')  # a writer killed mid-line
    assert [d["traj_id"] for d in read_jsonl(store.path)] == ["r-0", "r-1"]
    assert "torn" in caplog.text
    store = TrajectoryStore(tmp_path)
    store.append(make_traj(2))
    store.close()
    assert [t.traj_id for t in store.read()] == ["r-0", "r-1", "r-2"]


def test_undecodable_last_line_with_newline_is_dropped(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    path.write_text(json.dumps(make_traj(0).to_dict()) + "\n{broken\n")
    assert [d["traj_id"] for d in read_jsonl(path)] == ["r-0"]


def test_corruption_before_the_last_line_raises(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    good = json.dumps(make_traj(0).to_dict())
    path.write_text(f"{good}\n{{broken\n{good}\n")
    with pytest.raises(CorruptStoreError, match=":2:"):
        list(read_jsonl(path))


def test_newer_schema_is_refused(tmp_path):
    data = make_traj(0).to_dict() | {"schema_version": 999}
    with pytest.raises(ValueError, match="newer"):
        Trajectory.from_dict(data)


WRITER = """
import sys
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Trajectory, Turn
store = TrajectoryStore(sys.argv[1])
big = "x" * 200_000  # long lines make a torn write likely when killed
i = 0
while True:
    store.append(Trajectory(f"r-{i}", "g", "t", "e", i, "p", [Turn(0, big, "a")]))
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


def test_kill_9_loses_nothing_but_the_line_in_flight(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ids = [d["traj_id"] for d in read_jsonl(tmp_path / "trajectories.jsonl")]
    assert len(ids) >= 20
    assert ids == [f"r-{i}" for i in range(len(ids))]  # a prefix: nothing lost, no gaps
    store = TrajectoryStore(tmp_path)  # appending after the kill yields a clean file
    store.append(make_traj(99))
    store.close()
    assert [t.traj_id for t in store.read()][-1] == "r-99"


def test_manifest_is_written_atomically(tmp_path):
    store = TrajectoryStore(tmp_path / "run")
    assert store.read_manifest() is None
    store.write_manifest({"run_id": "abc", "tasks": 3})
    assert store.read_manifest() == {"run_id": "abc", "tasks": 3}
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_hf_datasets_round_trip():
    datasets = pytest.importorskip("datasets")
    from agentgym.hf import from_hf_dataset, to_hf_dataset

    trajs = [make_traj(i) for i in range(3)]
    trajs[1].turns[0].tool_calls = [{"name": "search", "arguments": {"q": "x", "k": 3}}]
    trajs[2].info = {"t_star": 2, "nested": {"a": [1, 2]}}
    dataset = to_hf_dataset(trajs)
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 3
    assert from_hf_dataset(dataset) == trajs
