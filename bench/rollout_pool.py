"""Episode first-execution latency inside a real ``agentgym rollout`` of PythonTIR-v0, with the
code envs' warm pool and without it (each episode's sandbox made on its critical path), side by
side in one run.

The policy is ``--policy openai`` against a stand-in chat-completions server on loopback that
answers after ``--think`` seconds (a model's generation time): a python block on the first turn,
a boxed answer after the execution result. Both runs draw a fresh sandbox per episode;
``turns[0].env_seconds`` is the episode's first execution including getting its sandbox. Needs
a Docker engine and the python sandbox image (``agentgym sandbox build python``).

    .venv/bin/python bench/rollout_pool.py [--tasks 96] [--concurrency 16] [--think 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

AGENTGYM = Path(sys.executable).with_name("agentgym")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def model_server(think: float) -> ThreadingHTTPServer:
    """A chat-completions endpoint that thinks for ``think`` s, then runs code once and answers."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — the http.server hook's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(think)
            ran = "execution result" in body["messages"][-1]["content"].lower()
            text = "The sum is \\boxed{45}." if ran else "Let me compute.\n```python\nprint(sum(range(10)))\n```"
            reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 10, "completion_tokens": 10}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(pooled: bool, args: argparse.Namespace, out: Path, url: str) -> tuple[list[float], float, int]:
    env = {**os.environ, "AGENTGYM_SANDBOX_POOL": "1" if pooled else "0", "AGENTGYM_SANDBOX_BACKEND": args.backend}
    command = [str(AGENTGYM), "rollout", "--env", "agentgym/PythonTIR-v0", "--policy", "openai", "--base-url", url,
               "--model", "stand-in", "--api-key", "none", "--policy-kwarg", "return_token_ids=false",
               "--policy-kwarg", "request_logprobs=false",
               "--tasks", str(args.tasks), "--concurrency", str(args.concurrency), "--out", str(out),
               "--env-kwarg", "source=builtin", "--quiet"]
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    firsts, failures = [], 0
    for line in (out / "trajectories.jsonl").read_text().splitlines():
        traj = json.loads(line)
        failures += traj["failure"] is not None
        if traj["turns"] and traj["turns"][0]["tool_calls"]:
            firsts.append(traj["turns"][0]["env_seconds"])
    return firsts, wall, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--think", type=float, default=1.0, help="the stand-in model's seconds per turn")
    parser.add_argument("--backend", default="docker", choices=["docker", "local"])
    args = parser.parse_args()
    server = model_server(args.think)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    rows = {}
    with tempfile.TemporaryDirectory(prefix="agentgym-bench-") as tmp:
        for pooled in (False, True):
            rows[pooled] = run(pooled, args, Path(tmp) / ("pool" if pooled else "nopool"), url)
    server.shutdown()
    print(f"PythonTIR-v0, {args.tasks} episodes at concurrency {args.concurrency}, model think time {args.think} s, "
          f"backend {args.backend}: first execution per episode (incl. getting its sandbox)")
    print(f"{'mode':<10}{'episodes':>9}{'p50 ms':>9}{'p99 ms':>9}{'wall s':>8}{'failed':>8}")
    for pooled, (firsts, wall, failures) in rows.items():
        print(f"{'pool' if pooled else 'no pool':<10}{len(firsts):>9}{pct(firsts, .5):>9.1f}{pct(firsts, .99):>9.1f}"
              f"{wall:>8.1f}{failures:>8}")
    (base, _, _), (pool, _, _) = rows[False], rows[True]
    print(f"p50 ratio (no pool / pool): {pct(base, .5) / pct(pool, .5):.1f}x; "
          f"p99 ratio: {pct(base, .99) / pct(pool, .99):.1f}x")


if __name__ == "__main__":
    main()
