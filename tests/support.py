"""Small envs for testing the core machinery (the built-in envs are tested in tests/envs), and the
label every test sandbox carries (the session's leak check in tests/conftest.py looks for it)."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentgym.core import InfraError, StepResult, TextEnv
from agentgym.envs.bifurcation import BifurcationEnv

TEST_LABEL = "agentgym.test"
# One value per pytest process, so two test runs sharing an engine never prune each other's sandboxes.
TEST_SESSION = os.environ.setdefault("AGENTGYM_TEST_SESSION", str(os.getpid()))  # children inherit it
TEST_LABELS = {TEST_LABEL: TEST_SESSION}

#: Both sandbox backends, for a test whose LocalSandbox half needs root: without it LocalSandbox's
#: user namespace maps one uid, so user code and the executor share it (CI runs as root).
BACKENDS_LOCAL_AS_ROOT = pytest.mark.parametrize("backend", [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("local", marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="without root, LocalSandbox's code and executor share its one mapped uid")),
], indirect=True)


@contextmanager
def bench_module(script: str) -> Iterator[ModuleType]:
    """``bench/<script>.py`` imported for a test. bench/ is not a package; the module is registered in
    ``sys.modules`` while in use (dataclasses look their module up by name) and removed after."""
    spec = importlib.util.spec_from_file_location(f"bench_{script}", Path(__file__).resolve().parents[1] / "bench" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


class EchoEnv(TextEnv):
    """Say the task's number back. Seed → number; wrong answers get a readable hint."""

    threaded_async = False

    def __init__(self, *, max_turns: int | None = 4, modulus: int = 10, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        self.modulus = modulus
        self.number = 0

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.number = int(options.get("task", self.np_random.integers(self.modulus)))
        return f"Say {self.number}.", {"task_id": f"echo-{self.number}", "state_key": "start"}

    def _step(self, action: str) -> StepResult:
        if action.strip() == str(self.number):
            return "Correct.", 1.0, True, False, {"answer": action.strip(), "state_key": "end"}
        return f"No, say {self.number}.", 0.0, False, False, {"state_key": f"wrong-{self.turn}"}

    def expert_action(self) -> str:
        return str(self.number)

    def legal_actions(self) -> list[str]:
        return [str(n) for n in range(self.modulus)]


class ToolTurnsEnv(TextEnv):
    """Turns (register it with max_turns) whatever the action, whose observations alternate tool results (role "tool")
    and user messages: multi-turn episodes with tool turns for a policy that cannot call tools
    (an untrained model), to follow its token ids through the trainer."""

    threaded_async = False

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "Look order O1 up.", {"task_id": "tool-turns", "state_key": "start"}

    def _step(self, action: str) -> StepResult:
        role = "tool" if self.turn % 2 else "user"
        return (f"result {self.turn}: {len(action)} characters", 0.0, False, False,
                {"role": role, "state_key": f"turn-{self.turn}"})


class FlakyEnv(EchoEnv):
    """EchoEnv whose step fails on some seeds: ``fail_on`` maps seed % 3 to an error kind."""

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.kind = {0: "crash", 1: "infra"}.get(self.np_random.integers(3))
        return super()._reset(options)

    def _step(self, action: str) -> StepResult:
        if self.kind == "crash":
            raise ZeroDivisionError("env bug")
        if self.kind == "infra":
            raise InfraError("sandbox went away")
        return super()._step(action)


class SlowEnv(EchoEnv):
    """EchoEnv whose step blocks for ``delay`` seconds (in a worker thread)."""

    threaded_async = True

    def __init__(self, *, delay: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.delay = delay

    def _step(self, action: str) -> StepResult:
        time.sleep(self.delay)
        return super()._step(action)


def container_gone(client: Any, container_id: str, within: float = 60.0) -> bool:
    """Whether the container is removed within ``within`` seconds (pools destroy given-back
    sandboxes in a background thread, so removal trails ``close()`` a little)."""
    deadline = time.monotonic() + within
    while client.api.containers(all=True, filters={"id": container_id}):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def hide_package(monkeypatch: Any, package: str) -> None:
    """Make ``import package`` (and its submodules) fail for the rest of the test, as when an
    optional extra is not installed; ``monkeypatch`` undoes it."""
    import builtins
    import sys

    real_import = builtins.__import__

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {package!r}")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", without)


# -- the package as built for users (tests/test_packaging.py, tests/test_compose.py) ---------------
SOURCE_ROOTS = {"agentgym": "agentgym", "envs": "agentgym/envs", "sandboxes": "agentgym/sandboxes",
                "trainers": "agentgym/trainers"}  # source folder -> where it lands in the wheel


def source_files(root: Path) -> list[str]:
    """The files a build sees: tracked plus untracked-but-not-ignored (so the tests need a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"the packaging tests run from a git checkout of agentgym: {exc}") from exc
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def build_wheel(root: Path, files: list[str], workdir: Path) -> Path:
    """``pip wheel`` of a copy of ``files`` (so the build writes no build/ or egg-info into the
    checkout), with this environment's setuptools (no index needed)."""
    src, dist = workdir / "src", workdir / "dist"
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True)
    (wheel,) = dist.glob("agentgym_rl-*.whl")
    return wheel


class NoExpertEnv(EchoEnv):
    """EchoEnv without a scripted expert (the scripted policy cannot act on it)."""

    expert_action = None


class GatedEnv(EchoEnv):
    """EchoEnv whose reset is an infra failure while the file ``gate`` exists."""

    def __init__(self, *, gate: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.gate = gate

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if os.path.exists(self.gate):
            raise InfraError("gate closed")
        return super()._reset(options)


class JitteryBifurcationEnv(BifurcationEnv):
    """Bifurcation whose construction and steps take a random (unseeded) few milliseconds in a worker
    thread, like a real env that waits on something: thread timing varies from run to run."""

    threaded_async = True

    def __init__(self, **kwargs: Any):
        time.sleep(random.SystemRandom().random() * 0.01)
        super().__init__(**kwargs)

    def _step(self, action: str) -> StepResult:
        time.sleep(random.SystemRandom().random() * 0.004)
        return super()._step(action)


def install_by_hand(site: Path, name: str, entry_points: str) -> None:
    """An installed distribution as importlib.metadata finds it (a dist-info folder on sys.path)
    declaring ``agentgym.envs`` entry points; its code is wherever PYTHONPATH points."""
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[agentgym.envs]\n{entry_points}\n")


class LoopbackHTTPServer:
    """A real HTTP server on 127.0.0.1 (a free port) run in a thread while used as a context manager;
    subclasses answer through ``_handler_class()``."""

    def __init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):  # the subclass, so no annotation
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class SizedEnv(EchoEnv):
    """EchoEnv whose ``size`` is only used at reset (as a maze's would be): a bad value builds
    fine and fails on the first reset."""

    def __init__(self, *, size: Any = 3, max_turns: int | None = 4):
        super().__init__(max_turns=max_turns)
        self.size = size

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cells = "." * int(self.size) ** 2
        obs, info = super()._reset(options)
        return f"{obs} {cells}", info
