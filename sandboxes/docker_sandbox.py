"""DockerSandbox: one container per sandbox, one resident executor per container.

Secure defaults (each can only be loosened on purpose through :class:`SandboxSpec`):
no network (``network_mode=none``), read-only root with size-capped tmpfs on /tmp and the work
dir /workspace, ``mem_limit == memswap_limit``, a CPU quota, ``pids_limit``, ``no-new-privileges``,
docker-init as PID 1, no log driver (the protocol stream is not written to disk), and gVisor's
``runsc`` when asked for. The executor runs as root with only CAP_SETUID, CAP_SETGID and
CAP_KILL; user code runs as a random uid of its own (no capabilities, first in line for the
OOM killer), so it cannot signal, trace or freeze the executor. Memory: each process of the code
has ``memory_mb`` of address space (``RLIMIT_AS``: an allocation beyond it raises MemoryError, as
on LocalSandbox). Files in the tmpfs dirs are charged to the container's memory cgroup, so its
limit, which bounds everything together (every process, memfd, files), is ``memory_mb`` plus the
tmpfs sizes plus a reserve for the executor: a full work dir can neither starve the code nor
OOM-kill the executor.

With an engine on this host (a unix socket), the host talks to the executor over a unix socket
bind-mounted into the container: the bytes of a call never pass through dockerd. Otherwise (or
with ``AGENTGYM_SANDBOX_DIRECT=0``) it uses the container's attached stdin/stdout (one hijacked
HTTP connection to the engine, kept open). Never a ``docker exec`` per call. Either way, if the
owning process dies its end closes, the executor reads EOF and exits, and the reaper then
removes the stopped container.

The executor's unix socket: the threat is another account on this host (not root, not in the
docker group, both of which own the engine anyway) that connects first and poses as the
executor: it would see every call (hidden tests included) and forge every result. So the
socket's directory is private (0700) where the container's root is this process's own uid (we
are root and the engine has no userns-remap, or the engine is rootless); elsewhere the container's
root needs o+x/o+w, and /proc/net/unix names the socket anyway. Either way a connection becomes
the channel only if its peer credentials (SO_PEERCRED, taken by the kernel at connect time) are
the container's: the same uid as the container's init process, a child of that init (or the
init itself) and in the same cgroups. Any other connection is closed and counted in
``rejected``; the listener is closed and the socket removed as soon as the executor is in, so no
second connection can reach it. A container that exits while we wait is reported at once
(:class:`SandboxUnavailable` with its exit code), and an environment the kernel could not pass
to a process is refused before anything is created (:class:`~agentgym.errors.ConfigError`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import socket
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError

from . import executor
from .base import BaseSandbox, SandboxSpec
from .channel import Channel
from .engine import docker_client, engine_runtimes, engine_security
from .errors import SandboxUnavailable
from .reaper import sandbox_labels

__all__ = ["DockerSandbox"]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STATE_POLL_S = 0.25  # while waiting for the executor, how often the container's state is checked
DIRECT_ENV = "AGENTGYM_SANDBOX_DIRECT"
LINK_MOUNT, LINK_NAME = "/agentgym", "executor.sock"
EXECUTOR_RESERVE_MB = 64
USER_UIDS = range(20_000, 60_000)  # inside 0..65535, so engines with userns-remap map them too
USER_RLIMITS = {"RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0}
# What execve can take (Linux): one "NAME=value" string at most MAX_ARG_STRLEN (32 pages), and
# argv + environment together a quarter of the stack limit (2 MiB by default), the executor's
# source and config included. Past a few thousand variables dockerd itself stalls for minutes.
MAX_ENV_STRING = 32 * 4096 - 1
MAX_ENV_BYTES = 1 << 20
MAX_ENV_VARS = 4096
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def check_env(env: dict[str, str]) -> None:
    """Refuse an environment no container could start with (ConfigError, before any engine call)."""
    if len(env) > MAX_ENV_VARS:
        raise ConfigError(f"SandboxSpec.env has {len(env)} variables; at most {MAX_ENV_VARS} are allowed")
    total = 0
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ConfigError(f"SandboxSpec.env: invalid variable name or NUL in {name[:40]!r}")
        size = len(name.encode()) + 1 + len(value.encode())
        if size > MAX_ENV_STRING:
            raise ConfigError(f"SandboxSpec.env: {name[:40]}=... is {size} bytes; one variable may have at most "
                              f"{MAX_ENV_STRING} (the kernel's MAX_ARG_STRLEN)")
        total += size + 1
    if total > MAX_ENV_BYTES:
        raise ConfigError(f"SandboxSpec.env holds {total} bytes; at most {MAX_ENV_BYTES} are allowed (with the "
                          "executor's own arguments it must fit the kernel's ARG_MAX)")


def check_mounts(mounts: tuple[str, ...], workdir: str) -> None:
    """Refuse extra mounts that are not distinct absolute directories other than /, /tmp and the work dir."""
    for path in mounts:
        if not path.startswith("/") or os.path.normpath(path) != path or path in ("/", "/tmp", workdir):
            raise ConfigError(f"SandboxSpec.mounts: {path!r} must be a normalised absolute path other than /, /tmp "
                              f"and the work dir {workdir}")
    if len(set(mounts)) != len(mounts):
        raise ConfigError(f"SandboxSpec.mounts lists a directory twice: {mounts}")


@functools.lru_cache(maxsize=1)
def _executor_source() -> str:
    return Path(executor.__file__).read_text()


class DockerSandbox(BaseSandbox):
    """A sandbox in its own container (see the module docstring for the defaults)."""

    backend = "docker"
    workdir = "/workspace"

    def __init__(self, spec: SandboxSpec | None = None, *, client: Any = None, pool: str = "",
                 labels: dict[str, str] | None = None, direct: bool | None = None) -> None:
        super().__init__(spec or SandboxSpec())
        import docker.errors

        environment = {"HOME": self.workdir, "LANG": "C.UTF-8", **dict(self.spec.env)}
        check_env(environment)
        check_mounts(self.spec.mounts, self.workdir)
        self.client = client or docker_client()
        self.container_id: str | None = None
        self._socket: Any = None
        self._link_dir: str | None = None
        self.rejected: list[str] = []  # connections to the executor's socket that were not the executor
        if direct is None:
            direct = self.client.api.base_url.startswith("http+docker://") and os.environ.get(DIRECT_ENV) != "0"
        self.direct = direct
        spec = self.spec
        runtime = self._runtime()
        listener = self._listen() if direct else None
        uid = random.choice(USER_UIDS)
        config = {"workdir": self.workdir, "max_output": spec.max_output, "preload": list(spec.preload),
                  "user": {"uid": uid, "gid": uid}, "rlimits": {**USER_RLIMITS, "RLIMIT_AS": spec.memory_mb << 20},
                  **({"connect": f"{LINK_MOUNT}/{LINK_NAME}"} if direct else {})}
        memory = f"{spec.memory_mb + (1 + len(spec.mounts)) * spec.workdir_mb + 2 * spec.tmp_mb + EXECUTOR_RESERVE_MB}m"
        user_dir = f"nosuid,nodev,size={spec.workdir_mb}m,uid={uid},gid={uid},mode=0700"
        api = self.client.api
        host_config = api.create_host_config(
            network_mode="bridge" if spec.network else "none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmp_mb}m",
                   self.workdir: f"rw,{user_dir}", **dict.fromkeys(spec.mounts, f"rw,exec,{user_dir}")},
            shm_size=f"{spec.tmp_mb}m",
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=spec.pids,
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID", "KILL"],
            security_opt=["no-new-privileges"],
            init=True,
            runtime=runtime,
            log_config={"type": "none", "config": {}},
            ulimits=[docker.types.Ulimit(name="core", soft=0, hard=0)],
            binds={self._link_dir: {"bind": LINK_MOUNT, "mode": "ro"}} if direct else None,
        )
        try:
            created = api.create_container(
                spec.image, command=["python3", "-I", "-u", "-B", "-c", _executor_source(), json.dumps(config)],
                user="0:0", stdin_open=not direct, detach=False, working_dir=self.workdir, hostname="sandbox",
                name=f"agentgym-{pool or 'sb'}-{uuid.uuid4().hex[:10]}",
                environment=environment,
                labels=sandbox_labels(pool, spec.ttl, labels), host_config=host_config,
                network_disabled=not spec.network)
            self.container_id = created["Id"]
            if not direct:
                self._socket = api.attach_socket(self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                                           "stream": 1})
            api.start(self.container_id)
            if listener is not None:
                self._socket = self._accept(listener)
        except docker.errors.ImageNotFound as exc:
            self.close()
            raise SandboxUnavailable(f"image {spec.image!r} is not present; build it with "
                                     "`agentgym sandbox build python`") from exc
        except SandboxUnavailable:
            self.close()
            raise
        except (docker.errors.DockerException, OSError) as exc:
            self.close()
            raise SandboxUnavailable(f"cannot start a sandbox container: {exc}") from exc
        finally:
            if listener is not None:
                listener.close()
        raw = getattr(self._socket, "_sock", self._socket)
        self._channel = Channel(raw.fileno(), raw.fileno(), docker_stream=not direct, owner=self._socket,
                                diagnose=self._diagnose)
        try:
            self.info = self.ping(timeout=START_TIMEOUT_S)
        except Exception as exc:
            self.close()
            raise SandboxUnavailable(f"the sandbox executor did not start: {exc}") from exc

    def _container_root_is_me(self) -> bool:
        """Whether the container's root is this process's uid on the host (then a private
        directory is enough for the executor to reach the socket)."""
        security = engine_security(self.client)
        return "rootless" in security or (os.geteuid() == 0 and "userns" not in security)

    def _listen(self) -> socket.socket:
        """A unix socket in a fresh directory that the container gets bind-mounted (read-only).
        The executor is root without CAP_DAC_OVERRIDE: where its uid is not ours, it needs
        o+x on the directory and o+w on the socket (the peer check in :meth:`_accept` holds)."""
        self._link_dir = tempfile.mkdtemp(prefix="agentgym-link-")  # 0700
        private = self._container_root_is_me()
        if not private:
            os.chmod(self._link_dir, 0o711)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(self._link_dir, LINK_NAME)
        listener.bind(path)
        os.chmod(path, 0o600 if private else 0o666)
        listener.listen(8)
        return listener

    def _accept(self, listener: socket.socket) -> socket.socket:
        """The executor's connection, the only one ever accepted: any other peer is turned away,
        and once the executor is in the socket is removed, before any user code runs."""
        deadline = time.monotonic() + START_TIMEOUT_S
        init: tuple[int, int, bytes] | None = None
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError(f"the executor did not connect to {LINK_MOUNT} within {START_TIMEOUT_S:.0f} s "
                                  f"(an engine that cannot bind-mount this host's paths? set {DIRECT_ENV}=0)")
                listener.settimeout(min(left, STATE_POLL_S))
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    self._check_started()
                    continue
                if init is None:
                    init = self._init_identity()
                why = _foreign_peer(conn, init)
                if why is None:
                    return conn
                conn.close()
                self.rejected.append(why)
                log.warning("sandbox %s: refused a connection to the executor's socket: %s",
                            self.container_id and self.container_id[:12], why)
        finally:
            listener.close()
            shutil.rmtree(self._link_dir, ignore_errors=True)

    def _check_started(self) -> None:
        """Raise SandboxUnavailable if the container is no longer on its way to running."""
        state = self.client.api.inspect_container(self.container_id)["State"]
        if state.get("Status") not in ("created", "running", "restarting"):
            raise SandboxUnavailable(
                f"the sandbox container exited before its executor connected: {state.get('Status')}, exit code "
                f"{state.get('ExitCode')}, OOM-killed {state.get('OOMKilled')}"
                + (f", error {state['Error']!r}" if state.get("Error") else ""))

    def _init_identity(self) -> tuple[int, int, bytes]:
        """(pid, uid, cgroups) of the container's init process, as this host sees it."""
        pid = int(self.client.api.inspect_container(self.container_id)["State"].get("Pid") or 0)
        if pid <= 0:
            self._check_started()
            raise SandboxUnavailable("the sandbox container has no process")
        return pid, _proc_uid(pid), _proc_cgroups(pid)

    def _runtime(self) -> str | None:
        wanted = self.spec.runtime
        if wanted == "runc":
            return None
        present = "runsc" in engine_runtimes(self.client)
        if wanted == "auto":
            return "runsc" if present else None
        if wanted == "runsc" and not present:
            raise SandboxUnavailable("gVisor (runsc) was asked for but the engine does not offer it")
        return wanted

    def _diagnose(self) -> str:
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
        except Exception as exc:
            return f"container {self.container_id and self.container_id[:12]} is gone ({exc})"
        return (f"container {self.container_id[:12]} is {state.get('Status')} (exit code {state.get('ExitCode')}, "
                f"OOM-killed {state.get('OOMKilled')})")

    def _teardown(self) -> None:
        import docker.errors

        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
        if self._socket is not None:
            try:
                getattr(self._socket, "_sock", self._socket).close()
                self._socket.close()
            except OSError:
                pass
        if self.container_id is not None:
            try:
                self.client.api.remove_container(self.container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # removal already in progress
                    raise


def _proc_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective
    raise OSError(f"no Uid line for process {pid}")


def _proc_cgroups(pid: int) -> bytes:
    with open(f"/proc/{pid}/cgroup", "rb") as cgroups:
        return cgroups.read()


def _proc_parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        data = stat.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


def _foreign_peer(conn: socket.socket, init: tuple[int, int, bytes]) -> str | None:
    """Why the process at the other end of ``conn`` is not the container's executor (None: it is).

    The credentials are the kernel's, taken when the peer connected; an impostor of another uid
    fails on the uid whatever it does with its pid afterwards, and one of the container's uid
    (root, or this very user for a rootless engine) could drive the engine itself anyway."""
    pid, uid, _ = PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    init_pid, init_uid, init_cgroups = init
    if uid != init_uid:
        return f"peer pid {pid} has uid {uid}, the container's init has uid {init_uid}"
    try:
        if pid <= 0 or (pid != init_pid and _proc_parent(pid) != init_pid):
            return f"peer pid {pid} is not the container's executor (a child of its init, pid {init_pid})"
        if _proc_cgroups(pid) != init_cgroups:
            return f"peer pid {pid} is not in the container's cgroups"
    except (OSError, ValueError, IndexError) as exc:
        return f"peer pid {pid} cannot be checked: {exc}"
    return None
