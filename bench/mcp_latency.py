"""MCP tool-call latency: an MCP server's tool over stdio and over streamable HTTP vs the same tool
in process, through the env's own call path.

    .venv/bin/python bench/mcp_latency.py [--calls 1000] [--env-steps 300]

Each measurement is ``env.call_tool("echo", {"text": ...})`` (lookup, argument validation,
call): a :class:`~agentgym.tools.ToolEnv` holding ``echo`` as a Python function (the baseline),
then :class:`~agentgym.mcp_env.MCPToolEnv` on ``tests/mcp_env/shop_server.py`` (the official
SDK's ``MCPServer``) started over stdio, and over streamable HTTP on 127.0.0.1. A whole
``env.step`` with one Hermes tool call is measured the same way, and "SDK only" is the SDK's
own round trip timed inside the client's event loop (the rest of ``call_tool`` is the
blocking bridge: a thread hop and the timeout guard). Samples are taken round-robin across the
transports, so load from other processes on the machine falls on all of them alike; p50/p99
and their ratios to the in-process call are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "mcp_env"))

from mcp_support import SHOP, TASKS, VERIFIER, start_http_shop  # noqa: E402

from agentgym.mcp_env import MCPToolEnv  # noqa: E402
from agentgym.tools import ToolEnv, format_tool_calls  # noqa: E402

ARGS = {"text": "ping"}
ACTION = format_tool_calls([{"name": "echo", "arguments": ARGS}])


def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


class LocalEnv(ToolEnv):
    def _reset(self, options: dict) -> tuple[str, dict]:
        return "echo things", {}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def step(env: ToolEnv) -> None:
    if env.done or env.turn >= 20:  # a short history, as in real episodes (state_key hashes it)
        env.reset(seed=0)
    env.step(ACTION)


def sdk_call(env: MCPToolEnv) -> float:
    """One SDK round trip, timed inside the client's event loop."""
    async def timed() -> float:
        t0 = time.perf_counter()
        await env.client.session.call_tool("echo", ARGS)
        return time.perf_counter() - t0

    return asyncio.run_coroutine_threadsafe(timed(), env.client._loop).result()


def round_robin(fns: dict[str, Callable[[], object]], n: int) -> dict[str, tuple[float, float]]:
    """n samples of each fn, interleaved; a fn returning a float reports its own duration."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(n + 20):  # the first 20 rounds warm up
        for name, fn in fns.items():
            t0 = time.perf_counter()
            reported = fn()
            elapsed = reported if isinstance(reported, float) else time.perf_counter() - t0
            if i >= 20:
                samples[name].append(elapsed)
    return {name: percentiles(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--env-steps", type=int, default=300)
    args = parser.parse_args()
    process, url = start_http_shop()
    options = {"tasks": TASKS, "reward": VERIFIER, "reset_tool": "reset_basket", "hidden_tools": ["crash"]}
    envs: dict[str, ToolEnv] = {"in-process": LocalEnv(tools=[echo])}
    try:
        envs["MCP stdio"] = MCPToolEnv(SHOP, **options)
        envs["MCP HTTP"] = MCPToolEnv(url, **options)
        for env in envs.values():
            env.reset(seed=0)
        calls = round_robin({name: (lambda e=env: e.call_tool("echo", ARGS)) for name, env in envs.items()}
                            | {f"{name} SDK only": (lambda e=env: sdk_call(e)) for name, env in envs.items()
                               if isinstance(env, MCPToolEnv)}, args.calls)
        steps = round_robin({name: (lambda e=env: step(e)) for name, env in envs.items()}, args.env_steps)
    finally:
        for env in envs.values():
            env.close()
        process.kill()
        process.wait()
    print(f"{args.calls} calls / {args.env_steps} env steps per transport, round-robin (same echo tool)")
    print(f"{'':<22} {'p50':>10} {'p99':>10} {'p50 ×':>8} {'p99 ×':>8}")
    for what, rows in (("call_tool", calls), ("env.step", steps)):
        b50, b99 = rows["in-process"]
        for name, (p50, p99) in rows.items():
            label = f"{what} {name}" if "SDK" not in name else f"{name.replace(' SDK only', '')} SDK only"
            print(f"{label:<22} {p50 * 1e3:>8.3f}ms {p99 * 1e3:>8.3f}ms {p50 / b50:>8.0f} {p99 / b99:>8.0f}")


if __name__ == "__main__":
    main()
