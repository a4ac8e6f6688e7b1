"""OpenEnv step latency: an env served by ``agentgym serve-openenv`` and stepped by openenv-core's
own client (and by agentgym's :class:`~agentgym.openenv_env.OpenEnvEnv`) vs the same env stepped
in process.

    .venv/bin/python bench/openenv_latency.py [--steps 2000] [--env agentgym/Bifurcation-v0]

The server is the CLI in a child process on 127.0.0.1 (one WebSocket session per client). Each
sample is one step with a legal action; an episode that ends is reset outside the timing.
Samples are taken round-robin across the three, so load from other processes falls on all of
them alike; p50/p99 and their ratios to the in-process step are printed side by side, with the
machine's load (``uptime``) before and after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import agentgym
from agentgym.openenv_env import OpenEnvEnv


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Stepper:
    """Steps one env with its first legal action, resetting (untimed) when the episode ends."""

    def __init__(self, reset: Callable[[int], list[str]], step: Callable[[str], tuple[bool, list[str]]]):
        self._reset, self._step, self.seed = reset, step, 0
        self.legal = reset(0)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        done, legal = self._step(self.legal[0])
        elapsed = time.perf_counter() - t0
        if done:
            self.seed += 1
            legal = self._reset(self.seed)
        self.legal = legal
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--env", default="agentgym/Bifurcation-v0")
    args = parser.parse_args()
    from openenv.core import GenericEnvClient

    load_before = uptime()
    server = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve-openenv", args.env, "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    url = json.loads(server.stderr.readline())["openenv_url"]
    local = agentgym.make(args.env)
    client = GenericEnvClient(base_url=url).sync()
    client.connect()
    adapter = OpenEnvEnv(url)
    try:
        def local_reset(seed: int) -> list[str]:
            local.reset(seed=seed)
            return local.legal_actions()

        def local_step(action: str) -> tuple[bool, list[str]]:
            _, _, terminated, truncated, _ = local.step(action)
            return terminated or truncated, local.legal_actions()

        def client_reset(seed: int) -> list[str]:
            return client.reset(seed=seed).observation["legal_actions"]

        def client_step(action: str) -> tuple[bool, list[str]]:
            result = client.step({"message": action})
            return result.done, result.observation["legal_actions"] or []

        def adapter_reset(seed: int) -> list[str]:
            adapter.reset(seed=seed)
            return adapter.legal_actions()

        def adapter_step(action: str) -> tuple[bool, list[str]]:
            _, _, terminated, truncated, _ = adapter.step(action)
            return terminated or truncated, adapter.legal_actions()

        steppers: dict[str, Any] = {
            "in-process env.step": Stepper(local_reset, local_step),
            "openenv-core client": Stepper(client_reset, client_step),
            "agentgym OpenEnvEnv": Stepper(adapter_reset, adapter_step),
        }
        samples: dict[str, list[float]] = {name: [] for name in steppers}
        for i in range(args.steps + 50):  # the first 50 rounds warm up
            for name, stepper in steppers.items():
                elapsed = stepper()
                if i >= 50:
                    samples[name].append(elapsed)
    finally:
        client.close()
        adapter.close()
        local.close()
        server.kill()
        server.wait()
    print(f"{args.env}: {args.steps} steps each, round-robin; server: agentgym serve-openenv on 127.0.0.1")
    print(f"load before: {load_before}\nload after:  {uptime()}")
    print(f"{'':<22} {'p50':>10} {'p99':>10} {'p50 ×':>8} {'p99 ×':>8}")
    b50, b99 = percentiles(samples["in-process env.step"])
    for name, values in samples.items():
        p50, p99 = percentiles(values)
        print(f"{name:<22} {p50 * 1e3:>8.3f}ms {p99 * 1e3:>8.3f}ms {p50 / b50:>8.0f} {p99 / b99:>8.0f}")


if __name__ == "__main__":
    main()
