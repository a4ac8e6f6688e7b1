"""DockerSandbox: one container per sandbox, one resident executor per container.

Secure defaults (each can only be loosened on purpose through :class:`SandboxSpec`):
no network (``network_mode=none``), read-only root with size-capped tmpfs on /tmp and the work
dir /workspace, ``mem_limit == memswap_limit``, a CPU quota, ``pids_limit``, ``no-new-privileges``,
docker-init as PID 1, no log driver (the protocol stream is not written to disk), and gVisor's
``runsc`` when asked for. The executor runs as root with only CAP_SETUID, CAP_SETGID and
CAP_KILL; user code runs as a random uid of its own (no capabilities, first in line for the
OOM killer), so it cannot signal, trace or freeze the executor. Files in the tmpfs dirs are charged
to the container's memory cgroup, so its limit is ``memory_mb`` plus the tmpfs sizes plus a
reserve for the executor: a full work dir can neither starve the code nor OOM-kill the executor.

With an engine on this host (a unix socket), the host talks to the executor over a unix socket
bind-mounted into the container: the bytes of a call never pass through dockerd. Otherwise (or
with ``AGENTGYM_SANDBOX_DIRECT=0``) it uses the container's attached stdin/stdout (one hijacked
HTTP connection to the engine, kept open). Never a ``docker exec`` per call. Either way, if the
owning process dies its end closes, the executor reads EOF and exits, and the reaper then
removes the stopped container.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

from . import executor
from .base import BaseSandbox, SandboxSpec
from .channel import Channel
from .engine import docker_client, engine_runtimes
from .errors import SandboxUnavailable
from .reaper import sandbox_labels

__all__ = ["DockerSandbox"]

START_TIMEOUT_S = 60.0
DIRECT_ENV = "AGENTGYM_SANDBOX_DIRECT"
LINK_MOUNT, LINK_NAME = "/agentgym", "executor.sock"
EXECUTOR_RESERVE_MB = 64
USER_UIDS = range(20_000, 60_000)  # inside 0..65535, so engines with userns-remap map them too
USER_RLIMITS = {"RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0}


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

        self.client = client or docker_client()
        self.container_id: str | None = None
        self._socket: Any = None
        self._link_dir: str | None = None
        if direct is None:
            direct = self.client.api.base_url.startswith("http+docker://") and os.environ.get(DIRECT_ENV) != "0"
        self.direct = direct
        listener = self._listen() if direct else None
        spec = self.spec
        runtime = self._runtime()
        uid = random.choice(USER_UIDS)
        config = {"workdir": self.workdir, "max_output": spec.max_output, "preload": list(spec.preload),
                  "user": {"uid": uid, "gid": uid}, "rlimits": USER_RLIMITS,
                  **({"connect": f"{LINK_MOUNT}/{LINK_NAME}"} if direct else {})}
        memory = f"{spec.memory_mb + spec.workdir_mb + 2 * spec.tmp_mb + EXECUTOR_RESERVE_MB}m"
        api = self.client.api
        host_config = api.create_host_config(
            network_mode="bridge" if spec.network else "none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmp_mb}m",
                   self.workdir: f"rw,nosuid,nodev,size={spec.workdir_mb}m,uid={uid},gid={uid},mode=0700"},
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
                environment={"HOME": self.workdir, "LANG": "C.UTF-8", **dict(spec.env)},
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
        except (docker.errors.DockerException, OSError) as exc:
            self.close()
            raise SandboxUnavailable(f"cannot start a sandbox container: {exc}") from exc
        raw = getattr(self._socket, "_sock", self._socket)
        self._channel = Channel(raw.fileno(), raw.fileno(), docker_stream=not direct, owner=self._socket,
                                diagnose=self._diagnose)
        try:
            self.info = self.ping(timeout=START_TIMEOUT_S)
        except Exception as exc:
            self.close()
            raise SandboxUnavailable(f"the sandbox executor did not start: {exc}") from exc

    def _listen(self) -> socket.socket:
        """A unix socket in a fresh directory that the container gets bind-mounted (read-only)."""
        self._link_dir = tempfile.mkdtemp(prefix="agentgym-link-")
        os.chmod(self._link_dir, 0o755)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(self._link_dir, LINK_NAME)
        listener.bind(path)
        os.chmod(path, 0o666)  # the executor is root without CAP_DAC_OVERRIDE
        listener.listen(1)
        return listener

    def _accept(self, listener: socket.socket) -> socket.socket:
        """The executor's connection, the only one ever accepted: the socket is then removed,
        before any user code runs, so nothing else in the container can reach it."""
        listener.settimeout(START_TIMEOUT_S)
        try:
            conn, _ = listener.accept()
        except TimeoutError as exc:
            raise OSError(f"the executor did not connect to {LINK_MOUNT} within {START_TIMEOUT_S:.0f} s "
                          f"(an engine that cannot bind-mount this host's paths? set {DIRECT_ENV}=0)") from exc
        finally:
            listener.close()
            shutil.rmtree(self._link_dir, ignore_errors=True)
        return conn

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
