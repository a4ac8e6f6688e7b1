"""More hostile code on both backends, beyond test_adversarial.py and the regressions in
test_isolation.py: debugging and core-dump tricks, kernel interfaces with per-uid limits, /proc
writes, argument and descriptor exhaustion, new namespaces, the clock. Each attack must fail
inside the sandbox (a result, never an exception) and leave it, and its neighbours, working."""

from __future__ import annotations

import pytest
from support import BACKENDS_LOCAL_AS_ROOT

from agentgym.sandboxes import BaseSandbox


def assert_usable(box: BaseSandbox) -> None:
    assert box.ping()["strays"] == 0
    result = box.run_python("print(6 * 7)")
    assert result.ok and result.stdout == "42\n", result


def test_no_core_dumps_and_the_limit_cannot_be_raised(box: BaseSandbox) -> None:
    code = ("import os, resource\ntry:\n    resource.setrlimit(resource.RLIMIT_CORE, (1 << 30, 1 << 30))\n"
            "    print('raised')\nexcept (ValueError, OSError):\n    print('kept', resource.getrlimit(resource.RLIMIT_CORE))\n"
            "import sys; sys.stdout.flush()\nos.abort()")
    result = box.run_python(code)
    assert result.stdout == "kept (0, 0)\n" and result.exit_code == -6, result
    assert box.run_shell("ls -A").stdout == "", "a core file was written"
    assert_usable(box)


def test_proc_and_sys_writes_are_denied(box: BaseSandbox) -> None:
    targets = ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/proc/sys/vm/drop_caches",
               "/proc/1/oom_score_adj", "/sys/kernel/mm/transparent_hugepage/enabled"]
    code = (f"for path in {targets!r}:\n    try:\n        open(path, 'w').write('1')\n        print(path, 'WRITTEN')\n"
            "    except OSError:\n        print(path, 'denied')\n"
            "print('oom', open('/proc/self/oom_score_adj').read().strip())")
    result = box.run_python(code)
    assert "WRITTEN" not in result.stdout and result.stdout.count("denied") == len(targets), result
    assert result.stdout.endswith("oom 1000\n")  # user code starts as the OOM killer's first choice
    assert_usable(box)


def test_the_clock_cannot_be_set(box: BaseSandbox) -> None:
    code = ("import time\nfor clock in (time.CLOCK_REALTIME,):\n    try:\n        time.clock_settime(clock, 0)\n"
            "        print('set')\n    except PermissionError:\n        print('denied')")
    assert box.run_python(code).stdout == "denied\n"
    shell = box.run_shell("date -s '2001-01-01 00:00:00'")
    assert shell.exit_code != 0 and "2001" not in box.run_shell("date +%Y").stdout
    assert_usable(box)


def test_huge_argv_env_and_source(box: BaseSandbox) -> None:
    shell = box.run_shell("echo " + "a" * (3 << 20))  # past one exec argument's limit: refused, a result
    assert shell.exit_code == 126 and "at most" in shell.error, shell
    env = box.run_python("import os\nos.execve('/bin/true', ['true'], {'X': 'y' * (3 << 20)})")
    assert env.exit_code == 1 and "Argument list too long" in env.stderr
    big = box.run_python("s = '" + "a" * (8 << 20) + "'\nprint(len(s))")  # 8 MB of source is just code
    assert big.ok and big.stdout == f"{8 << 20}\n"
    assert_usable(box)


def test_descriptor_exhaustion_stays_in_its_process(box: BaseSandbox) -> None:
    code = ("import os\nfds = []\ntry:\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e:\n    print(e.errno, len(fds) > 500)")
    assert box.run_python(code, session=True).stdout == "24 True\n"  # EMFILE, held by the session
    assert box.run_shell("echo fine").stdout == "fine\n"
    assert box.run_python("print(len(fds) > 500)", session=True).stdout == "True\n"
    assert_usable(box)


def test_per_uid_kernel_limits_are_per_sandbox(make_box) -> None:  # noqa: ANN001
    """inotify instances are counted per uid across the host: one sandbox's session holding
    them all must not starve another sandbox (each has its own uid)."""
    hog, other = make_box(), make_box()
    code = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nheld = []\nwhile True:\n"
            "    fd = libc.inotify_init()\n    if fd < 0:\n        break\n    held.append(fd)\n"
            "print(len(held) > 0, ctypes.get_errno())")
    assert hog.run_python(code, session=True).stdout.startswith("True")
    fine = other.run_python("import ctypes\nprint(ctypes.CDLL(None).inotify_init() >= 0)")
    assert fine.stdout == "True\n", fine
    assert_usable(hog)


def test_new_namespaces_die_with_the_call_and_reach_nothing(box: BaseSandbox) -> None:
    """``unshare`` is either refused or yields a namespace that is only the sandbox again: its
    processes are still the call's, killed when it ends, and it can read nothing new."""
    code = ("import subprocess\n"
            "r = subprocess.run(['unshare', '-Urm', 'sh', '-c', 'id -u; cat /etc/shadow'], capture_output=True, text=True)\n"
            "print('shadow', 'root:' in r.stdout)\n"
            "subprocess.Popen(['unshare', '-Urpf', 'sh', '-c', 'sleep 300'])\n"
            "subprocess.Popen(['unshare', '-Ur', 'sh', '-c', 'sleep 300 & exec sleep 300'], start_new_session=True)\n"
            "import time; time.sleep(0.3)\nprint('done')")
    result = box.run_python(code, timeout=10)
    assert result.stdout == "shadow False\ndone\n", result
    assert_usable(box)  # strays == 0: the processes in the nested namespaces were killed


@BACKENDS_LOCAL_AS_ROOT
@pytest.mark.parametrize("target", ["parent", "session"])
def test_code_cannot_stop_or_trace_its_session_keeper(box: BaseSandbox, target: str) -> None:
    """The session process is the user's own (it may signal it: that ends the session); the
    executor is not, whatever the call tries from inside or outside the session."""
    code = ("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGSTOP); print('stopped')\n"
            "except PermissionError:\n    print('denied')")
    result = box.run_python(code, session=target == "session", timeout=3)
    assert result.stdout == "denied\n" and not result.timed_out, result
    assert_usable(box)


# x86_64 numbers (the aarch64 run checks the same calls by name through the filter's own table)
KERNEL_INTERFACES = {
    "unshare(NEWUSER)": "libc.unshare(0x10000000)",
    "unshare(NEWTIME)": "libc.unshare(0x80)",
    "clone(NEWUSER|NEWNS)": "libc.syscall(56, 0x10020000 | 17, 0, 0, 0, 0)",
    "setns": "libc.setns(os.open('/proc/self/ns/mnt', os.O_RDONLY), 0)",
    "mount tmpfs": "libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=8g')",
    "fsopen": "libc.syscall(430, b'tmpfs', 0)",
    "userfaultfd": "libc.syscall(323, 0)",
    "userfaultfd user-mode": "libc.syscall(323, 1)",
    "io_uring_setup": "libc.syscall(425, 8, ctypes.create_string_buffer(120))",
    "perf_event_open": "libc.syscall(298, ctypes.create_string_buffer(128), 0, -1, -1, 0)",
    "bpf": "libc.syscall(321, 0, ctypes.create_string_buffer(128), 128)",
    "add_key": "libc.syscall(248, b'user', b'k', b'v', 1, -2)",
    "keyctl": "libc.syscall(250, 0, -2, 1)",
    "personality(ADDR_NO_RANDOMIZE)": "libc.personality(0x0040000)",
    "personality(READ_IMPLIES_EXEC)": "libc.personality(0x0400000)",
    "x32 unshare": "libc.syscall(0x40000000 | 272, 0x10000000)",
    "settimeofday": "libc.settimeofday(ctypes.create_string_buffer(16), None)",
    "clock_settime": "libc.clock_settime(0, ctypes.create_string_buffer(16))",
    "sethostname": "libc.sethostname(b'x', 1)",
    "reboot": "libc.reboot(0x4321fedc)",
}


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="raw x86_64 syscall numbers")
def test_kernel_interfaces_with_escapes_are_refused(box: BaseSandbox) -> None:
    """Namespaces and mounts (a user namespace makes code root of it, free to mount a tmpfs no
    limit covers), userfaultfd, io_uring, perf events, bpf, keyrings, personality flags, the x32
    ABI, the clock, the host name: each call fails (-1), the sandbox carries on."""
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            + "".join(f"print({name!r}, {call}, ctypes.get_errno())\n" for name, call in KERNEL_INTERFACES.items())
            + "import threading\nt = threading.Thread(target=print, args=('thread ok',))\nt.start()\nt.join()\n"
            "print('personality query', libc.personality(0))\n")
    result = box.run_python(code, timeout=10)
    lines = dict(line.rsplit(" ", 2)[0:1] + [line.rsplit(" ", 2)[1:]] for line in result.stdout.splitlines()[:-2])
    assert set(lines) == set(KERNEL_INTERFACES), result
    allowed = {name: got for name, got in lines.items() if got[0] != "-1"}
    assert not allowed, allowed
    assert result.stdout.splitlines()[-2:] == ["thread ok", "personality query 0"], result  # clone3's ENOSYS: libc falls back
    assert box.ping()["seccomp"] is True or box.backend == "docker"
    assert_usable(box)


def test_a_process_can_trace_its_own_children_but_not_escape_the_call(box: BaseSandbox) -> None:
    """ptrace stays allowed within the call (debuggers, strace); the tracee dies with the call."""
    code = ("import ctypes, os, signal, time\nlibc = ctypes.CDLL(None, use_errno=True)\npid = os.fork()\n"
            "if pid == 0:\n    time.sleep(300)\n    os._exit(0)\n"
            "print('attach', libc.ptrace(16, pid, 0, 0))\nos.waitpid(pid, 0)\nprint('detach', libc.ptrace(17, pid, 0, 0))")
    result = box.run_python(code, timeout=5)
    assert result.stdout == "attach 0\ndetach 0\n", result
    assert_usable(box)
