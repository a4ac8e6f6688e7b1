"""DockerSandbox from the host's side (issue 22, items 1, 4 and 6): another local account cannot
pose as the executor, ``memory_mb`` bounds the code as on LocalSandbox, and a container that
cannot start is reported at once, with a typed error.

The attacker of item 1 is a real process running as ``nobody`` (the tests run as root); it
polls the temp dir for the executor's socket, as in the issue, and tries to answer the host.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TEST_LABELS

from agentgym.errors import ConfigError
from agentgym.sandboxes import SandboxSpec, SandboxUnavailable
from agentgym.sandboxes.docker_sandbox import DockerSandbox

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sandbox_image")]

ATTACKER_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
# Polls for agentgym-link-*/executor.sock, connects, passes 250 fds, then plays the executor:
# answers every frame it gets with "exit 0, all tests passed". Reports what it managed on stdout.
ATTACKER = r'''
import glob, json, os, socket, struct, sys, time
tmp, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
report = {"connected": 0, "refused": {}, "frames": [], "fds_sent": 0}
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(250)]
seen = set()
while time.monotonic() < deadline:
    for path in glob.glob(os.path.join(tmp, "agentgym-link-*", "executor.sock")) or [
            os.path.join(d, "executor.sock") for d in glob.glob(os.path.join(tmp, "agentgym-link-*"))]:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
        except OSError as exc:
            name = errno_name = __import__("errno").errorcode.get(exc.errno, str(exc.errno))
            report["refused"][name] = report["refused"].get(name, 0) + 1
            conn.close()
            continue
        report["connected"] += 1
        try:
            conn.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))])
            report["fds_sent"] += len(fds)
        except OSError:
            pass
        conn.settimeout(2.0)
        try:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    break
                body = conn.recv(struct.unpack(">I", head)[0], socket.MSG_WAITALL)
                request = json.loads(body)
                report["frames"].append(request.get("op"))
                reply = {"id": request.get("id"), "pid": 1, "strays": 0, "stdout": "all tests passed\n",
                         "stderr": "", "exit_code": 0, "timed_out": False, "stdout_truncated": False,
                         "stderr_truncated": False, "duration": 0.0, "error": ""}
                data = json.dumps(reply).encode()
                conn.sendall(struct.pack(">I", len(data)) + data)
        except (OSError, ValueError):
            pass
        conn.close()
    time.sleep(0.001)
print(json.dumps(report))
'''


class SharedSocketSandbox(DockerSandbox):
    """The layout for an engine whose container root is another uid than ours (a non-root user
    in the docker group, userns-remap): the socket must be world-connectable, so only the peer
    check stands between the attacker and the channel."""

    def _container_root_is_me(self) -> bool:
        return False


def dev_null_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "/dev/null"
        except OSError:
            pass
    return count


@pytest.fixture
def own_tempdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A temp dir of this test's own for the sandboxes' sockets, so the attacker only ever races
    for them (not for the sandboxes other test runs on this host are starting meanwhile)."""
    path = tempfile.mkdtemp(prefix="agentgym-test-tmp-")
    os.chmod(path, 0o755)
    monkeypatch.setattr(tempfile, "tempdir", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_attacker(tmp: str, seconds: float) -> subprocess.Popen[str]:
    if os.geteuid() != 0 or ATTACKER_PYTHON is None:
        why = "the attacker runs as nobody: needs root and a system python3"
        if os.environ.get("AGENTGYM_REQUIRE_DOCKER") == "1":  # CI runs as root: there it must run
            pytest.fail(f"AGENTGYM_REQUIRE_DOCKER=1 but {why}")
        pytest.skip(why)
    attacker = subprocess.Popen([ATTACKER_PYTHON, "-c", ATTACKER, tmp, str(seconds)],
                                user="nobody", group="nogroup", stdout=subprocess.PIPE, text=True, cwd="/")
    time.sleep(0.3)  # it is polling before the sandbox makes its socket
    return attacker


@pytest.mark.parametrize("kind", [DockerSandbox, SharedSocketSandbox], ids=["private-dir", "world-connectable"])
def test_another_uid_racing_for_the_socket_cannot_become_the_executor(kind: type[DockerSandbox],
                                                                      own_tempdir: str) -> None:
    attacker = start_attacker(own_tempdir, seconds=6.0)
    null_fds = dev_null_fds()
    try:
        box = kind(SandboxSpec(), labels=TEST_LABELS, pool="test")
        try:
            result = box.run_python("import sys\nprint('real')\nsys.exit(3)")
            assert (result.exit_code, result.stdout) == (3, "real\n"), result
            rejected = list(getattr(box, "rejected", []))
        finally:
            box.close()
    finally:
        report = json.loads(attacker.communicate(timeout=30)[0])
    assert report["frames"] == [], report  # it never saw a request (the ping, the code)
    if kind is SharedSocketSandbox:
        # It did win the race to connect, and was turned away by the peer check.
        assert report["connected"] >= 1 and rejected and "uid 65534" in rejected[0], (report, rejected)
    else:
        assert report["connected"] == 0 and set(report["refused"]) <= {"EACCES", "ENOENT"}, report
    assert dev_null_fds() <= null_fds + 1  # none of the 250 /dev/null fds it passed was kept


def test_no_second_connection_reaches_the_socket_once_the_executor_is_in() -> None:
    box = SharedSocketSandbox(SandboxSpec(), labels=TEST_LABELS, pool="test")
    try:
        link = Path(box._link_dir or "")
        assert not link.exists()  # removed with the socket as soon as the executor connected
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, pytest.raises(OSError):
            probe.connect(str(link / "executor.sock"))
        inside = box.run_python(
            "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('/agentgym/executor.sock')\n"
            "except OSError as e:\n    print(e.errno)")
        assert inside.stdout == f"{errno.ENOENT}\n", inside
        assert box.run_python("print(1)").stdout == "1\n"
    finally:
        box.close()


def test_hard_links_to_files_outside_the_work_dir_are_refused() -> None:
    with DockerSandbox(SandboxSpec(), labels=TEST_LABELS, pool="test") as box:
        result = box.run_python(
            "import os\nfor src in ('/etc/passwd', '/usr/bin/python3', '/tmp', '/proc/self/exe', '/agentgym'):\n"
            "    try:\n        os.link(src, 'x')\n        print(src, 'linked')\n"
            "    except OSError as e:\n        print(src, e.errno)")
        assert "linked" not in result.stdout and result.stdout.count("\n") == 5, result


# -- memory (item 4) ----------------------------------------------------------------------
def test_memory_mb_bounds_an_allocation_as_on_local_sandbox() -> None:
    """The code got memory_mb + workdir_mb + 2 tmp_mb + 64 MiB (400 MiB with memory_mb=128)."""
    with DockerSandbox(SandboxSpec(memory_mb=128), labels=TEST_LABELS, pool="test") as box:
        result = box.run_python("b = bytearray(160 << 20)\nb[::4096] = b'x' * len(b[::4096])\nprint('got it')",
                                timeout=30)
        assert "MemoryError" in result.stderr and result.exit_code == 1, result
        ok = box.run_python("b = bytearray(64 << 20)\nb[::4096] = b'x' * len(b[::4096])\nprint('ok')", timeout=30)
        assert ok.stdout == "ok\n", ok
        mapped = box.run_python("import mmap\nm = mmap.mmap(-1, 200 << 20)\nprint('mapped')")
        assert "mapped" not in mapped.stdout and "OSError" in mapped.stderr or "MemoryError" in mapped.stderr


def test_memfd_and_processes_together_stay_within_the_container_limit() -> None:
    """memfd pages (not mapped: outside the address space) and several processes: the memory
    cgroup bounds the total (memory_mb + the tmpfs sizes + 64 MiB); the code is OOM-killed."""
    spec = SandboxSpec(memory_mb=128, workdir_mb=16, tmp_mb=16)  # container limit 240 MiB
    with DockerSandbox(spec, labels=TEST_LABELS, pool="test") as box:
        result = box.run_python(
            "import os\nfd = os.memfd_create('x')\nchunk = b'0' * (1 << 20)\nn = 0\n"
            "for _ in range(768):\n    os.write(fd, chunk)\n    n += 1\nprint(n)", timeout=30)
        assert result.exit_code == -9 and "out of memory" in result.stderr, result
        assert box.ping()["strays"] == 0 and box.run_python("print(2)").stdout == "2\n"


# -- a container that cannot start (item 6) --------------------------------------------------
@pytest.mark.parametrize("env", [
    {"BIG": "x" * (3 << 20)},
    {f"V{i}": "1" for i in range(100_000)},
    {f"W{i}": "y" * 100_000 for i in range(20)},
    {"BAD=NAME": "1"},
], ids=["3MB-value", "100k-vars", "2MB-total", "equals-in-name"])
def test_an_environment_no_process_could_get_is_refused_at_once(env: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="SandboxSpec.env"):
        DockerSandbox(SandboxSpec(env=tuple(env.items())), labels=TEST_LABELS, pool="test")
    assert time.monotonic() - started < 5


@pytest.fixture
def image_without_python(docker_client: Any) -> Iterator[str]:
    """A one-file image: its container starts and its init exits at once (no python3)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    tag = f"agentgym-test/no-python:{os.getpid()}"
    repository, version = tag.split(":")
    docker_client.api.import_image_from_data(data.getvalue(), repository=repository, tag=version)
    yield tag
    docker_client.api.remove_image(tag, force=True)


@pytest.mark.parametrize("direct", [True, False], ids=["unix-socket", "attach"])
def test_a_container_that_exits_at_start_is_reported_at_once(image_without_python: str, direct: bool) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxUnavailable, match="exit|exited|not start|start"):
        DockerSandbox(SandboxSpec(image=image_without_python), labels=TEST_LABELS, pool="test", direct=direct)
    assert time.monotonic() - started < 10


def test_extra_mounts_are_the_users_executable_dirs_on_a_read_only_root() -> None:
    spec = SandboxSpec(mounts=("/app", "/logs"))
    with DockerSandbox(spec, labels=TEST_LABELS, pool="test") as box:
        box.write_file("/app/run.sh", "#!/bin/sh\necho ran\n", 0o755)
        result = box.run_shell("/app/run.sh && touch /logs/x && stat -c %u /app /logs && id -u; touch /etc/x")
        ran, app_uid, logs_uid, me = result.stdout.split()
        assert ran == "ran" and app_uid == logs_uid == me
        assert "Read-only file system" in result.stderr
        assert box.run_shell("cp /bin/true /workspace/t && /workspace/t").exit_code != 0  # the work dir stays noexec


@pytest.mark.parametrize("mounts", [("relative",), ("/",), ("/tmp",), ("/workspace",), ("/a/../b",), ("/a", "/a")])
def test_bad_mounts_are_refused_before_any_container(mounts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="SandboxSpec.mounts"):
        DockerSandbox(SandboxSpec(mounts=mounts), labels=TEST_LABELS, pool="test")


def test_local_sandbox_refuses_mounts() -> None:
    from agentgym.sandboxes.local_sandbox import LocalSandbox

    with pytest.raises(ConfigError, match="needs the Docker backend"):
        LocalSandbox(SandboxSpec(mounts=("/app",)))
