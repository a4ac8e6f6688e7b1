"""MCP tool-call latency: an MCP server's tool over stdio and over streamable HTTP vs the same tool
in process, through the env's own call path.

    .venv/bin/python bench/mcp_latency.py [--calls 1000] [--env-steps 300]

Each measurement is ``env.call_tool("echo", {"text": ...})`` (lookup, argument validation,
call): a :class:`~agentgym.tools.ToolEnv` holding ``echo`` as a Python function (the baseline),
then :class:`~agentgym.mcp_env.MCPToolEnv` on ``tests/mcp_env/shop_server.py`` (the official
SDK's ``MCPServer``) started over stdio, then over streamable HTTP on 127.0.0.1. p50/p99 and
their ratios to the in-process call are printed side by side; a whole ``env.step`` with one
Hermes tool call is measured the same way, and "SDK only" is the SDK's own round trip timed
inside the client's event loop (the rest of ``call_tool`` is the sync bridge).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "mcp_env"))

from mcp_support import SHOP, TASKS, VERIFIER, start_http_shop  # noqa: E402

from agentgym.mcp_env import MCPToolEnv  # noqa: E402
from agentgym.tools import ToolEnv, format_tool_calls  # noqa: E402


def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


class LocalEnv(ToolEnv):
    def _reset(self, options: dict) -> tuple[str, dict]:
        return "echo things", {}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(20, n)):
        fn()  # warm up
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def measure(env: ToolEnv, calls: int, steps: int) -> dict[str, tuple[float, float]]:
    env.reset(seed=0)
    action = format_tool_calls([{"name": "echo", "arguments": {"text": "ping"}}])

    def step() -> None:
        if env.done or env.turn >= 20:  # a short history, as in real episodes (state_key hashes it)
            env.reset(seed=0)
        env.step(action)

    return {"call_tool": percentiles(timed(lambda: env.call_tool("echo", {"text": "ping"}), calls)),
            "env.step": percentiles(timed(step, steps))}


def sdk_in_loop(env: MCPToolEnv, calls: int) -> tuple[float, float]:
    """The SDK's own round trip, timed inside the client's event loop: what the blocking bridge
    (thread hop, timeout guard) adds is the difference to ``call_tool``."""
    import asyncio

    async def run() -> list[float]:
        samples = []
        for i in range(calls + 20):
            t0 = time.perf_counter()
            await env.client.session.call_tool("echo", {"text": "ping"})
            if i >= 20:
                samples.append(time.perf_counter() - t0)
        return samples

    return percentiles(asyncio.run_coroutine_threadsafe(run(), env.client._loop).result())


def measure_mcp(server: object, calls: int, steps: int) -> dict[str, tuple[float, float]]:
    env = MCPToolEnv(server, tasks=TASKS, reward=VERIFIER, reset_tool="reset_basket", hidden_tools=["crash"])
    try:
        return {**measure(env, calls, steps), "SDK only": sdk_in_loop(env, calls)}
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--env-steps", type=int, default=300)
    args = parser.parse_args()
    results = {"in-process": measure(LocalEnv(tools=[echo]), args.calls, args.env_steps)}
    results["MCP stdio"] = measure_mcp(SHOP, args.calls, args.env_steps)
    process, url = start_http_shop()
    try:
        results["MCP HTTP"] = measure_mcp(url, args.calls, args.env_steps)
    finally:
        process.kill()
        process.wait()
    base = results["in-process"]
    print(f"{args.calls} calls / {args.env_steps} env steps per transport (same echo tool)")
    print(f"{'transport':<12} {'what':<10} {'p50':>10} {'p99':>10} {'p50 ×':>10} {'p99 ×':>10}")
    for name, rows in results.items():
        for what, (p50, p99) in rows.items():
            b50, b99 = base["call_tool" if what == "SDK only" else what]
            print(f"{name:<12} {what:<10} {p50 * 1e3:>8.3f}ms {p99 * 1e3:>8.3f}ms {p50 / b50:>10.0f} {p99 / b99:>10.0f}")


if __name__ == "__main__":
    main()
