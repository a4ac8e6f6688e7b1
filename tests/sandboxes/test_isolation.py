"""Regression tests for the isolation gaps an adversarial review found (issue 11, failures 1-6),
on both backends: each case was reproduced against the old code before it was fixed."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest
from support import BACKENDS_LOCAL_AS_ROOT

from agentgym.sandboxes import BaseSandbox, ExecResult

# Threads until the process limit stops them (Docker: the pids cgroup; local: RLIMIT_NPROC).
THREAD_BOMB = ("import threading\nthreading.stack_size(65536)\ne = threading.Event()\nn = 0\ntry:\n"
               "    while True:\n        threading.Thread(target=e.wait, daemon=True).start()\n        n += 1\n"
               "except RuntimeError:\n    pass\nprint(n > 10)")


def assert_usable(box: BaseSandbox) -> None:
    assert box.ping()["strays"] == 0
    result = box.run_python("print(6 * 7)")
    assert result.ok and result.stdout == "42\n", result
    shell = box.run_shell("echo ok")
    assert shell.ok and shell.stdout == "ok\n", shell


def test_a_thread_bomb_in_one_sandbox_leaves_the_others_working(make_box) -> None:  # noqa: ANN001
    """Failure 1: LocalSandboxes shared one uid, so RLIMIT_NPROC was shared too."""
    a, b = make_box(pids=64), make_box(pids=64)
    bomb = a.run_python(THREAD_BOMB + "\nimport time\ntime.sleep(60)", timeout=3)  # b works *while* it runs
    assert bomb.timed_out
    a.run_python(THREAD_BOMB, session=True)
    assert_usable(b)
    assert_usable(a)


def test_an_exhausted_process_limit_is_a_result_not_an_exception(make_box) -> None:  # noqa: ANN001
    """Failure 2: after a session cell left threads behind, every call raised BlockingIOError."""
    box = make_box(pids=64)
    cell = box.run_python(THREAD_BOMB, session=True)
    assert isinstance(cell, ExecResult) and cell.stdout == "True\n"
    assert "[sandbox]" in cell.stderr  # the threads were stopped, or the session ended: said so
    for result in (box.run_python("print(1)"), box.run_shell("echo 1"), box.run_python("print(1)", session=True)):
        assert isinstance(result, ExecResult) and result.ok and result.stdout == "1\n", result


@pytest.mark.docker
def test_a_call_with_no_process_slot_left_is_a_typed_result(docker_client, sandbox_image, test_labels) -> None:  # noqa: ANN001
    """Failure 2, the refusal itself: with pids=3 (docker-init, the executor, the session) a plain
    call cannot fork. It comes back as an ExecResult with ``error`` set, never an OSError."""
    from agentgym.sandboxes import SandboxSpec
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    with DockerSandbox(SandboxSpec(image=sandbox_image, pids=3), labels=test_labels, pool="test") as box:
        assert box.run_python("x = 1", session=True).ok
        refused = box.run_python("print(1)")
        assert isinstance(refused, ExecResult) and not refused.ok and refused.exit_code == 126
        assert "process limit" in refused.error and refused.error in refused.stderr
        assert box.run_python("print(x)", session=True).stdout == "1\n"  # the session is unharmed
        box.reset_session()
        assert box.run_python("print(2)").stdout == "2\n"


LATE_WRITER = ("import threading, time, sys\nx = 41\n"
               "def late():\n    time.sleep(0.3)\n    print('LEAK')\n    sys.stderr.write('LEAK\\n')\n"
               "    import os\n    os.write(1, b'RAW LEAK\\n')\n"
               "threading.Thread(target=late).start()\nprint('cell1')")


def test_session_threads_end_with_their_cell(box: BaseSandbox) -> None:
    """Failure 3: a session thread printed after its call and the output landed in the next call."""
    first = box.run_python(LATE_WRITER, session=True)
    assert first.ok and first.stdout == "cell1\n"
    assert "thread(s) running; they were stopped" in first.stderr
    second = box.run_python("import time\ntime.sleep(0.8)\nx += 1\nprint('cell2', x)", session=True)
    assert second.stdout == "cell2 42\n" and "LEAK" not in second.stderr, second  # variables kept, no leak
    third = box.run_python("import threading\nprint(threading.active_count())", session=True)
    assert third.stdout == "1\n"


@BACKENDS_LOCAL_AS_ROOT
def test_user_code_cannot_signal_trace_or_freeze_the_executor(box: BaseSandbox) -> None:
    """Failure 4: code and executor shared a uid, so SIGSTOP to the executor froze the sandbox."""
    code = ("import ctypes, os, signal\nppid = os.getppid()\n"
            "for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM):\n"
            "    try:\n        os.kill(ppid, sig); print('signalled')\n"
            "    except PermissionError:\n        print('denied')\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "print('ptrace', libc.ptrace(16, ppid, 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH -> EPERM
            "try:\n    open(f'/proc/{ppid}/mem', 'rb'); print('mem open')\n"
            "except OSError as e:\n    print('mem', e.errno)\n"
            "try:\n    os.kill(1, signal.SIGKILL); print('init signalled')\nexcept PermissionError:\n    print('denied')")
    result = box.run_python(code, timeout=2)
    assert result.stdout == "denied\ndenied\ndenied\nptrace -1 1\nmem 13\ndenied\n", result
    killall = box.run_python("import os, signal, subprocess\np = subprocess.Popen(['sleep', '30'])\n"
                             "os.kill(-1, signal.SIGKILL)\nprint(p.wait())", timeout=5)
    assert killall.stdout == "-9\n" and not killall.timed_out  # its own processes died, nothing else
    assert_usable(box)


SPARE_ATTACK = (
    "import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\nppid = os.getppid()\n"
    "def parent(pid):\n    with open(f'/proc/{pid}/stat') as f:\n        return int(f.read().rsplit(')', 1)[1].split()[1])\n"
    "spares = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid() and parent(p) == ppid]\n"
    "print(len(spares))\n"
    "for pid in spares:\n"
    "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
    "        try:\n            os.kill(pid, sig); print('signalled')\n"
    "        except PermissionError:\n            print('denied')\n"
    "    print('ptrace', libc.ptrace(16, pid, 0, 0), ctypes.get_errno())\n"
    "    try:\n        os.listdir(f'/proc/{pid}/fd'); print('fds listed')\n"
    "    except PermissionError:\n        print('fds denied')\n")


@BACKENDS_LOCAL_AS_ROOT
def test_the_process_forked_for_the_next_call_is_out_of_reach(box: BaseSandbox) -> None:
    """The executor forks the next call's process ahead of the call. While it waits it keeps
    the executor's uid and is not dumpable: a session cell (running beside it) can neither
    stop, kill, trace nor read it, and the next call still runs in it, fresh."""
    box.run_python("x = 1")
    _wait_for_spare(box)
    result = box.run_python(SPARE_ATTACK, session=True, timeout=5)
    assert result.stdout == "1\ndenied\ndenied\nptrace -1 1\nfds denied\n", result
    calls = [box.run_python("import os\nprint(os.getpid(), 'x' in globals())", timeout=5) for _ in range(3)]
    assert all(call.ok and not call.timed_out for call in calls), calls
    pids = [call.stdout.split()[0] for call in calls]
    assert len(set(pids)) == 3 and {call.stdout.split()[1] for call in calls} == {"False"}  # one process per call
    assert_usable(box)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _wait_for_spare(box: BaseSandbox) -> int:
    """The spare's pid, once the executor (idle since its last answer) has forked it."""
    if box.backend == "docker":
        outer = box.client.api.inspect_container(box.container_id)["State"]["Pid"]  # docker-init
    else:
        outer = box._proc.pid  # unshare
    (executor,) = _children(outer)
    for _ in range(500):
        spares = _children(executor)  # no session: the executor's only child is the spare
        if spares:
            break
        time.sleep(0.01)
    (spare,) = spares
    return spare


@BACKENDS_LOCAL_AS_ROOT
def test_a_spare_that_died_while_waiting_is_replaced(box: BaseSandbox) -> None:
    """The spare is the OOM killer's first choice even while it waits: if it is gone when its
    call comes, the call forks a process of its own instead of failing."""
    box.run_python("x = 1")
    spare = _wait_for_spare(box)
    os.kill(spare, signal.SIGKILL)
    for _ in range(500):  # dead: a zombie until the executor's next sweep
        with open(f"/proc/{spare}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    result = box.run_python("print(6 * 7)")
    assert result.ok and result.stdout == "42\n", result
    assert_usable(box)


def test_filling_the_work_dir_leaves_the_executor_and_memory_alone(make_box) -> None:  # noqa: ANN001
    """Failure 5: the work dir's tmpfs counted against the memory limit, so filling it OOM-killed
    the executor. Now files have their own budget: the disk fills, then code still gets its RAM."""
    box = make_box(memory_mb=96, workdir_mb=128, tmp_mb=16)
    fill = box.run_python("import os\nchunk = b'0' * (1 << 20)\ntry:\n    with open('fill', 'wb') as f:\n"
                          "        while True:\n            f.write(chunk); f.flush()\n"
                          "except OSError as e:\n    print(e.errno, os.path.getsize('fill') >> 20)", timeout=60)
    err, size_mb = map(int, fill.stdout.split())
    assert err in (errno.ENOSPC, errno.EFBIG) and 120 <= size_mb <= 128, fill
    ram = box.run_python("b = bytearray(64 << 20)\nb[::4096] = b'x' * len(b[::4096])\nprint('ok')", timeout=30)
    assert ram.ok and ram.stdout == "ok\n", ram
    assert_usable(box)


def test_the_output_cap_holds_after_decoding(make_box) -> None:  # noqa: ANN001
    """Failure 6: the cap counted raw bytes, so 1 MiB of 0xFF came back as 3 MiB of U+FFFD."""
    box = make_box(max_output=64 << 10)
    result = box.run_python("import sys\nsys.stdout.buffer.write(b'\\xff' * (1 << 20))\n"
                            "sys.stderr.buffer.write(b'\\xfe' * (1 << 20))\nraise SystemExit(3)")
    assert result.exit_code == 3 and result.stdout_truncated and result.stderr_truncated
    assert len(result.stdout.encode()) <= 64 << 10 and set(result.stdout) == {"\ufffd"}
    assert len(result.stderr.encode()) <= 64 << 10
    timed = box.run_python("import sys\nwhile True:\n    sys.stdout.buffer.write(b'\\x80' * 4096)", timeout=1)
    assert timed.timed_out and len(timed.stderr.encode()) <= 64 << 10 and "timed out" in timed.stderr
    assert len(timed.stdout.encode()) <= 64 << 10
