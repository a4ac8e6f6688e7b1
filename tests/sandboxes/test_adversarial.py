"""Hostile code against both backends (Docker and LocalSandbox): the sandbox must contain it,
report it as the user's failure (never an exception), and stay usable afterwards."""

from __future__ import annotations

import errno
import socket
import threading
import time
from pathlib import Path

import pytest

from agentgym.sandboxes import BaseSandbox, SandboxCrashed, SandboxSpec


def assert_clean_and_usable(box: BaseSandbox) -> None:
    assert box.ping()["strays"] == 0, "a process of an earlier call survived"
    result = box.run_python("print(6 * 7)")
    assert result.ok and result.stdout == "42\n"


def test_infinite_loop_times_out_and_is_killed(box: BaseSandbox) -> None:
    started = time.monotonic()
    result = box.run_python("while True:\n    pass", timeout=1.0)
    assert result.timed_out and result.exit_code == -9 and not result.ok
    assert time.monotonic() - started < 5
    assert_clean_and_usable(box)


@pytest.mark.parametrize("language", ["python", "shell"])
def test_fork_bomb_is_contained(box: BaseSandbox, language: str) -> None:
    if language == "python":
        result = box.run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
                                timeout=2.0)
    else:
        result = box.run_shell("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=2.0)
    # The top shell may itself fail to fork `sleep` once the bomb holds every slot (exit 2).
    assert result.timed_out or (language == "shell" and result.exit_code == 2 and "fork" in result.stderr)
    assert_clean_and_usable(box)


def test_memory_bomb_fails_the_call_not_the_sandbox(box: BaseSandbox) -> None:
    result = box.run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))", timeout=20)
    assert not result.ok and not result.timed_out
    # Docker: the cgroup OOM killer takes the call (-9); local: RLIMIT_AS raises MemoryError (1).
    assert result.exit_code == -9 or "MemoryError" in result.stderr
    assert_clean_and_usable(box)


def test_output_flood_is_capped_at_the_source(make_box) -> None:  # noqa: ANN001
    box = make_box(max_output=64 << 10)
    result = box.run_python("import sys\nsys.stdout.write('x' * (8 << 20))\nsys.stderr.write('e' * 100)")
    assert result.ok and result.stdout_truncated and not result.stderr_truncated
    assert result.stdout == "x" * (64 << 10) and result.stderr == "e" * 100
    flood = box.run_python("while True:\n    print('y' * 4096)", timeout=1.0)
    assert flood.timed_out and flood.truncated and len(flood.stdout) == 64 << 10
    assert_clean_and_usable(box)


def test_disk_fill_hits_the_cap(box: BaseSandbox) -> None:
    code = ("import errno\nwritten = 0\ntry:\n    with open('fill', 'wb') as f:\n        while True:\n"
            "            f.write(b'0' * (1 << 20)); f.flush(); written += 1\n"
            "except OSError as e:\n    print(written, e.errno)")
    result = box.run_python(code, timeout=30)
    written, err = map(int, result.stdout.split())
    assert err in (errno.ENOSPC, errno.EFBIG) and written <= 32 + 1  # box has workdir_mb=32
    root = box.run_shell("echo x > /usr/owned")
    assert root.exit_code != 0 and "Read-only file system" in root.stderr
    assert_clean_and_usable(box)


@pytest.fixture
def host_server() -> tuple[str, int]:
    """A TCP server on every host interface; returns an address of the host that a container on
    Docker's bridge (or a process sharing the host's network) can reach."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.sendall(b"hello from the host")
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("172.17.0.1", 9))  # picks the docker0 address when there is a bridge
        address = probe.getsockname()[0]
    finally:
        probe.close()
    yield address, server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = ("import socket\ntry:\n    s = socket.create_connection(({host!r}, {port}), timeout=3)\n"
           "    print('connected', s.recv(100).decode())\nexcept OSError as e:\n    print('blocked', e)")


def test_network_egress_is_blocked_unless_opted_in(make_box, host_server) -> None:  # noqa: ANN001
    host, port = host_server
    blocked = make_box().run_python(CONNECT.format(host=host, port=port))
    assert blocked.stdout.startswith("blocked"), blocked
    dns = make_box().run_python(CONNECT.format(host="example.com", port=80))
    assert dns.stdout.startswith("blocked")
    allowed = make_box(network=True).run_python(CONNECT.format(host=host, port=port))
    assert allowed.stdout.startswith("connected hello from the host"), allowed  # the test can fail


ESCAPES = """
import os, subprocess, time
subprocess.Popen(["sleep", "300"], start_new_session=True)           # setsid
if os.fork() == 0:                                                    # double fork
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.5)
        open("escaped", "w").write("still alive")
        os._exit(0)
    os._exit(0)
time.sleep(0.2)
print("parent done")
"""


@pytest.mark.parametrize("timeout", [False, True])
def test_setsid_and_double_fork_escapes_die_with_the_call(box: BaseSandbox, timeout: bool) -> None:
    code = ESCAPES + ("while True:\n    pass\n" if timeout else "")
    result = box.run_python(code, timeout=1.0 if timeout else 10)
    assert result.stdout == "parent done\n" and result.timed_out is timeout
    assert box.ping()["strays"] == 0
    time.sleep(2.0)
    assert box.run_shell("test -e escaped").exit_code == 1, "the double-forked daemon survived the call"
    assert_clean_and_usable(box)


def test_host_files_are_out_of_reach(box: BaseSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    code = (f"import os\nfor p in [{str(secret)!r}, '/var/run/docker.sock', '/run/docker.sock']:\n"
            "    print(p, os.path.exists(p))\n"
            "print('host pids', [p for p in os.listdir('/proc') if p.isdigit() and int(p) > 50000][:3])\n"
            "for p in ['/etc/shadow', '/root/.bash_history']:\n"
            "    try:\n        open(p).read(); print(p, 'READ')\n    except OSError as e:\n        print(p, 'denied')")
    out = box.run_python(code).stdout
    assert f"{secret} False" in out and "docker.sock True" not in out and "READ" not in out, out
    # only the sandbox's own processes are visible (a fresh PID namespace)
    pids = box.run_python("import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))")
    assert int(pids.stdout) < 10


def test_killed_mid_call_is_a_typed_infra_error(box: BaseSandbox, docker_client_or_none) -> None:  # noqa: ANN001
    box.grace = 5.0

    def kill_soon() -> None:
        time.sleep(0.5)
        if box.backend == "docker":
            docker_client_or_none.api.kill(box.container_id)
        else:
            box._proc.kill()

    killer = threading.Thread(target=kill_soon)
    killer.start()
    with pytest.raises(SandboxCrashed) as info:
        box.run_python("import time\ntime.sleep(30)", timeout=20)
    killer.join()
    assert "exit" in str(info.value) or "closed" in str(info.value)
    with pytest.raises(SandboxCrashed):
        box.run_python("print(1)")
    box.close()
    box.close()  # idempotent


@pytest.fixture
def docker_client_or_none(backend: str, request: pytest.FixtureRequest):  # noqa: ANN201
    return request.getfixturevalue("docker_client") if backend == "docker" else None


def test_spec_limits_reach_the_sandbox(make_box) -> None:  # noqa: ANN001
    box = make_box(SandboxSpec(pids=40, memory_mb=300))
    result = box.run_python("import os\nprint(os.getuid() != 0, os.getcwd())")
    assert result.stdout == f"True {box.workdir}\n"
