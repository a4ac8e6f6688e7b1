"""The in-sandbox executor: one long-lived, warm Python process per sandbox.

It is shipped as source and started as ``python3 -u -c SOURCE CONFIG_JSON`` inside a container
(DockerSandbox) or inside fresh namespaces (LocalSandbox), so any image with Python >= 3.9 works
and nothing has to be copied in. The host imports this same module for the wire format
(:func:`encode_frame`, :class:`FrameDecoder`): one definition serves both ends.

Why a resident executor: ``docker exec`` costs ~80 ms and collapses under concurrency; a
message to a process already in the container costs ~0.2 ms and a fork of a warm interpreter
~1 ms. Every call still gets a *fresh process* (one fork per call), so calls cannot see each
other's state, except in the opt-in persistent session. Once the host has left the executor
idle for 10 ms (a rollout's model turn), the next call's process is forked ahead of its call
(a "spare"): while it waits it keeps the executor's uid and is not dumpable (user code cannot
touch it), and the fork and part of its copy-on-write faults are off the call's critical path.
A caller that sends calls back to back gets a fork on demand instead, which costs less CPU.
Almost all of a call's CPU is page faults (~450 a call, ~4 us each on a VM): every page the
executor or the call's process writes after a fork is copied or re-mapped first, so the
executor compiles once before forking (``compile`` builds the AST types on its first use in a
process) and hands a call to its process as a binary frame, not JSON.

Containment of a call: the executor is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every
process a call starts stays in its process tree even after ``setsid`` or a double fork. When the
call ends (normally or on timeout) the executor freezes (SIGSTOP) and then kills (SIGKILL) every
descendant except the session process, repeating until none is left, so a fork bomb cannot
outrun it. User code runs under another uid than the executor (``config["user"]``: the executor
keeps only the capabilities to switch uid and to kill), so it cannot signal, trace or freeze
the executor; the executor is non-dumpable as well. Threads a session cell leaves running end
with the cell (the session continues in a single-threaded fork of itself), so no output or
process count outlives the call. With no session alive, a call still running 0.5 s before its
deadline is reniced to 19 (so the executor, not a fork bomb's processes, gets the CPU at the
deadline) and a sweep first kills every process of the user's uid in one ``kill(-1)`` as that
uid (a process with SIGKILL pending cannot fork). A seccomp filter,
installed once the executor is set up and so inherited by every call, refuses what would escape
the sandbox's limits (new namespaces, mounts, and, without a memory cgroup, memfd and SysV
shared memory) and a few risky kernel interfaces. A call the sandbox's limits leave no room for
(``fork`` failing with EAGAIN) is a result with ``error`` set, not an exception. The host's file
operations never follow a symlink out of the work dir and touch only regular files. Output is capped here, at
the source, in bytes of the decoded text, and the rest is drained and dropped.

Wire format: a 4-byte big-endian length then UTF-8 JSON, one request then one response.
Stdlib only; keep it importable (no side effects at import).
"""

from __future__ import annotations

import base64
import builtins
import ctypes
import errno
import gc
import json
import linecache
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback
import warnings

HEADER = struct.Struct(">I")
# A call as handed to its process: code length, shell (1) or python (0), CPU seconds (0: no
# limit), then the code. Not JSON: decoding JSON in a fresh fork copies ~50 pages (~0.15 ms).
CALL = struct.Struct(">IBI")
MAX_FRAME = 1 << 30
MAX_READ_FILE = 64 << 20
KILL_DEADLINE_S = 10.0
# A spare is forked only once the host has left the executor idle this long: a caller that
# sends its next call at once (back to back, or many sandboxes saturating the CPUs) gets a
# fork on demand, which costs less CPU than waking a spare gone cold (measured 5-15% a call,
# near this machine's noise), while a caller that pauses (a rollout: the model's turn) finds
# one ready (p50 ~1.8 vs ~3.9 ms without spares, calls 20 ms apart).
SPARE_AFTER_S = 0.01
YIELD_LEAD_S = 0.5  # before a call's deadline, its processes yield the CPU to the executor

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
EXECUTOR_CAPS = (CAP_KILL, CAP_SETGID, CAP_SETUID)  # all the executor needs once the jail is set up
LINUX_CAPABILITY_VERSION_3 = 0x20080522
# User code is the OOM killer's first choice. Without CAP_SYS_RESOURCE (not every engine grants
# it) this is no floor: code may lower its score back to the executor's, never below.
OOM_SCORE_ADJ = 1000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
SYS_MOUNT_SETATTR = 442  # same number on x86_64 and aarch64
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1

_libc = ctypes.CDLL(None, use_errno=True)

# -- syscall filter ----------------------------------------------------------------------
# Syscalls user code (and the executor, once set up) never needs, whose effects escape the
# sandbox's limits: new namespaces (a user namespace makes the code root of it, free to mount
# a tmpfs no limit covers), mounts, memory no limit counts where there is no memory cgroup
# (memfd, SysV shared memory: LocalSandbox only), and kernel interfaces with a long record of
# holes (userfaultfd, io_uring, perf events, bpf, keyrings). Refused with EPERM; clone3 with
# ENOSYS, so libc falls back to clone, whose flags the filter can read.
SECCOMP_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SECCOMP_DENY = {
    # unshare setns mount umount2 pivot_root userfaultfd perf_event_open bpf keyctl add_key request_key
    "x86_64": (272, 308, 165, 166, 155, 323, 298, 321, 250, 248, 249),
    "aarch64": (97, 268, 40, 39, 41, 282, 241, 280, 219, 217, 218),
}
# io_uring_setup/enter/register, open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr
SECCOMP_DENY_COMMON = (425, 426, 427, 428, 429, 430, 431, 432, 433, 442)
SECCOMP_DENY_NO_CGROUP = {"x86_64": (319, 447, 29), "aarch64": (279, 447, 194)}  # memfd_create, memfd_secret, shmget
SECCOMP_CLONE = {"x86_64": 56, "aarch64": 220}
SECCOMP_PERSONALITY = {"x86_64": 135, "aarch64": 92}
SYS_CLONE3 = 435
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # Linux (+ 32-bit uname, + UNAME26), query
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def _seccomp_program(machine: str, memory_cgroup: bool) -> bytes:
    """The classic-BPF filter (struct sock_filter[]) for this architecture."""
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    denied = SECCOMP_DENY[machine] + SECCOMP_DENY_COMMON + (() if memory_cgroup else SECCOMP_DENY_NO_CGROUP[machine])
    # (code, jt, jf, k); jumps are relative; the return block is at the end
    body = [(ld, 0, 0, 4), (jeq, 1, 0, SECCOMP_ARCH[machine]), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if machine == "x86_64":  # x32 syscall numbers
        body += [(0x35, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    checks = [(jeq, 0, 1, nr) for nr in denied]
    prog = list(body)
    for check in checks:
        prog += [check, (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, SYS_CLONE3), (ret, 0, 0, enosys)]
    # clone: refuse any CLONE_NEW* flag in its first argument (low 32 bits, little endian)
    prog += [(jeq, 0, 4, SECCOMP_CLONE[machine]), (ld, 0, 0, 16), (jset, 0, 1, CLONE_NEW_ANY),
             (ret, 0, 0, eperm), (ret, 0, 0, allow)]
    # personality: only the harmless values (as Docker's default profile)
    prog += [(jeq, 0, len(PERSONALITIES) + 2, SECCOMP_PERSONALITY[machine]), (ld, 0, 0, 16)]
    prog += [(jeq, len(PERSONALITIES) - i, 0, value) for i, value in enumerate(PERSONALITIES)]
    prog += [(ret, 0, 0, eperm), (ret, 0, 0, allow)]
    return b"".join(struct.pack("<HBBI", *insn) for insn in prog)


def _install_seccomp(memory_cgroup: bool) -> bool:
    """Filter this process's syscalls, and so every process it forks (for good: a filter cannot
    be removed). Needs no-new-privileges. False where the architecture or kernel has no filter."""
    machine = os.uname().machine
    if machine not in SECCOMP_ARCH:
        return False
    program = _seccomp_program(machine, memory_cgroup)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    fprog = SockFprog(len(program) // 8, program)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    return _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


def encode_frame(message: dict) -> bytes:
    """Serialise one message: length prefix + compact JSON."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole messages back."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        self._buf += data
        messages = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
            if len(self._buf) < HEADER.size + size:
                break
            messages.append(json.loads(bytes(self._buf[HEADER.size:HEADER.size + size])))
            del self._buf[:HEADER.size + size]
        return messages


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _read_exact(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv_frame(fd: int) -> dict:
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size))
    return json.loads(_read_exact(fd, size))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send_frame(fd: int, message: dict) -> None:
    _write_all(fd, encode_frame(message))


# -- process tree ------------------------------------------------------------------------
def _read_small(path: str) -> bytes:
    """A small /proc or cgroup file in one read (no file object: 3 syscalls instead of 8)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _proc_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (ppid, state letter) for every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = _read_small(f"/proc/{name}/stat")
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        table[int(name)] = (int(fields[1]), fields[0])
    return table


def _live_descendants(root: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            stack.append(child)
            if table[child][1] != b"Z":
                found.append(child)
    return found


OOM_EVENTS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


class _OomKills:
    """The cgroup's OOM-kill counter (v1 or v2), or -1 where it cannot be read. Read twice a
    call: the file is opened once and re-read in place (one syscall, not three or five)."""

    def __init__(self) -> None:
        self.fd = -1
        for path in OOM_EVENTS:
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                return
            except OSError:
                continue

    def __call__(self) -> int:
        try:
            data = os.pread(self.fd, 4096, 0)
        except OSError:
            return -1
        for line in data.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill":
                return int(value)
        return -1


# -- user code ---------------------------------------------------------------------------
def _exit_code_of(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:  # the code broke its own stderr: its exit status stands
        pass
    return 1


def _exec_python(source: str, namespace: dict, filename: str) -> int:
    """Run source like ``python -c`` would: traceback to stderr and exit code 1 on error."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(compile(source, filename, "exec"), namespace)
        return 0
    except SystemExit as exc:
        return _exit_code_of(exc)
    except BaseException as exc:  # the user's error is a result, not our failure
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame.f_code is _exec_python.__code__:
            tb = tb.tb_next
        try:
            traceback.print_exception(type(exc), exc, tb)
        except BaseException:  # the code closed or broke its own stderr: it still failed
            pass
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass


def _isolate(out_w: int, err_w: int, config: dict, keep_fd: int = -1) -> None:
    """First half of turning a fork into a user-code process, done before the call arrives:
    pipes on 1/2 (``keep_fd`` on 3), no other fds, the sandbox's rlimits, first in line for the
    OOM killer. The process still has the executor's uid and is not dumpable, so user code
    cannot signal, trace or read it while it waits."""
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    if keep_fd >= 0:
        os.dup2(keep_fd, 3)
    os.closerange(4 if keep_fd >= 0 else 3, 1 << 16)
    for name, value in config.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"%d" % OOM_SCORE_ADJ)
        finally:
            os.close(fd)
    except OSError:
        pass


def _become_user(config: dict, cpu_seconds: int | None) -> None:
    """Second half: the call's CPU limit and the user's uid (no capabilities left)."""
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    user = config.get("user")
    if user:
        os.setgroups([])
        os.setgid(user["gid"])
        os.setuid(user["uid"])  # from root to another uid: every capability is gone
    os.chdir(config["workdir"])
    _prctl(PR_SET_DUMPABLE, 1)  # the uid change cleared it; the user may inspect its own processes


def _call_child(out_w: int, err_w: int, req_r: int, config: dict) -> None:
    """A call's process, forked before its call: isolated, it waits for the request on fd 3
    (EOF: not needed after all), then becomes the user and runs it."""
    code = 126
    try:
        _isolate(out_w, err_w, config, keep_fd=req_r)
        # Each page this process writes first is a copy-on-write fault (~4 us here). The ctypes
        # call of _become_user and compiling and running a cell copy ~40 pages; a no-op prctl
        # (not dumpable already) and a throwaway cell copy them before the call.
        _prctl(PR_SET_DUMPABLE, 0)
        _exec_python("pass", {"__name__": "__main__", "__builtins__": builtins}, "<sandbox>")
        try:
            size, shell, cpu_seconds = CALL.unpack(_read_exact(3, CALL.size))
            source = _read_exact(3, size).decode("utf-8", "surrogatepass")
        except EOFError:
            code = 0
            return
        os.close(3)
        _become_user(config, cpu_seconds)
        if shell:
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # ignored dispositions survive exec
            try:
                os.execv("/bin/sh", ["/bin/sh", "-c", source])
            except OSError as exc:  # as a shell reports a command it cannot run
                code = 127 if exc.errno == errno.ENOENT else 126
                os.write(2, f"/bin/sh: cannot run the command: {exc.strerror}\n".encode())
                return
        sys.argv = ["-c"]
        code = _exec_python(source, {"__name__": "__main__", "__builtins__": builtins}, "<sandbox>")
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        os._exit(code)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _session_child(out_w: int, err_w: int, ctrl: int, config: dict) -> None:
    """The persistent session: runs each cell in one namespace, forever.

    A cell that leaves threads running ends them: this process forks (only the calling thread
    survives a fork), the fork carries on as the session with every variable, and this process
    reports the fork's pid and exits, taking the threads with it before the executor collects
    the call's output. Without room to fork, it just exits (the session ends).
    """
    try:
        _isolate(out_w, err_w, config, keep_fd=ctrl)
        _become_user(config, None)
        sys.argv = ["-c"]
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        cell = 0
        while True:
            request = _recv_frame(3)
            cell += 1
            reply = {"exit": _exec_python(request["code"], namespace, f"<cell {cell}>")}
            threads = _thread_count() - 1
            if threads > 0:
                reply["threads"] = threads
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
                        pid = os.fork()
                except OSError as exc:
                    reply["ended"] = exc.strerror or str(exc)
                    pid = -1
                if pid == 0:
                    continue
                if pid > 0:
                    reply["pid"] = pid
                _send_frame(3, reply)
                os._exit(0)
            _send_frame(3, reply)
    except BaseException:
        pass
    finally:
        os._exit(0)


def _spawn(pipes: int) -> tuple[int, list[int]]:
    """``pipes`` pipes, then ``os.fork``: (pid, [read, write, ...]). On failure (no process or
    fd left under the sandbox's limits) everything made so far is closed and OSError raised."""
    fds: list[int] = []
    try:
        for _ in range(pipes):
            fds += os.pipe()
        sys.stdout.flush()
        return os.fork(), fds
    except OSError:
        for fd in fds:
            os.close(fd)
        raise


class _Capture:
    """Collects output from pipes, keeping at most ``cap`` bytes per stream."""

    def __init__(self, fds: list[int], cap: int) -> None:
        self.fds = list(fds)
        self.cap = cap
        self.data = {fd: bytearray() for fd in fds}
        self.dropped = dict.fromkeys(fds, 0)
        self.open = set(fds)
        for fd in fds:
            os.set_blocking(fd, False)

    def _read(self, fd: int) -> bool:
        """Read what is there; False once the fd is at EOF or empty."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            self.open.discard(fd)
            return False
        buf = self.data[fd]
        room = max(self.cap - len(buf), 0)
        buf += chunk[:room]
        self.dropped[fd] += len(chunk) - min(room, len(chunk))
        return True

    def pump(self, deadline: float, stop_fds: list[int]) -> int | None:
        """Collect output until a stop fd is readable (returned; the first in ``stop_fds`` order
        when several are: a session's reply wins over its exit) or the deadline (None)."""
        poller = select.poll()
        for fd in self.open | set(stop_fds):
            poller.register(fd, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready = [fd for fd, _ in poller.poll(left * 1000)]
            for fd in stop_fds:
                if fd in ready:
                    return fd
            for fd in ready:
                if not self._read(fd) and fd not in self.open:
                    poller.unregister(fd)

    def drain(self, until_eof: bool) -> None:
        """Read what is buffered; with ``until_eof`` also wait (briefly) for writers to close."""
        deadline = time.monotonic() + 1.0
        while self.open:
            for fd in list(self.open):
                while self._read(fd):
                    pass
            if not until_eof or not self.open or time.monotonic() > deadline:
                return
            select.select(list(self.open), [], [], 0.05)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def text(self, index: int, reserve: int = 0) -> tuple[str, bool]:
        """The stream as text, at most ``cap - reserve`` bytes once UTF-8 encoded (invalid bytes
        decode to U+FFFD, three bytes each, so the cap is applied after decoding too)."""
        fd = self.fds[index]
        text, cut = self.data[fd].decode("utf-8", "replace"), self.dropped[fd] > 0
        limit = max(self.cap - reserve, 0)
        if len(text) > limit // 3:
            encoded = text.encode()
            if len(encoded) > limit:
                text, cut = encoded[:limit].decode("utf-8", "ignore"), True
        return text, cut


class _Session:
    def __init__(self, config: dict) -> None:
        self.ctrl, child_ctrl = socket.socketpair()
        try:
            pid, (out_r, out_w, err_r, err_w) = _spawn(2)
        except OSError:
            self.ctrl.close()
            child_ctrl.close()
            raise
        if pid == 0:
            _session_child(out_w, err_w, child_ctrl.fileno(), config)
        for fd in (out_w, err_w):
            os.close(fd)
        child_ctrl.close()
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.out_r, self.err_r = out_r, err_r

    def move_to(self, pid: int) -> None:
        """The session continues in process ``pid`` (a fork of the old one, which has exited)."""
        os.close(self.pidfd)
        self.pid, self.pidfd = pid, os.pidfd_open(pid)

    def close(self) -> None:
        for fd in (self.pidfd, self.out_r, self.err_r):
            os.close(fd)
        self.ctrl.close()


class _Ready:
    """A call's process: forked ahead of its call (a spare: the fork, the interpreter's
    after-fork work and :func:`_isolate` are then off the call's critical path) or on demand.
    It waits (with the executor's uid, not dumpable) for the call on a pipe; one process serves
    one call."""

    def __init__(self, config: dict) -> None:
        pid, (out_r, out_w, err_r, err_w, req_r, req_w) = _spawn(3)
        if pid == 0:
            _call_child(out_w, err_w, req_r, config)
        for fd in (out_w, err_w, req_r):
            os.close(fd)
        self.pid, self.out_r, self.err_r, self.req_w = pid, out_r, err_r, req_w

    def send(self, request: dict, cpu_limit: bool) -> None:
        """Hand the call over; BrokenPipeError if the process died while it waited."""
        source = request["code"].encode("utf-8", "surrogatepass")
        cpu_seconds = int(request["timeout"]) + 2 if cpu_limit else 0
        _write_all(self.req_w, CALL.pack(len(source), request["kind"] == "shell", cpu_seconds) + source)
        os.close(self.req_w)
        self.req_w = -1

    def close(self) -> None:
        """Without a call (EOF on its pipe) the process exits; a sweep collects it."""
        for fd in (self.req_w, self.out_r, self.err_r):
            if fd >= 0:
                os.close(fd)


class _FileAccess:
    """File operations with the user's filesystem uid (the executor has no DAC override, and a
    host-given path must not reach what the user's code could not)."""

    def __init__(self, user: dict | None) -> None:
        self.user = user

    def __enter__(self) -> None:
        if self.user:
            _libc.setfsgid(self.user["gid"])
            _libc.setfsuid(self.user["uid"])

    def __exit__(self, *exc: object) -> None:
        if self.user:
            _libc.setfsuid(os.getuid())
            _libc.setfsgid(os.getgid())


# -- host file operations ------------------------------------------------------------------
SYS_OPENAT2 = 437  # same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
OPEN_FLAGS = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC  # a FIFO opens at once instead of waiting
FILE_KINDS = {0o010000: "a FIFO", 0o140000: "a socket", 0o020000: "a character device",
              0o060000: "a block device", 0o040000: "a directory", 0o120000: "a symbolic link"}


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_openat2_missing = False


def _open_under(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """Open ``path`` relative to ``dirfd`` without leaving it: openat2 with ``resolve`` (symlinks
    inside allowed when RESOLVE_NO_SYMLINKS is not set; never magic links), or, where the kernel
    or runtime lacks openat2, one component at a time with no symlink and no ``..`` at all."""
    global _openat2_missing
    if not _openat2_missing:
        how = _OpenHow(flags, mode, resolve)
        fd = _libc.syscall(SYS_OPENAT2, dirfd, path.encode("utf-8", "surrogateescape"), ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp profile that does not know it
            raise OSError(err, os.strerror(err), path)
        _openat2_missing = True
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts or not parts:
        raise OSError(errno.EXDEV, "'..' is not allowed here", path)
    fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        for part in parts[:-1]:
            step = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = step
        return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=fd)
    finally:
        os.close(fd)


class _Files:
    """read_file / write_file for the host. A path is resolved inside the work dir (relative,
    or absolute under it: a symlink may point elsewhere in it, never out of it, and never
    through /proc's magic links) or, absolute elsewhere, with no symlink at all: files the
    user's code made can never send the host to a file of the executor's choosing. Only regular
    files are read or written; FIFOs, sockets and devices are refused at once, without blocking."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir.rstrip("/")
        self.slash = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _anchor(self, path: str) -> tuple[int, str, int]:
        """(directory fd to close, path relative to it, openat2 resolve flags)."""
        inside = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
        strict = inside | RESOLVE_NO_SYMLINKS
        if path.startswith("/") and path != self.workdir and not path.startswith(self.workdir + "/"):
            return os.dup(self.slash), path.lstrip("/"), strict
        root = _open_under(self.slash, self.workdir.lstrip("/"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, strict)
        return root, path[len(self.workdir) + 1:] if path.startswith("/") else path, inside

    @staticmethod
    def _check_regular(fd: int, path: str) -> None:
        """Close ``fd`` and raise unless it is a regular file."""
        kind = FILE_KINDS.get(os.fstat(fd).st_mode & 0o170000)
        if kind is not None:
            os.close(fd)
            if kind == "a directory":
                raise OSError(errno.EISDIR, "Is a directory", path)
            raise OSError(errno.EINVAL, f"{path!r} is {kind}, not a regular file (the host reads and writes "
                                        "only regular files)")

    def _explained(self, exc: OSError, parent: int, name: str, resolve: int, path: str) -> OSError:
        """The error of an open, in words that say what refused it."""
        if exc.errno == errno.EXDEV:
            return OSError(errno.EXDEV, f"{path!r} leads out of the work dir (through a symlink or '..'); the "
                                        "host's file operations stay inside it")
        if exc.errno == errno.ELOOP:
            return OSError(errno.ELOOP, f"{path!r} goes through a symbolic link, which is not followed here")
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO without a reader: say which
            try:
                fd = _open_under(parent, name, os.O_PATH | os.O_CLOEXEC, 0, resolve)
                self._check_regular(fd, path)
                os.close(fd)
            except OSError as kind:
                return kind
        return exc

    def _open(self, path: str, flags: int, mode: int, create_parents: bool) -> int:
        """A descriptor of the regular file at ``path`` (see the class docstring)."""
        root, rel, resolve = self._anchor(path)
        parent, name = root, rel.rstrip("/")
        try:
            if not name.strip("/."):
                raise OSError(errno.EISDIR, "Is a directory", path)
            if create_parents and "/" in name:
                head, name = name.rsplit("/", 1)
                parent = self._make_dirs(root, head, resolve)
            fd = _open_under(parent, name, flags | OPEN_FLAGS, mode, resolve)
        except OSError as exc:
            raise self._explained(exc, parent, name, resolve, path) from None
        finally:
            if parent != root:
                os.close(parent)
            os.close(root)
        self._check_regular(fd, path)
        return fd

    @staticmethod
    def _make_dirs(root: int, head: str, resolve: int) -> int:
        """Open directory ``head`` under ``root``, making missing components (each one made
        inside the directory already resolved, so a symlink can never redirect the mkdir)."""
        fd = os.dup(root)
        try:
            for part in head.split("/"):
                if part in ("", "."):
                    continue
                try:
                    step = _open_under(fd, part, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, resolve)
                except FileNotFoundError:
                    os.mkdir(part, dir_fd=fd)
                    step = _open_under(fd, part, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, resolve)
                os.close(fd)
                fd = step
            return fd
        except BaseException:
            os.close(fd)
            raise

    def read(self, path: str) -> bytes:
        fd = self._open(path, os.O_RDONLY, 0, False)
        try:
            if os.fstat(fd).st_size > MAX_READ_FILE:
                raise OSError(errno.EFBIG, f"file larger than {MAX_READ_FILE} bytes")
            chunks, left = [], MAX_READ_FILE + 1
            while left:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > MAX_READ_FILE:
            raise OSError(errno.EFBIG, f"file larger than {MAX_READ_FILE} bytes")
        return data

    def write(self, path: str, data: bytes, mode: int) -> None:
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, True)
        try:
            _write_all(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


class Executor:
    """Serves requests from the host, one at a time, until stdin closes."""

    def __init__(self, config: dict, proto_in: int, proto_out: int, jail: dict | None) -> None:
        self.config = config
        self.workdir = config["workdir"]
        self.cap = int(config["max_output"])
        self.files = _FileAccess(config.get("user"))
        self.paths = _Files(self.workdir)
        self.proto_in, self.proto_out = proto_in, proto_out
        self.jail = jail
        self.session: _Session | None = None
        self.ready: _Ready | None = None
        self.reaped: dict[int, int] = {}
        self.oom_kills = _OomKills()
        self.children_file = f"/proc/self/task/{os.getpid()}/children"
        self.max_arg = 32 * os.sysconf("SC_PAGE_SIZE")  # MAX_ARG_STRLEN, NUL included
        self.seccomp = False
        # kill(-1) as the user reaches only the user's processes where they have a uid of their own
        self.uid_kill = bool(config.get("user")) and os.getuid() == 0

    def serve(self) -> None:
        while True:
            self._prepare()
            try:
                request = _recv_frame(self.proto_in)
            except EOFError:
                break
            try:
                response = self.handle(request)
            except OSError as exc:  # the path as the host gave it, not as the executor saw it
                why = exc.strerror or str(exc)
                response = {"error": f"{why}: {exc.filename!r}" if exc.filename else why, "errno": exc.errno}
            except Exception as exc:
                response = {"error": f"{type(exc).__name__}: {exc}"}
            response["id"] = request.get("id")
            _send_frame(self.proto_out, response)
        if self.ready is not None:
            self.ready.close()
            self.ready = None
        self.sweep(keep=())

    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "ping":
            return {"pid": os.getpid(), "session": self.session is not None, "jail": self.jail,
                    "strays": len(set(_live_descendants(os.getpid())) - set(self._kept())), "seccomp": self.seccomp,
                    "python": sys.version.split()[0]}
        if op == "run":
            if request.get("session"):
                return self.run_in_session(request)
            return self.run(request)
        if op == "write":
            with self.files:
                self.paths.write(request["path"], base64.b64decode(request["data"]), int(request.get("mode", 0o644)))
            return {}
        if op == "read":
            with self.files:
                return {"data": base64.b64encode(self.paths.read(request["path"])).decode()}
        if op == "reset_session":
            self.end_session()
            self.sweep(keep=self._kept())
            return {}
        raise ValueError(f"unknown op {op!r}")

    # -- calls ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Fork the next call's process while the host is busy elsewhere, unless its next
        request comes at once (without room for a spare now, the call forks its own, and reports
        if it cannot)."""
        if self.ready is None and not select.select([self.proto_in], [], [], SPARE_AFTER_S)[0]:
            try:
                self.ready = _Ready(self.config)
            except OSError:
                pass

    def _new_session(self) -> _Session:
        """A session process; if the sandbox's process limit leaves it no room, the process
        forked for the next call gives its slot back and the fork is tried once more."""
        try:
            return _Session(self.config)
        except OSError as exc:
            if exc.errno != errno.EAGAIN or self.ready is None:
                raise
        ready, self.ready = self.ready, None
        ready.close()
        os.kill(ready.pid, signal.SIGKILL)
        self._wait(ready.pid)
        return _Session(self.config)

    def _hand_over(self, request: dict) -> _Ready:
        """The process that runs this call, request in hand: the one forked ahead, or a new one
        (none was ready, or it died while it waited: it is the OOM killer's first choice)."""
        ready, self.ready = self.ready, None
        if ready is not None:
            try:
                ready.send(request, bool(self.config.get("cpu_limit")))
                return ready
            except BrokenPipeError:
                ready.close()
        ready = self._fork_now()
        try:
            ready.send(request, bool(self.config.get("cpu_limit")))
        except OSError:
            ready.close()
            raise
        return ready

    def _fork_now(self) -> _Ready:
        """A call's process forked on demand. Out of process slots (EAGAIN), it is retried for
        ~30 ms: the processes a sweep has just killed and reaped (a fork bomb's) give their
        slots in the pids cgroup back only a moment later."""
        for delay in (0.002, 0.008, 0.02):
            try:
                return _Ready(self.config)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
            time.sleep(delay)
            self._reap()
        return _Ready(self.config)

    def run(self, request: dict) -> dict:
        start = time.monotonic()
        if request["kind"] == "shell":
            size = len(request["code"].encode("utf-8", "surrogatepass"))
            if size >= self.max_arg:  # execve would fail with E2BIG
                return self._refused(OSError(errno.E2BIG, f"the command is {size} bytes, /bin/sh -c takes at most "
                                             f"{self.max_arg - 1} (the kernel's limit on one argument); write it "
                                             "to a file with write_file and run that"), start)
        oom_before = self.oom_kills()
        try:
            call = self._hand_over(request)
        except OSError as exc:
            return self._refused(exc, start)
        capture = _Capture([call.out_r, call.err_r], self.cap)
        pidfd = os.pidfd_open(call.pid)
        deadline = start + float(request["timeout"])
        try:
            exited = capture.pump(deadline - self._yield_lead(request), [pidfd]) is not None
            if not exited:
                self._yield_cpu()
                exited = capture.pump(deadline, [pidfd]) is not None
        finally:
            os.close(pidfd)
        if not (exited and self._only_children(call.pid)):
            self.sweep(keep=self._kept())
        capture.drain(until_eof=True)
        capture.close()
        exit_code = os.waitstatus_to_exitcode(self._wait(call.pid))
        return self._result(capture, exit_code, not exited, start, oom_before, "")

    def run_in_session(self, request: dict) -> dict:
        start = time.monotonic()
        oom_before = self.oom_kills()
        if self.session is None:
            try:
                self.session = self._new_session()
            except OSError as exc:
                return self._refused(exc, start)
        session = self.session
        capture = _Capture([session.out_r, session.err_r], self.cap)
        try:
            session.ctrl.sendall(encode_frame({"code": request["code"]}))
            fired = capture.pump(start + float(request["timeout"]), [session.ctrl.fileno(), session.pidfd])
        except OSError:  # the session died while idle
            fired = session.pidfd
        reply, note = None, ""
        if fired == session.ctrl.fileno():
            try:
                reply = _recv_frame(session.ctrl.fileno())
            except EOFError:
                fired = session.pidfd
        if reply is not None and "pid" in reply:
            self._wait(session.pid)  # the old process and its threads are gone before we drain
            session.move_to(reply["pid"])
            note = (f"\n[sandbox] the cell left {reply['threads']} thread(s) running; they were stopped "
                    "(threads end with their cell; the session's variables are kept)\n")
        alive = reply is not None and "ended" not in reply
        self.sweep(keep=self._kept() if alive else tuple(set(self._kept()) - {session.pid}))
        capture.drain(until_eof=not alive)
        status = None if alive else self._wait(session.pid)
        if reply is not None:
            exit_code = reply["exit"]
        else:
            exit_code = os.waitstatus_to_exitcode(status)
        if not alive:
            session.close()
            self.session = None
            if reply is not None:
                note = (f"\n[sandbox] the cell left {reply['threads']} thread(s) running and there was no room "
                        f"to stop them apart from the session ({reply['ended']})")
            note += "\n[sandbox] the session ended; its variables are lost and the next call starts a new one\n"
        return self._result(capture, exit_code, fired is None, start, oom_before, note)

    def _refused(self, exc: OSError, start: float) -> dict:
        """The call could not start (no process or fd left under the sandbox's limits, or a shell
        command too long to exec): a result."""
        why = exc.strerror or str(exc)
        if exc.errno == errno.EAGAIN:
            why += ": the sandbox's process limit is reached (processes or threads still alive)"
        error = f"[sandbox] the call could not start: {why}"
        return {"stdout": "", "stderr": error + "\n", "exit_code": 126, "timed_out": False,
                "stdout_truncated": False, "stderr_truncated": False, "duration": time.monotonic() - start,
                "error": error}

    def _result(self, capture: _Capture, exit_code: int, timed_out: bool, start: float,
                oom_before: int, note: str) -> dict:
        if timed_out:
            note = "\n[sandbox] timed out; every process of the call was killed" + note
        if oom_before >= 0 and self.oom_kills() > oom_before:
            note = "\n[sandbox] a process was killed: out of memory" + note
        stdout, out_cut = capture.text(0)
        stderr, err_cut = capture.text(1, reserve=len(note.encode()))
        self.reaped.clear()
        return {"stdout": stdout, "stderr": stderr + note, "exit_code": exit_code, "timed_out": timed_out,
                "stdout_truncated": out_cut, "stderr_truncated": err_cut,
                "duration": time.monotonic() - start, "error": ""}

    # -- processes --------------------------------------------------------------------------
    def _kept(self) -> tuple[int, ...]:
        """What a sweep spares: the session and the process forked for the next call."""
        return tuple(proc.pid for proc in (self.session, self.ready) if proc is not None)

    def end_session(self) -> None:
        if self.session is not None:
            try:
                os.kill(self.session.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait(self.session.pid)
            self.session.close()
            self.session = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.reaped[pid] = status

    def _wait(self, pid: int) -> int:
        if pid in self.reaped:
            return self.reaped.pop(pid)
        return os.waitpid(pid, 0)[1]

    def _only_children(self, done: int) -> bool:
        """Whether, with no session, this process's children are at most the spare and ``done``
        (a call's process that has exited): then nothing of the call is left, since its orphans
        are our children (we are their subreaper), and the /proc walk of a sweep can be skipped."""
        if self.session is not None:
            return False
        try:
            listing = _read_small(self.children_file)
        except OSError:  # no CONFIG_PROC_CHILDREN
            return False
        allowed = {done, self.ready.pid if self.ready is not None else done}
        return len(listing) < 4000 and all(int(pid) in allowed for pid in listing.split())

    def _yield_lead(self, request: dict) -> float:
        """How long before its deadline a call's processes are reniced (0: never)."""
        if not self.uid_kill or self.session is not None:  # a session would stay reniced
            return 0.0
        return min(YIELD_LEAD_S, float(request["timeout"]) / 2)

    def _yield_cpu(self) -> None:
        """Nice 19 for every process of the user's uid (one setpriority as that uid), shortly
        before a call's deadline: a fork bomb's processes at nice 0 leave the executor a 1/pids
        share of the CPU, so it woke up to the deadline seconds late. Only calls about to time
        out pay it (nice 19 from the start slowed back-to-back calls: the executor outran them)."""
        if not self.uid_kill or self.session is not None:
            return
        uid = self.config["user"]["uid"]
        os.setresuid(0, uid, 0)  # the real uid stays 0: PRIO_USER picks by real uid, and we must stay out
        try:
            os.setpriority(os.PRIO_USER, uid, 19)
        except OSError:
            pass
        finally:
            os.setresuid(0, 0, 0)

    def _kill_user_processes(self) -> None:
        """SIGKILL every process of the user's uid in this PID namespace in one syscall: kill(-1)
        with the user's real and effective uid (so without CAP_KILL; the saved uid 0 brings the
        executor back). The kernel signals them all under one lock and a process with SIGKILL
        pending cannot fork, so a fork bomb is gone at once; the spare (executor's uid) is spared."""
        uid = self.config["user"]["uid"]
        os.setresuid(uid, uid, 0)
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.setresuid(0, 0, 0)

    def sweep(self, keep: tuple[int, ...]) -> None:
        """Kill every descendant not in ``keep``: freeze all, then kill all, until none is left."""
        deadline = time.monotonic() + KILL_DEADLINE_S
        if self.uid_kill and (self.session is None or self.session.pid not in keep):
            self._kill_user_processes()
        while True:
            victims = [pid for pid in _live_descendants(os.getpid()) if pid not in keep]
            if not victims:
                self._reap()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not kill processes {victims[:10]}")
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in victims:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            time.sleep(0.0002)
            self._reap()


# -- LocalSandbox jail -------------------------------------------------------------------
def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _enter_jail(jail: dict, user: dict | None) -> dict:
    """Inside fresh namespaces (as their root): hide host paths and make the user's work dir.

    Runs before the executor serves anything. Returns what it managed, for the host to log.
    """
    report = {"readonly_root": False}

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr),
                     ctypes.sizeof(attr)) == 0:
        report["readonly_root"] = True
        # /proc as in a container: writable where its own permissions allow (oom_score_adj)
        writable = MountAttr(0, MOUNT_ATTR_RDONLY, 0, 0)
        _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/proc", 0, ctypes.byref(writable), ctypes.sizeof(writable))
    # Paths under a mask that must stay visible (the Python running us, e.g. under /root).
    keep = {path: os.open(path, os.O_PATH) for path in jail["keep"]}
    for mask, size in jail["tmpfs"].items():  # size None: an empty read-only mask
        if not os.path.isdir(mask) or os.path.islink(mask):
            continue
        _mount("tmpfs", mask, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size or 1 << 20},mode={'1777' if size else '0755'}")
        for path, fd in keep.items():
            if path.startswith(mask.rstrip("/") + "/"):
                os.makedirs(path, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, "", MS_BIND | MS_REC, "")
                _mount("", path, "", MS_REMOUNT | MS_BIND | MS_RDONLY, "")
        if size is None:
            _mount("", mask, "", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "")
    for fd in keep.values():
        os.close(fd)
    os.makedirs(jail["workdir"], mode=0o700)
    if user:
        os.chown(jail["workdir"], user["uid"], user["gid"])
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    return report


def _keep_only_caps(keep: tuple[int, ...]) -> None:
    """Reduce this root process to the capabilities in ``keep`` (bounding set where allowed too)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            last_cap = int(last.read())
    except OSError:
        last_cap = 40
    for cap in range(last_cap + 1):
        if cap not in keep:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EPERM without CAP_SETPCAP (Docker): fine

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    mask = sum(1 << cap for cap in keep)
    data = (Data * 2)(Data(mask, mask, 0), Data(0, 0, 0))
    if _libc.capset(ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    user = config.get("user")
    jail = _enter_jail(config["jail"], user) if config.get("jail") else None
    if user and os.geteuid() == 0:
        _keep_only_caps(EXECUTOR_CAPS)
    if config.get("connect"):  # a unix socket from the host (DockerSandbox with a local engine)
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.connect(config["connect"])
        proto_in = proto_out = os.dup(link.fileno())
        link.close()
    else:
        proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # a stray print can never corrupt the protocol stream
    os.close(null)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    for module in config.get("preload", ()):
        try:
            __import__(module)
        except ImportError:
            print(f"[executor] cannot preload {module}", file=sys.stderr)
    if user:
        os.chdir("/")  # the work dir is the user's (mode 0700), not ours
    else:
        os.makedirs(config["workdir"], exist_ok=True)
        os.chdir(config["workdir"])
    # builtins.compile() initialises the AST types on its first use in a process (~1.4 ms, ~120
    # type objects); done once here, every fork inherits them instead of building its own.
    _exec_python("pass", {"__name__": "__main__", "__builtins__": builtins}, "<warm-up>")
    gc.freeze()  # forked children then copy fewer pages when the collector runs
    executor = Executor(config, proto_in, proto_out, jail)
    executor.seccomp = _install_seccomp(config.get("memory_cgroup", True))
    executor.serve()


if __name__ == "__main__":
    main(sys.argv)
