"""Soak: many sandbox lifecycles with random faults, then count what is left behind.

Each lifecycle makes a sandbox, runs a call, and then, at random: closes it normally; kills its
container (Docker) or its namespace's init (local) before closing; kills the executor process
from the host before closing; or has a separate host process make it and die by SIGKILL without
closing (the reaper then removes Docker leftovers). At the end it counts the sandbox containers
and the host processes carrying this run's token (every sandbox process has it in its
environment): both must be 0. ``tests/sandboxes/test_soak.py`` (marked slow) runs a short soak.

    .venv/bin/python bench/sandbox_soak.py [--lifecycles 1000] [--backend docker|local]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from agentgym.sandboxes import BaseSandbox, SandboxCrashed, SandboxSpec
from agentgym.sandboxes.reaper import list_sandboxes, prune

FAULTS = ("none", "kill-sandbox", "kill-executor", "kill-owner")
ORPHAN = """
import os, sys
from agentgym.sandboxes import SandboxSpec
from agentgym.sandboxes.factory import make_sandbox
box = make_sandbox(SandboxSpec(env=(("AGENTGYM_SOAK", sys.argv[1]),)), backend=sys.argv[2], labels={"agentgym.soak": sys.argv[1]})
assert box.run_python("print(1)").ok
print("ready", flush=True)
import time; time.sleep(600)
"""


def processes_with(token: str) -> list[int]:
    """Host pids whose environment carries ``AGENTGYM_SOAK=token``."""
    needle = f"AGENTGYM_SOAK={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as env:
                    if needle in env.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def executor_pid(box: BaseSandbox) -> int:
    """The executor's host pid: the child of docker-init (Docker) or of unshare (local)."""
    if box.backend == "docker":
        parent = box.client.api.inspect_container(box.container_id)["State"]["Pid"]
    else:
        parent = box._proc.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return int(children[0])


def lifecycle(fault: str, backend: str, token: str, labels: dict[str, str]) -> None:
    spec = SandboxSpec(env=(("AGENTGYM_SOAK", token),), memory_mb=128, workdir_mb=16, tmp_mb=16)
    if fault == "kill-owner":
        owner = subprocess.Popen([sys.executable, "-c", ORPHAN, token, backend], stdout=subprocess.PIPE, text=True)
        assert owner.stdout.readline().strip() == "ready"
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        return
    from agentgym.sandboxes.factory import make_sandbox

    box = make_sandbox(spec, backend=backend, pool="soak", labels=labels)
    try:
        assert box.run_python("print(1)").stdout == "1\n"
        if fault == "kill-sandbox":
            if backend == "docker":
                box.client.api.kill(box.container_id)
            else:
                os.killpg(box._proc.pid, signal.SIGKILL)  # unshare and the namespace under it
        elif fault == "kill-executor":
            os.kill(executor_pid(box), signal.SIGKILL)
        if fault != "none":
            try:
                box.run_python("print(2)")
                raise AssertionError(f"{fault}: the sandbox still answered")
            except SandboxCrashed:
                pass
    finally:
        box.close()


def soak(lifecycles: int, backend: str, seed: int = 0) -> dict[str, object]:
    """Run the soak; returns the fault counts and what was left behind."""
    token = uuid.uuid4().hex[:12]
    labels = {"agentgym.soak": token}
    rng = random.Random(seed)
    faults: Counter[str] = Counter()
    began = time.monotonic()
    for _ in range(lifecycles):
        fault = rng.choices(FAULTS, weights=(4, 2, 2, 1))[0]
        faults[fault] += 1
        lifecycle(fault, backend, token, labels)
    reaped = 0
    if backend == "docker":
        reaped = len(prune(label=f"agentgym.soak={token}"))  # the killed owners' containers
    deadline = time.monotonic() + 30  # exiting processes may take a moment to be reaped
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = list_sandboxes(label=f"agentgym.soak={token}") if backend == "docker" else []
    return {"lifecycles": lifecycles, "faults": dict(faults), "reaped": reaped, "containers_left": len(left),
            "processes_left": len(processes_with(token)), "seconds": time.monotonic() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=1000)
    parser.add_argument("--backend", default="docker", choices=["docker", "local"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = soak(args.lifecycles, args.backend, args.seed)
    print(f"{args.backend}: {result['lifecycles']} lifecycles in {result['seconds']:.0f} s, faults {result['faults']}; "
          f"reaper removed {result['reaped']} orphaned containers; left behind: {result['containers_left']} "
          f"containers, {result['processes_left']} processes")
    if result["containers_left"] or result["processes_left"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
