"""Hostile code against both backends (Docker and LocalSandbox): the sandbox must contain it,
report it as the user's failure (never an exception), and stay usable afterwards."""

from __future__ import annotations

import errno
import socket
import threading
import time
from pathlib import Path

import pytest

from agentgym.sandboxes import BaseSandbox, SandboxCrashed, SandboxError, SandboxSpec


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


# -- issue 22: memory outside the address space, special files, symlinks, deadlines, exit codes --

MEMFD_HOARD = ("import os\nheld = 0\nfds = []\ntry:\n    while held < 768:\n        fd = os.memfd_create('hoard')\n"
               "        fds.append(fd)\n        for _ in range(4):\n            os.write(fd, b'x' * (8 << 20))\n"
               "            held += 8\nexcept OSError as e:\n    print('refused', e.errno)\nprint('held', held)")
SHM_HOARD = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
             "held = 0\nwhile held < 768:\n    sid = libc.shmget(0, 64 << 20, 0o1600)\n    if sid < 0:\n"
             "        print('refused', ctypes.get_errno())\n        break\n    addr = libc.shmat(sid, None, 0)\n"
             "    ctypes.memset(addr, 1, 64 << 20)\n    libc.shmdt(ctypes.c_void_p(addr))\n    held += 64\nprint('held', held)")
TMPFS_HOARD = ("unshare -Urm sh -c 'mount -t tmpfs -o size=8g none /mnt && echo mounted && "
               "for i in 1 2 3 4 5 6 7 8; do head -c 33554432 /dev/zero > /mnt/$i || exit 1; done; echo held 256'")


@pytest.mark.parametrize("attack", ["memfd", "sysv_shm", "userns_tmpfs"])
def test_memory_outside_the_address_space_is_bounded(make_box, attack: str) -> None:  # noqa: ANN001
    """memfd files, SysV shared memory and a tmpfs mounted in a new user namespace are RAM that
    RLIMIT_AS does not count: LocalSandbox held 768 MiB of memfd with memory_mb=128. Now the code
    is refused (LocalSandbox: seccomp) or OOM-killed (Docker: its memory cgroup)."""
    box = make_box(memory_mb=128, pids=64, workdir_mb=32, tmp_mb=16)
    if attack == "userns_tmpfs":
        result = box.run_shell(TMPFS_HOARD, timeout=30)
        assert "mounted" not in result.stdout and not result.ok, result
    else:
        result = box.run_python(MEMFD_HOARD if attack == "memfd" else SHM_HOARD, timeout=30)
        assert "held 768" not in result.stdout, result
        assert result.stdout.startswith("refused 1") or result.exit_code == -9, result
    if box.backend == "docker" and attack == "sysv_shm":
        return  # segments outlive their process in the container's IPC namespace (its own memory)
    assert_clean_and_usable(box)


SPECIAL_FILES = ("import os, socket\nos.mkfifo('fifo')\ns = socket.socket(socket.AF_UNIX)\ns.bind('sock')\n"
                 "os.symlink('/dev/zero', 'zero')\nos.symlink('fifo', 'to_fifo')\nos.mkdir('dir')\n"
                 "with open('sparse', 'wb') as f:\n    try:\n        f.truncate(1 << 40)\n    except OSError:\n"
                 "        f.truncate(1 << 20)\n")


def test_special_files_are_refused_at_once(box: BaseSandbox) -> None:
    """A FIFO made by user code hung read_file/write_file for the whole grace period, then the
    sandbox was dead (SandboxTimeout, then SandboxCrashed): an infra failure the model chose.
    Every non-regular file is now refused at once with an OSError."""
    assert box.run_python(SPECIAL_FILES).ok
    for path in ["fifo", "sock", "zero", "to_fifo", "dir"]:
        for op in ("read", "write"):
            started = time.monotonic()
            with pytest.raises(OSError) as info:
                box.read_file(path) if op == "read" else box.write_file(path, "x")
            assert time.monotonic() - started < 2, (path, op)
            assert not isinstance(info.value, SandboxError)
            assert path == "zero" or "not a regular file" in str(info.value) or info.value.errno == errno.EISDIR
    # a FIFO with a reader (a session holds it open) is refused too, not written into
    box.run_python("import os\nr = os.open('fifo', os.O_RDONLY | os.O_NONBLOCK)", session=True)
    with pytest.raises(OSError, match="FIFO"):
        box.write_file("fifo", "x" * (1 << 20))
    size = int(box.run_shell("stat -c %s sparse").stdout)
    if size > 64 << 20:  # a sparse file past the read cap fails at once, without reading it
        started = time.monotonic()
        with pytest.raises(OSError) as info:
            box.read_file("sparse")
        assert info.value.errno == errno.EFBIG and time.monotonic() - started < 2
    else:
        assert box.read_file("sparse") == b"\0" * size
    assert_clean_and_usable(box)


ESCAPE_LINKS = ("import os\nos.symlink('/proc/self/status', 'status')\nos.symlink('/proc/self', 'self')\n"
                "os.symlink('/', 'root')\nos.symlink('../..', 'up')\nos.symlink('/tmp', 'tmp')\n"
                "os.symlink('real.txt', 'alias')\nos.mkdir('sub')\nos.symlink('../real.txt', 'sub/back')\n"
                "open('real.txt', 'w').write('inside')\n"
                "try:\n    os.link('/etc/passwd', 'passwd')\n    print('linked')\nexcept OSError as e:\n"
                "    print('link', e.errno)\n"
                "try:\n    os.symlink('/proc/self/environ', '/tmp/evil')\nexcept OSError:\n    pass")


def test_host_file_operations_never_follow_a_symlink_out_of_the_work_dir(box: BaseSandbox) -> None:
    """read_file followed a user's symlink into the executor's own /proc/self (its memory map
    and status, which user code cannot read). Symlinks inside the work dir still work."""
    made = box.run_python(ESCAPE_LINKS)
    assert made.ok and made.stdout.startswith("link "), made  # no hard link across filesystems
    for path in ["status", "self/status", "self/maps", "root/etc/passwd", "up/etc/passwd", "tmp/evil", "../x",
                 "/tmp/evil"]:
        with pytest.raises(OSError) as info:
            box.read_file(path)
        assert info.value.errno in (errno.EXDEV, errno.ELOOP, errno.ENOENT, errno.EACCES), (path, info.value)
    for path in ["tmp/planted", "self/x", "up/planted", "root/tmp/planted"]:
        with pytest.raises(OSError):
            box.write_file(path, "x")
    assert box.run_shell("ls /tmp/planted /planted 2>/dev/null").stdout == ""
    assert box.read_file("alias") == box.read_file("sub/back") == box.read_file(f"{box.workdir}/alias") == b"inside"
    box.write_file("alias", "through a link inside")
    assert box.read_file("real.txt") == b"through a link inside"
    box.write_file("new/deeper/file.txt", "made")
    assert box.run_shell("cat new/deeper/file.txt").stdout == "made"
    assert_clean_and_usable(box)


PY_FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def test_a_fork_bomb_ends_within_a_second_of_its_timeout(box: BaseSandbox) -> None:
    """The bomb's processes left the executor a 1/pids share of the CPU: it saw the deadline late
    and swept slowly (timeout 1 s took up to 6 s). Now a call about to time out is reniced and
    the sweep starts with one kill(-1) as the user's uid."""
    niceness = "import os\nprint(os.nice(0))"
    before = box.run_python(niceness).stdout  # the sandbox's own niceness (a suite run under `nice` passes it on)
    walls = []
    for _ in range(10):
        started = time.monotonic()
        result = box.run_python(PY_FORK_BOMB, timeout=1.0)
        walls.append(time.monotonic() - started)
        assert result.timed_out
    assert max(walls) < 2.0, walls
    assert box.run_python(niceness).stdout == before  # neither a fresh call nor its executor stays reniced
    assert_clean_and_usable(box)


BROKEN_STREAMS = {
    "closed fds": ("import os\nos.close(1)\nos.close(2)\nraise ValueError('after closing')", 1),
    "socket on 1 and 2, raise": ("import os, socket\ns = socket.socket()\nos.dup2(s.fileno(), 1)\n"
                                 "os.dup2(s.fileno(), 2)\nraise ValueError('x')", 1),
    "dead socket on 1 and 2, print": ("import os, socket\na, b = socket.socketpair()\nos.dup2(a.fileno(), 1)\n"
                                      "os.dup2(a.fileno(), 2)\nb.close()\nprint('x')", 1),
    "dead socket on 1 and 2, exit 5": ("import os, socket, sys\na, b = socket.socketpair()\nos.dup2(a.fileno(), 1)\n"
                                       "os.dup2(a.fileno(), 2)\nb.close()\ntry:\n    print('x')\nexcept OSError:\n"
                                       "    sys.exit(5)", 5),
    "exit with a message, stderr closed": ("import os, sys\nos.close(2)\nsys.exit('bye')", 1),
}


@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize("case", sorted(BROKEN_STREAMS))
def test_code_that_breaks_its_own_streams_gets_its_own_exit_code(box: BaseSandbox, case: str, session: bool) -> None:
    """A cell that raised after closing fds 1 and 2 reported exit 0 (and ended the session);
    a socket on fd 1 gave 126 (the executor's own failure code) instead of the code's status."""
    code, expected = BROKEN_STREAMS[case]
    result = box.run_python(code, session=session)
    assert result.exit_code == expected and not result.error, result
    if session:  # the session lives on (its own streams stay as the code left them)
        assert box.run_python("x = 1", session=True).ok and "ended" not in result.stderr
    assert_clean_and_usable(box)


def test_an_oversize_shell_command_is_a_clear_result(box: BaseSandbox) -> None:
    """A 3 MB command gave exit 126, an empty ``error`` and the executor's internal traceback."""
    result = box.run_shell("echo " + "a" * (3 << 20))
    assert result.exit_code == 126 and "at most" in result.error and "Traceback" not in result.stderr, result
    fits = box.run_shell("echo " + "a" * 100_000 + " | wc -c")
    assert fits.stdout.strip() == "100001"
    assert_clean_and_usable(box)


@pytest.mark.parametrize("timeout", [0, -10, 5e9, float("nan"), float("inf"), "1", True])
def test_a_bad_timeout_is_a_value_error(box: BaseSandbox, timeout: object) -> None:
    """5e9 raised a bare OverflowError, -10 a SandboxError (local) and 0 ran and 'timed out'."""
    with pytest.raises(ValueError, match="timeout"):
        box.run_python("print(1)", timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        box.run_shell("true", timeout=timeout)
    assert_clean_and_usable(box)


def test_a_bad_spec_timeout_is_a_value_error(make_box) -> None:  # noqa: ANN001
    box = make_box(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        box.run_python("print(1)")
    assert box.run_python("print(1)", timeout=5).stdout == "1\n"
