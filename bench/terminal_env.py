"""agentgym/Terminal-v0's costs, per shipped task: the image build (after ``docker rmi``; the engine's
layer cache stays), the image found in the engine by a new process, and in this process's cache;
container start (direct vs drawn from the warm pool); reset (lazy: the container is drawn at the
first call), the expert's one shell step (draw + unpack the task files + solve.sh), grading (after
the expert, and of a fresh untouched container); and whole expert episodes at concurrency 1 and 8
(one env per worker thread, as a rollout runs them).

Needs a Docker engine on this host and the python sandbox image (``agentgym sandbox build python``).
The cold build removes this run's task images first (tags ``agentgym/terminal-*``; nothing else).

    .venv/bin/python bench/terminal_env.py [--episodes N] [--no-cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable

import docker.errors

from agentgym.envs.terminal.env import TerminalEnv, grade, task_spec
from agentgym.envs.terminal.images import build_task_image, clear_cache, image_tag
from agentgym.envs.terminal.tasks import load_tasks
from agentgym.sandboxes import make_sandbox
from agentgym.sandboxes.engine import docker_client
from agentgym.sandboxes.pool import close_shared_pools


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.1f}"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def expert_episode(env: TerminalEnv, seed: int, task: str) -> tuple[float, float, float, bool]:
    """(reset s, first step s, grading step s, success) of one expert episode."""
    start = time.perf_counter()
    env.reset(seed=seed, options={"task": task})
    reset = time.perf_counter() - start
    start = time.perf_counter()
    env.step(env.expert_action())
    step = time.perf_counter() - start
    start = time.perf_counter()
    *_, info = env.step(env.expert_action())
    return reset, step, time.perf_counter() - start, bool(info["success"])


def concurrent_episodes(task: str, workers: int, episodes: int) -> tuple[float, list[float], int]:
    """Wall seconds, per-episode seconds and successes of ``episodes`` expert episodes per worker."""
    envs = [TerminalEnv(task=task) for _ in range(workers)]
    for env in envs:  # warm the pool for every worker before the clock starts
        env.reset(seed=0)
        env.step(env.expert_action())
        env.step(env.expert_action())
    times: list[float] = []
    wins = [0]
    lock = threading.Lock()

    def work(env: TerminalEnv, index: int) -> None:
        for i in range(episodes):
            start = time.perf_counter()
            *_, ok = expert_episode(env, index * 1000 + i, task)
            with lock:
                times.append(time.perf_counter() - start)
                wins[0] += ok

    threads = [threading.Thread(target=work, args=(env, i)) for i, env in enumerate(envs)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for env in envs:
        env.close()
    return wall, times, wins[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3, help="expert episodes per worker and task (default 3)")
    parser.add_argument("--no-cold", action="store_true", help="skip removing the task images for a cold build")
    args = parser.parse_args()
    client = docker_client()
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min), {os.cpu_count()} CPUs")
    tasks = load_tasks()
    print("\n== image build (per task) ==")
    print(f"{'task':26} {'build s':>8} {'engine-cached ms':>17} {'process-cached ms':>18} {'build/engine':>13}")
    for task in tasks:
        cold = float("nan")
        if not args.no_cold:
            try:
                client.images.remove(image_tag(task), force=True)
            except docker.errors.ImageNotFound:
                pass
            clear_cache()
            image = build_task_image(task)
            assert image.built
            cold = image.seconds
        clear_cache()
        engine = timed(lambda t=task: build_task_image(t))
        process = timed(lambda t=task: build_task_image(t))
        print(f"{task.name:26} {cold:8.2f} {engine * 1e3:17.1f} {process * 1e3:18.2f} {cold / engine:12.1f}x")

    print("\n== per-episode costs at concurrency 1 (medians over "
          f"{max(args.episodes, 5)} episodes; ms) ==")
    print(f"{'task':26} {'direct start':>12} {'pool draw':>10} {'reset':>8} {'expert step':>12} {'grading':>8} "
          f"{'grade fresh':>12} {'success':>8}")
    for task in tasks:
        image = build_task_image(task)
        spec = task_spec(task, image)
        starts, gradings = [], []
        for _ in range(3):
            start = time.perf_counter()
            box = make_sandbox(spec, backend="docker", pool="bench")
            starts.append(time.perf_counter() - start)
            gradings.append(timed(lambda b=box, t=task, w=image.workdir: grade(b, t, w)))
            box.close()
        env = TerminalEnv(task=task.name)
        draws, resets, steps, grades, wins = [], [], [], [], 0
        for seed in range(max(args.episodes, 5)):
            reset, step, graded, ok = expert_episode(env, seed, task.name)
            resets.append(reset)
            steps.append(step)
            grades.append(graded)
            wins += ok
            lazy = env._sandboxes[task.name]
            lazy.recycle()
            time.sleep(1.0)  # the pool refills in the background, as while a model thinks
            draws.append(timed(lazy.get))
        env.close()
        n = max(args.episodes, 5)
        print(f"{task.name:26} {median_ms(starts):>12} {median_ms(draws):>10} {median_ms(resets):>8} "
              f"{median_ms(steps):>12} {median_ms(grades):>8} {median_ms(gradings):>12} {wins:>5}/{n}")

    print(f"\n== expert episodes, concurrency 1 vs 8 ({args.episodes} per worker) ==")
    print(f"{'task':26} {'c=1 ep/s':>9} {'c=8 ep/s':>9} {'speed-up':>9} {'c=1 med s':>10} {'c=8 med s':>10} "
          f"{'success':>9}")
    for task in tasks:
        wall1, times1, wins1 = concurrent_episodes(task.name, 1, args.episodes)
        wall8, times8, wins8 = concurrent_episodes(task.name, 8, args.episodes)
        rate1, rate8 = args.episodes / wall1, 8 * args.episodes / wall8
        print(f"{task.name:26} {rate1:9.2f} {rate8:9.2f} {rate8 / rate1:8.2f}x {statistics.median(times1):10.2f} "
              f"{statistics.median(times8):10.2f} {wins1 + wins8:>4}/{9 * args.episodes}")
    close_shared_pools()
    print(f"\nload after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
