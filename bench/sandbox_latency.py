"""Per-call latency of an isolated Python call, three ways, side by side in one run.

(a) the resident executor (a fresh forked process per call), over its unix socket and over the
attach stream through dockerd, (b) ``docker exec`` per call,
(c) ``docker run --rm`` per call; each at concurrency 1, 8 and 32 (one container per concurrent
caller for (a) and (b)); plus warm-pool acquire latency. Needs a Docker engine and the python
sandbox image (``agentgym sandbox build python``).

    .venv/bin/python bench/sandbox_latency.py [--quick] [--executor-only]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable

from agentgym.sandboxes import SandboxPool, SandboxSpec
from agentgym.sandboxes.docker_sandbox import DockerSandbox
from agentgym.sandboxes.engine import docker_client
from agentgym.sandboxes.reaper import prune

CODE = "x = sum(range(100))"
LABELS = {"agentgym.bench": "1"}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(rows: list[tuple], title: str) -> None:
    print(f"\n{title} (executor: unix socket bind-mounted; executor/attach: through dockerd)")
    print(f"{'mode':<18}{'conc':>5}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}")
    for mode, conc, samples, wall in rows:
        print(f"{mode:<18}{conc:>5}{len(samples):>7}{pct(samples, .5):>9.2f}{pct(samples, .99):>9.2f}"
              f"{len(samples) / wall:>9.1f}")


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


async def executor_calls(boxes: list[DockerSandbox], per_worker: int) -> tuple[list[float], float]:
    samples: list[float] = []

    async def worker(box: DockerSandbox) -> None:
        for _ in range(per_worker):
            start = time.perf_counter()
            result = await box.arun_python(CODE)
            samples.append(time.perf_counter() - start)
            assert result.ok, result

    began = time.perf_counter()
    await asyncio.gather(*(worker(box) for box in boxes))
    return samples, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--executor-only", action="store_true", help="only the executor's two links")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    client = docker_client()
    spec = SandboxSpec()
    rows = []
    attached = [DockerSandbox(spec, client=client, pool="bench", labels=LABELS, direct=False) for _ in range(32)]
    boxes = [DockerSandbox(spec, client=client, pool="bench", labels=LABELS) for _ in range(32)]
    try:
        for box in boxes + attached:  # warm-up
            box.run_python(CODE)
        for conc, per in ((1, 400), (8, 150), (32, 60)):  # interleaved, so both see the same load
            for mode, group in (("executor", boxes), ("executor/attach", attached)):
                samples, wall = asyncio.run(executor_calls(group[:conc], max(5, int(per * scale))))
                rows.append((mode, conc, samples, wall))
        for conc, per in ((1, 40), (8, 8), (32, 3)) if not args.executor_only else ():
            def exec_call(index: int) -> None:
                exec_id = client.api.exec_create(boxes[index].container_id, ["python3", "-c", CODE], user="1000:1000")
                client.api.exec_start(exec_id)
                assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
            samples, wall = threaded(conc, max(2, int(per * scale)), exec_call)
            rows.append(("docker exec", conc, samples, wall))
    finally:
        for box in boxes + attached:
            box.close()
    for conc, per in ((1, 12), (8, 3), (32, 1)) if not args.executor_only else ():
        def run_call(index: int) -> None:
            client.containers.run(spec.image, ["python3", "-c", CODE], remove=True, network_mode="none",
                                  labels={"agentgym.sandbox": "1", **LABELS}, mem_limit="512m")
        samples, wall = threaded(conc, max(1, int(per * scale)), run_call)
        rows.append(("docker run --rm", conc, samples, wall))
    report(rows, f"isolated python call ({CODE!r}), one container per concurrent caller")
    base = {conc: pct(s, .5) for mode, conc, s, _ in rows if mode == "executor"}
    for mode in ("executor/attach", "docker exec", "docker run --rm")[:1 if args.executor_only else 3]:
        ratios = ", ".join(f"c={conc}: {pct(s, .5) / base[conc]:.1f}x" for m, conc, s, _ in rows if m == mode)
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
