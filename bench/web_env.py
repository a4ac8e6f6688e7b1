"""WebShop-v0: the text and chromium backends side by side, in one run.

For each backend at concurrency 1 and 8 (one env per concurrent worker thread, all on one
shared site and, for chromium, one pooled browser): reset latency (p50/p99: a new session, a
fresh browser context and the home page) and steps/s over expert episodes (search, open the
item, select options, buy); the chromium rows also print their ratio to the text baseline.
Then memory per concurrent browser context: the resident memory (PSS where the kernel has it)
of the pool's Chromium processes with 0, 1, 8 and 16 open contexts, each on a result page.

    .venv/bin/python bench/web_env.py [--episodes 16] [--placement docker|local]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import agentgym

ENV_ID = "agentgym/WebShop-v0"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(backend: str, concurrency: int, episodes: int, placement: str) -> tuple[list[float], int, float]:
    """Reset latencies, steps taken and the steps' wall time, over ``episodes`` per worker."""
    envs = [agentgym.make(ENV_ID, backend=backend, placement=placement) for _ in range(concurrency)]
    for env in envs:  # warm up: the site, the browser, the connection pool
        env.reset(seed=10_000)
    resets: list[float] = []
    steps = [0]
    step_time = [0.0]
    lock = threading.Lock()

    def worker(index: int) -> None:
        env = envs[index]
        for episode in range(episodes):
            start = time.perf_counter()
            env.reset(seed=index * 1000 + episode)
            reset_s = time.perf_counter() - start
            taken, start = 0, time.perf_counter()
            while True:
                *_, terminated, truncated, _ = env.step(env.expert_action())
                taken += 1
                if terminated or truncated:
                    break
            with lock:
                resets.append(reset_s)
                steps[0] += taken
                step_time[0] += time.perf_counter() - start

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    for env in envs:
        env.close()
    # steps/s is aggregate throughput: steps over the wall time spent stepping (resets excluded).
    return resets, steps[0], wall * step_time[0] / max(step_time[0] + sum(resets), 1e-9)


def chromium_memory_kib() -> int:
    """PSS (else RSS) of Chromium processes descending from this process, in KiB."""
    parents, names = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                names[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    total = 0
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor != os.getpid():
            ancestor = parents[ancestor]
        if ancestor != os.getpid() or b"chrom" not in names[pid]:
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            key = "Pss:" if "Pss:" in rollup else "Rss:"
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith(key))
        except (OSError, StopIteration):
            continue
    return total


def memory_per_context(placement: str) -> None:
    print("\nChromium memory (PSS of the pool's processes) by open contexts")
    print(f"{'contexts':>9}{'total MiB':>11}{'per context MiB':>17}")
    anchor = agentgym.make(ENV_ID, backend="chromium", placement=placement)
    anchor.reset(seed=0)
    anchor._held["backend"].end_episode()  # it keeps the pooled browser up, with no context open
    time.sleep(1)
    base = chromium_memory_kib()
    print(f"{0:>9}{base / 1024:>11.1f}{'':>17}")
    opened: list = []
    for count in (1, 8, 16):
        while len(opened) < count:
            env = agentgym.make(ENV_ID, backend="chromium", placement=placement)
            env.reset(seed=len(opened))
            env.step("search[cotton t-shirt]")
            opened.append(env)
        time.sleep(1)
        total = chromium_memory_kib()
        print(f"{count:>9}{total / 1024:>11.1f}{(total - base) / count / 1024:>17.1f}")
    for env in opened:
        env.close()
    anchor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=16, help="expert episodes per worker")
    parser.add_argument("--placement", default="auto", choices=["auto", "docker", "local"])
    args = parser.parse_args()
    from agentgym.envs.webshop.site import placement_for

    placement = placement_for(args.placement)
    print(f"WebShop-v0, site placement: {placement}, {args.episodes} expert episodes per worker, "
          f"{os.cpu_count()} CPUs")
    print(f"{'backend':<10}{'conc':>5}{'steps':>7}{'steps/s':>9}{'vs text':>9}{'reset p50 ms':>14}"
          f"{'reset p99 ms':>14}{'vs text':>9}")
    for concurrency in (1, 8):
        baseline: tuple[float, float] | None = None
        for backend in ("text", "chromium"):
            resets, steps, wall = run(backend, concurrency, args.episodes, placement)
            rate, p50 = steps / wall, pct(resets, .5)
            if baseline is None:
                baseline = (rate, p50)
            print(f"{backend:<10}{concurrency:>5}{steps:>7}{rate:>9.1f}{rate / baseline[0]:>8.2f}x"
                  f"{p50:>14.1f}{pct(resets, .99):>14.1f}{p50 / baseline[1]:>8.1f}x")
    memory_per_context(placement)


if __name__ == "__main__":
    main()
