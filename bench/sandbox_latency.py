"""Per-call latency of an isolated Python call, three ways, side by side in one run.

(a) the resident executor (a fresh forked process per call), over its unix socket and over the
attach stream through dockerd, (b) ``docker exec`` per call,
(c) ``docker run --rm`` per call; each at concurrency 1, 8 and 32 (one container per concurrent
caller for (a) and (b)); plus warm-pool acquire latency. The executor is also timed at c=1 with
calls spaced 20 ms apart, as in a rollout (the model's turn comes between two calls: the executor
forks the next call's process in that gap), and its CPU is split by process (host client,
executor, call processes, dockerd + containerd) from /proc's clock ticks and totalled exactly
from each container's cgroup, which is where 2 cores run out.
``--baseline-executor FILE`` adds the same rows for another executor version (same host code,
e.g. ``git show main~3:sandboxes/executor.py > /tmp/old.py``), interleaved with the current one.
Needs a Docker engine on this host and the python sandbox image (``agentgym sandbox build python``).

    .venv/bin/python bench/sandbox_latency.py [--quick] [--executor-only] [--baseline-executor FILE] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agentgym.sandboxes import SandboxPool, SandboxSpec, docker_sandbox
from agentgym.sandboxes.docker_sandbox import DockerSandbox
from agentgym.sandboxes.engine import docker_client
from agentgym.sandboxes.reaper import prune

CODE = "x = sum(range(100))"
LABELS = {"agentgym.bench": "1"}
SPACED_S = 0.02
TICK = os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


def report(rows: list[tuple], title: str) -> None:
    print(f"\n{title} (executor: unix socket bind-mounted; executor/attach: through dockerd)")
    print(f"{'mode':<30}{'conc':>5}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}")
    for mode, conc, samples, wall in rows:
        print(f"{mode:<30}{conc:>5}{len(samples):>7}{pct(samples, .5):>9.2f}{pct(samples, .99):>9.2f}"
              f"{len(samples) / wall:>9.1f}")
    print(load())


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (with ``children``: of its waited-for children instead)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def _cgroup_cpu(pid: int) -> Callable[[], float] | None:
    """Exact CPU seconds of ``pid``'s cgroup so far (a container: its executor and every call
    process, exited ones included), read from cgroup v1 cpuacct or v2 cpu.stat; None if neither.
    /proc's per-process times are in clock ticks (10 ms), sampled: fine to split, not to total."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for mount in ("cpuacct", "cpu,cpuacct"):
                usage = Path("/sys/fs/cgroup", mount, path.lstrip("/"), "cpuacct.usage")
                if usage.exists():
                    return lambda usage=usage: int(usage.read_text()) / 1e9
        if not controllers:
            stat = Path("/sys/fs/cgroup", path.lstrip("/"), "cpu.stat")
            if stat.exists():
                return lambda stat=stat: int(stat.read_text().split()[1]) / 1e6  # usage_usec first
    return None


def _pids(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == name:
                found.append(int(entry))
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU seconds per call, by process: the host client (this process), the executors, the
    processes they fork for calls (reaped by the executors), and the engine (dockerd and
    containerd, which also serve other users' containers on a shared engine, and these
    containers' shims)."""

    def __init__(self, boxes: list[DockerSandbox]) -> None:
        self.executors, self.engine = [], _pids("dockerd") + _pids("containerd")
        for box in boxes:
            init = box.client.api.inspect_container(box.container_id)["State"]["Pid"]  # docker-init
            self.executors.append(int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0]))
            self.engine.append(int(Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[1]))  # its shim
        self.cgroups = [_cgroup_cpu(pid) for pid in self.executors]

    def sample(self) -> tuple[float, ...]:
        return (time.process_time(), sum(_cpu_seconds(pid) for pid in self.executors),
                sum(_cpu_seconds(pid, children=True) for pid in self.executors),
                sum(_cpu_seconds(pid) for pid in self.engine),
                sum(read() for read in self.cgroups if read is not None) if all(self.cgroups) else float("nan"))

    @staticmethod
    def per_call(used: list[float], calls: int) -> str:
        parts = [seconds * 1000 / calls for seconds in used]
        return (f"{sum(parts[:4]):.2f} ms CPU per call: host client {parts[0]:.2f}, executor {parts[1]:.2f}, "
                f"call processes {parts[2]:.2f}, engine {parts[3]:.2f}; "
                f"containers exactly (cgroup) {parts[4]:.2f}, + host client = {parts[4] + parts[0]:.2f}")


def threaded(conc: int, per_worker: int, call: Callable[[int], None]) -> tuple[list[float], float]:
    samples: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        for _ in range(per_worker):
            start = time.perf_counter()
            call(index)
            with lock:
                samples.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, time.perf_counter() - began


async def executor_calls(boxes: list[DockerSandbox], per_worker: int, gap: float = 0.0) -> tuple[list[float], float]:
    samples: list[float] = []

    async def worker(box: DockerSandbox) -> None:
        for _ in range(per_worker):
            if gap:
                await asyncio.sleep(gap)
            start = time.perf_counter()
            result = await box.arun_python(CODE)
            samples.append(time.perf_counter() - start)
            assert result.ok, result

    began = time.perf_counter()
    await asyncio.gather(*(worker(box) for box in boxes))
    return samples, time.perf_counter() - began


def sandboxes(spec: SandboxSpec, client: object, count: int, direct: bool = True,
              executor_source: str | None = None) -> list[DockerSandbox]:
    """``count`` sandboxes; with ``executor_source``, each runs that executor instead of ours."""
    original = docker_sandbox._executor_source
    if executor_source is not None:
        docker_sandbox._executor_source = lambda: executor_source
    try:
        return [DockerSandbox(spec, client=client, pool="bench", labels=LABELS, direct=direct) for _ in range(count)]
    finally:
        docker_sandbox._executor_source = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--executor-only", action="store_true", help="only the executor's two links")
    parser.add_argument("--baseline-executor", type=Path, help="another executor.py to time beside ours")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the modes per concurrency")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    client = docker_client()
    spec = SandboxSpec()
    rows, cpu = [], []
    groups = {"executor": sandboxes(spec, client, 32),
              "executor/attach": sandboxes(spec, client, 32, direct=False)}
    if args.baseline_executor:
        groups["baseline"] = sandboxes(spec, client, 32, executor_source=args.baseline_executor.read_text())
    boxes = groups["executor"]
    try:
        for group in groups.values():  # warm-up
            for box in group:
                box.run_python(CODE)
        meters = {mode: CpuMeter(group) for mode, group in groups.items()}
        plan = [(1, 400, 0.0), (1, 150, SPACED_S), (8, 150, 0.0), (32, 60, 0.0)]
        for conc, per, gap in plan:  # modes interleaved, in rounds, so all see the same (drifting) load
            label = f", {SPACED_S * 1000:.0f} ms apart" if gap else ""
            runs: dict[str, list] = {mode: [[], 0.0, [0.0] * 5] for mode in groups}
            for _ in range(args.rounds):
                for mode, group in groups.items():
                    before = meters[mode].sample()
                    samples, wall = asyncio.run(executor_calls(group[:conc], max(2, int(per * scale / args.rounds)), gap))
                    after = meters[mode].sample()
                    run = runs[mode]
                    run[0] += samples
                    run[1] += wall
                    run[2] = [total + b - a for total, a, b in zip(run[2], before, after, strict=True)]
            for mode, (samples, wall, used) in runs.items():
                rows.append((mode + label, conc, samples, wall))
                cpu.append(f"{mode}{label}, c={conc}: " + CpuMeter.per_call(used, len(samples)))
        for conc, per in ((1, 40), (8, 8), (32, 3)) if not args.executor_only else ():
            def exec_call(index: int) -> None:
                exec_id = client.api.exec_create(boxes[index].container_id, ["python3", "-c", CODE], user="1000:1000")
                client.api.exec_start(exec_id)
                assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
            samples, wall = threaded(conc, max(2, int(per * scale)), exec_call)
            rows.append(("docker exec", conc, samples, wall))
    finally:
        for group in groups.values():
            for box in group:
                box.close()
    for conc, per in ((1, 12), (8, 3), (32, 1)) if not args.executor_only else ():
        def run_call(index: int) -> None:
            client.containers.run(spec.image, ["python3", "-c", CODE], remove=True, network_mode="none",
                                  labels={"agentgym.sandbox": "1", **LABELS}, mem_limit="512m")
        samples, wall = threaded(conc, max(1, int(per * scale)), run_call)
        rows.append(("docker run --rm", conc, samples, wall))
    report(rows, f"isolated python call ({CODE!r}), one container per concurrent caller")
    print("\nwhere the CPU goes (/proc; call processes: those the executors fork, one per call; engine: all of it):")
    for line in cpu:
        print("  " + line)
    def key(label: str, conc: int) -> tuple[int, bool]:
        return conc, label.endswith("apart")

    base = {key(m, conc): pct(s, .5) for m, conc, s, _ in rows if m.split(",")[0] == "executor"}
    for mode in ("executor/attach", "baseline", "docker exec", "docker run --rm"):
        ratios = ", ".join(f"c={conc}{' spaced' if m.endswith('apart') else ''}: {pct(s, .5) / base[key(m, conc)]:.2f}x"
                           for m, conc, s, _ in rows if m.split(",")[0] == mode)
        if ratios:
            print(f"p50 {mode} / executor: {ratios}")

    if args.executor_only:
        return
    with SandboxPool(spec, backend="docker", warm=8, max_size=16, name="bench", labels=LABELS) as pool:
        while pool.stats()["idle"] < 8:
            time.sleep(0.1)
        waits = []
        for _ in range(max(10, int(60 * scale))):
            start = time.perf_counter()
            box = pool.acquire()
            waits.append(time.perf_counter() - start)
            pool.release(box)
            while pool.stats()["idle"] < 8:  # measure the warm path: let the refill catch up
                time.sleep(0.02)
    print(f"\npool acquire (warm, includes a health ping): p50 {pct(waits, .5):.2f} ms, p99 {pct(waits, .99):.2f} ms "
          f"over {len(waits)} acquires")
    prune(client, everything=True, label="agentgym.bench")


if __name__ == "__main__":
    main()
