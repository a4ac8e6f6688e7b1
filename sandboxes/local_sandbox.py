"""LocalSandbox: the same executor without Docker, in fresh Linux namespaces.

Isolation (weaker than Docker's; see docs/sandboxes.md): ``unshare`` puts the executor in new PID,
network (unless ``spec.network``), mount, IPC and UTS namespaces (a user namespace too when not root). Inside, before
serving anything, the executor makes every existing mount read-only, mounts a size-capped tmpfs
on /tmp (its work dir is /tmp/work), masks /root, /home, /run, /var/tmp, /mnt, /media and /srv
with empty read-only tmpfs (re-exposing only the Python it runs on), sets no-new-privileges and,
started as root, keeps only the capabilities to switch uid and kill. User code runs under rlimits
(address space, processes, file size, open files, no core files; CPU time per call) and, when
started as root, under a uid of its own: one per live sandbox on this host (claimed with a lock
file), so ``RLIMIT_NPROC`` and every other per-uid count is per sandbox, and the code cannot
signal or trace its executor (uid 0). Started as non-root, a user namespace maps only the
caller's uid, so code and executor share it (and ``RLIMIT_NPROC`` counts every process of the
caller). There is no cgroup: memory is capped per process, not in total, and CPU time is not
shared out; memory no rlimit counts is refused instead (the executor's seccomp filter, told
``memory_cgroup: False``, denies memfd and SysV shared memory on top of new namespaces and
mounts), except kernel buffers held through descriptors (sockets, pipes). The environment is rebuilt from scratch, so host secrets in environment variables
never reach it.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from agentgym.errors import ConfigError

from . import executor
from .base import BaseSandbox, SandboxSpec
from .channel import Channel
from .errors import SandboxUnavailable

__all__ = ["LocalSandbox", "local_unavailable_reason"]

MASKED = ("/root", "/home", "/run", "/var/tmp", "/mnt", "/media", "/srv")
START_TIMEOUT_S = 30.0
UID_BASE, UID_SLOTS = 1_100_000, 65_536  # uids for user code, above any real account's
UID_LOCKS = Path("/run/agentgym-sandbox-uids")


def _claim_uid() -> tuple[int, int]:
    """A uid no other live LocalSandbox on this host uses, and the fd whose lock holds it.

    ``unshare`` inherits the locked fd, so the lock holds until the sandbox's namespace is gone
    (its processes with it), even if this process dies first: a uid is never handed out again
    while a process of its last owner lives."""
    UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
    first = random.randrange(UID_SLOTS)
    for step in range(UID_SLOTS):
        uid = UID_BASE + (first + step) % UID_SLOTS
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise SandboxUnavailable(f"all {UID_SLOTS} LocalSandbox uids are in use")


def local_unavailable_reason() -> str | None:
    """Why LocalSandbox cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"LocalSandbox needs Linux namespaces; this is {sys.platform}"
    if shutil.which("unshare") is None:
        return "the `unshare` tool (util-linux) is not installed"
    return None


def _python_paths(python: str) -> list[str]:
    """Directories the sandbox's Python must still see when their parent is masked."""
    real = Path(python).resolve()
    paths = {str(real.parent.parent), sys.prefix, sys.base_prefix, sys.exec_prefix}
    return sorted(p for p in paths if p != "/")


class LocalSandbox(BaseSandbox):
    """A sandbox in a subprocess under fresh namespaces and rlimits (see the module docstring)."""

    backend = "local"
    workdir = "/tmp/work"

    def __init__(self, spec: SandboxSpec | None = None, *, python: str = sys.executable,
                 hide: tuple[str, ...] = ()) -> None:
        super().__init__(spec or SandboxSpec())
        if self.spec.mounts:
            raise ConfigError(f"SandboxSpec.mounts {self.spec.mounts} needs the Docker backend")
        reason = local_unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        spec = self.spec
        root = os.geteuid() == 0
        self._uid_lock = -1
        user = None
        if root:
            uid, self._uid_lock = _claim_uid()
            user = {"uid": uid, "gid": uid}
        jail = {
            "workdir": self.workdir,
            "tmpfs": {"/tmp": (spec.tmp_mb + spec.workdir_mb) << 20, "/dev/shm": spec.tmp_mb << 20,
                      **dict.fromkeys((*MASKED, *hide))},
            "keep": _python_paths(python),
        }
        rlimits = {"RLIMIT_AS": spec.memory_mb << 20, "RLIMIT_NPROC": spec.pids,
                   "RLIMIT_FSIZE": spec.workdir_mb << 20, "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 1024}
        config = {"workdir": self.workdir, "max_output": spec.max_output, "preload": list(spec.preload),
                  "cpu_limit": True, "jail": jail, "user": user, "rlimits": rlimits,
                  "memory_cgroup": False}
        command = ["unshare", "--pid", *([] if spec.network else ["--net"]), "--mount", "--ipc", "--uts", "--fork", "--kill-child",
                   "--mount-proc", *([] if root else ["--user", "--map-root-user"]),
                   "--", python, "-I", "-B", "-u", "-c", Path(executor.__file__).read_text(), json.dumps(config)]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.workdir, "TMPDIR": "/tmp",
               "LANG": "C.UTF-8", **dict(spec.env)}
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, env=env, start_new_session=True,
                                          pass_fds=() if self._uid_lock < 0 else (self._uid_lock,))
        except OSError as exc:
            self._stderr.close()
            self._release_uid()
            raise SandboxUnavailable(f"cannot start unshare: {exc}") from exc
        self._channel = Channel(self._proc.stdout.fileno(), self._proc.stdin.fileno(), docker_stream=False,
                                owner=self._proc, diagnose=self._diagnose)
        try:
            self.info = self.ping(timeout=START_TIMEOUT_S)
        except Exception as exc:
            self.close()
            raise SandboxUnavailable(f"LocalSandbox did not start: {exc}") from exc

    def _diagnose(self) -> str:
        code = self._proc.poll()
        self._stderr.seek(0)
        tail = self._stderr.read()[-800:].decode("utf-8", "replace").strip()
        state = "still running" if code is None else f"exited with {code}"
        return f"local executor {state}" + (f"; stderr: {tail}" if tail else "")

    def _teardown(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)  # the namespace's init, and so all of it, dies
            self._proc.wait()
        self._stderr.close()
        self._release_uid()  # unshare has exited: nothing in the namespace is left

    def _release_uid(self) -> None:
        if self._uid_lock >= 0:
            os.close(self._uid_lock)
            self._uid_lock = -1
