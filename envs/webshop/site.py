"""Where the shop runs: a container on an internal Docker network, or a loopback process.

One site serves every WebShop env of a process that asks for the same (placement, catalogue,
labels): envs :func:`acquire` it at their first reset and :func:`release` it on close (or when
garbage-collected); the last release stops it. It is also stopped at interpreter exit, and a
new Docker site first removes the containers and networks of sites whose process died.

With Docker the site runs ``shop.py`` in a container of the python sandbox image (read-only root,
no capabilities, user 1000, memory and pid caps) attached only to its own ``internal`` bridge
network: the host reaches it at the container's address. An internal network still lets a
container open connections to the host itself (the bridge's gateway and the host's other
addresses), so the site's network namespace is also sealed: iptables rules *inside that
namespace* (``nsenter``; nothing on the host changes) drop every new outgoing connection but
loopback, while replies to the host's requests pass. That needs root and a local engine; ``auto``
placement uses Docker only when it can seal. Without Docker (or with ``placement="local"``) the
site is a child process bound to 127.0.0.1.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.core import InfraError

from . import shop

__all__ = ["Site", "acquire", "placement_for", "release"]

log = logging.getLogger("agentgym.envs.webshop")
START_TIMEOUT_S = 60.0
PORT = 8000  # inside the container


@functools.lru_cache(maxsize=1)
def _source() -> str:
    return Path(shop.__file__).read_text()


@dataclass
class Site:
    """A running shop: its base URL and what to stop. ``broken`` once an env saw it fail."""

    key: tuple[Any, ...]
    url: str
    placement: str
    process: subprocess.Popen[bytes] | None = None
    container_id: str | None = None
    network_id: str | None = None
    client: Any = None
    users: int = 0
    broken: bool = False
    stopped: bool = field(default=False, repr=False)

    def healthy(self) -> bool:
        """Whether the site answers ``/health`` now."""
        import httpx

        try:
            return httpx.get(f"{self.url}/health", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Remove the container and its network, or kill the process (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
        if self.client is not None:
            import docker.errors

            api = self.client.api
            for remove, ident in ((functools.partial(api.remove_container, force=True), self.container_id),
                                  (api.remove_network, self.network_id)):
                try:
                    if ident is not None:
                        remove(ident)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    log.warning("could not remove %s: %s", ident, exc)


_sites: dict[tuple[Any, ...], Site] = {}
_lock = threading.Lock()


def placement_for(placement: str | None) -> str:
    """``docker`` or ``local``. ``auto`` (the default, or ``AGENTGYM_SANDBOX_BACKEND``) picks Docker when
    an engine answers and the python sandbox image is present."""
    wanted = placement or os.environ.get("AGENTGYM_SANDBOX_BACKEND", "auto")
    if wanted not in ("auto", "docker", "local"):
        raise ValueError(f"site placement must be auto, docker or local, got {wanted!r}")
    if wanted != "auto":
        return wanted
    try:
        from agentgym.sandboxes.docker_sandbox import docker_client
        from agentgym.sandboxes.images import image_present, image_tag

        if not image_present(docker_client(timeout=10), image_tag("python")):
            raise RuntimeError(f"image {image_tag('python')} is not present")
        if _seal_missing():
            raise RuntimeError(_seal_missing())
        return "docker"
    except Exception as exc:  # noqa: BLE001 — no engine (or no SDK) means local
        log.info("WebShop site runs locally: %s", exc)
        return "local"


def _seal_missing() -> str | None:
    """Why the site's namespace cannot be sealed here, or None."""
    missing = [tool for tool in ("nsenter", "iptables", "ip6tables") if shutil.which(tool) is None]
    if missing:
        return f"sealing the site container's network needs {', '.join(missing)}"
    if os.geteuid() != 0:
        return "sealing the site container's network needs root (nsenter into its namespace)"
    return None


def _seal(pid: int) -> None:
    """Drop every new outgoing connection in the network namespace of ``pid`` but loopback."""
    if _seal_missing() or not os.path.exists(f"/proc/{pid}/ns/net"):
        raise InfraError(_seal_missing() or "the Docker engine is not on this host: cannot seal the site's network")
    for tool in ("iptables", "ip6tables"):
        for rule in (["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
                     ["-o", "lo", "-j", "ACCEPT"], ["-j", "DROP"]):
            done = subprocess.run(["nsenter", "-t", str(pid), "-n", tool, "-w", "-A", "OUTPUT", *rule],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise InfraError(f"cannot seal the site's network ({tool}): {done.stderr.strip()}")


def acquire(placement: str, seed: int, n_products: int, labels: dict[str, str] | None = None) -> Site:
    """The shared site for these settings, started now if there is none (or the last one broke)."""
    key = (placement, seed, n_products, tuple(sorted((labels or {}).items())))
    with _lock:
        site = _sites.get(key)
        if site is None or site.broken:
            if site is not None:
                _sites.pop(key)
                if site.users == 0:
                    site.stop()
            site = _start(key, placement, seed, n_products, labels or {})
            _sites[key] = site
        site.users += 1
        return site


def release(site: Site) -> None:
    """One user fewer; the last one stops the site."""
    with _lock:
        site.users -= 1
        if site.users > 0:
            return
        if _sites.get(site.key) is site:
            del _sites[site.key]
    site.stop()


@atexit.register
def _stop_all() -> None:
    with _lock:
        sites = list(_sites.values())
        _sites.clear()
    for site in sites:
        site.stop()


def _start(key: tuple[Any, ...], placement: str, seed: int, n_products: int, labels: dict[str, str]) -> Site:
    start = _start_docker if placement == "docker" else _start_local
    site = start(key, seed, n_products, labels)
    try:
        _wait_healthy(site)
    except BaseException:
        site.stop()
        raise
    log.info("WebShop site up at %s (%s)", site.url, placement)
    return site


def _start_local(key: tuple[Any, ...], seed: int, n_products: int, labels: dict[str, str]) -> Site:
    process = subprocess.Popen([sys.executable, "-I", "-B", "-c", _source(), "127.0.0.1", "0", str(seed),
                                str(n_products)], stdout=subprocess.PIPE, start_new_session=True)
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    words = line[0].split() if line else []
    if len(words) != 2 or words[0] != b"listening":
        Site(key, "", "local", process=process).stop()
        raise InfraError(f"the local WebShop site did not start (exit code {process.poll()})")
    return Site(key, f"http://127.0.0.1:{int(words[1])}", "local", process=process)


def _start_docker(key: tuple[Any, ...], seed: int, n_products: int, labels: dict[str, str]) -> Site:
    import docker
    import docker.errors

    from agentgym.sandboxes.docker_sandbox import docker_client
    from agentgym.sandboxes.images import image_tag
    from agentgym.sandboxes.reaper import sandbox_labels

    client = docker_client()
    api = client.api
    _prune_stale(client)
    name = f"agentgym-web-{uuid.uuid4().hex[:10]}"
    site = Site(key, "", "docker", client=client)
    all_labels = sandbox_labels("web", 24 * 3600, labels)
    try:
        site.network_id = api.create_network(name, driver="bridge", internal=True, labels=all_labels)["Id"]
        host_config = api.create_host_config(
            network_mode=name, read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=16m"},
            mem_limit="256m", memswap_limit="256m", nano_cpus=int(1e9), pids_limit=128, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], init=True, log_config={"type": "none", "config": {}})
        site.container_id = api.create_container(
            image_tag("python"), command=["python3", "-u", "-B", "-c", _source(), "0.0.0.0", str(PORT), str(seed),
                                          str(n_products)],
            user="1000:1000", name=name, hostname="webshop", labels=all_labels, host_config=host_config,
            environment={"LANG": "C.UTF-8"})["Id"]
        api.start(site.container_id)
        state = api.inspect_container(site.container_id)
        address = state["NetworkSettings"]["Networks"][name]["IPAddress"]
        _seal(state["State"]["Pid"])
    except (docker.errors.DockerException, OSError, KeyError, InfraError) as exc:
        site.stop()
        raise InfraError(f"cannot start the WebShop site container: {exc}") from exc
    site.url = f"http://{address}:{PORT}"
    return site


def _prune_stale(client: Any) -> None:
    """Remove site containers and networks left by processes that died without closing them."""
    import docker.errors

    from agentgym.sandboxes.reaper import LABEL, OWNER, POOL, owner_alive, prune

    prune(client, label=f"{POOL}=web")
    for network in client.api.networks(filters={"label": [f"{LABEL}=1", f"{POOL}=web"]}):
        if owner_alive((network.get("Labels") or {}).get(OWNER, "")) is False:
            try:
                client.api.remove_network(network["Id"])
            except docker.errors.APIError as exc:  # gone meanwhile, or a container still attached
                log.info("left stale network %s: %s", network["Name"], exc)


def _wait_healthy(site: Site) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if site.healthy():
            return
        if site.process is not None and site.process.poll() is not None:
            raise InfraError(f"the WebShop site exited with code {site.process.returncode}")
        if site.container_id is not None:
            state = site.client.api.inspect_container(site.container_id)["State"]
            if not state.get("Running"):
                raise InfraError(f"the WebShop site container stopped (exit code {state.get('ExitCode')})")
        if time.monotonic() > deadline:
            raise InfraError(f"the WebShop site at {site.url} did not answer within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
