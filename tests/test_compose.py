"""compose.yaml is validated by Compose itself (``docker-compose config``, or ``docker compose config``
where the v2 plugin is installed); CI installs Debian's ``docker-compose`` (.ci/run)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import TEST_LABELS, TEST_SESSION, build_wheel, source_files

from agentgym.envs.search.data import generate_kb
from agentgym.envs.search.retrievers import BM25Retriever, HTTPRetriever

ROOT = Path(__file__).parent.parent


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return []


COMPOSE = _compose()
# CI installs docker-compose and sets AGENTGYM_REQUIRE_DOCKER=1, so there a missing one fails.
pytestmark = pytest.mark.skipif(not COMPOSE and os.environ.get("AGENTGYM_REQUIRE_DOCKER") != "1",
                                reason="neither docker-compose nor `docker compose` is installed")


def _config(path: Path, *args: str) -> subprocess.CompletedProcess:
    assert COMPOSE, "neither docker-compose nor `docker compose` is installed (CI installs docker-compose)"
    env = {**os.environ, "RETRIEVER_PORT": "18001"}
    return subprocess.run([*COMPOSE, "-f", str(path), "--profile", "build", "--profile", "gpu", "config", *args],
                          cwd=path.parent, env=env, capture_output=True, text=True)


def test_compose_file_is_valid_and_resolves_its_variables() -> None:
    done = _config(ROOT / "compose.yaml")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"sandbox-python", "agentgym", "retriever", "vllm"}
    retriever = services["retriever"]
    assert retriever["image"] == "agentgym:latest" and "serve-retriever" in retriever["command"]
    assert retriever["healthcheck"]["test"][0] == "CMD"
    port = retriever["ports"][0]
    published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port['published']}:{port['target']}"
    assert published.removesuffix("/tcp") == "127.0.0.1:18001:8001"


def test_compose_validation_catches_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: Compose rejects an unknown service key."""
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    data["services"]["retriever"]["healthchek"] = data["services"]["retriever"].pop("healthcheck")
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(data))
    done = _config(broken, "-q")
    assert done.returncode != 0 and "healthchek" in done.stdout + done.stderr


# -- the retriever service, started by Compose from an image built offline --------------------------

RETRIEVER_DOCKERFILE = """\
# The agentgym image of the root Dockerfile, rebuilt without a registry: the offline sandbox image's
# Debian Python 3.11 instead of python:3.11-slim, the wheel and its dependencies copied in.
FROM {base}
USER root
COPY site /opt/agentgym/site
RUN ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && printf '#!/usr/bin/python3\\nfrom agentgym.cli import main\\nmain()\\n' > /usr/local/bin/agentgym \\
 && chmod 755 /usr/local/bin/agentgym && mkdir -p /cache && chown 1000:1000 /cache
ENV PYTHONPATH=/opt/agentgym/site
USER 1000:1000
"""


def _runtime_distributions() -> list:
    """agentgym-rl's dependency closure (no extras), as installed in this environment."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found, todo = {}, [Requirement(r) for r in metadata.distribution("agentgym-rl").requires or []]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        dist = metadata.distribution(req.name)
        if dist.metadata["Name"].lower() not in found:
            found[dist.metadata["Name"].lower()] = dist
            todo += [Requirement(r) for r in dist.requires or []]
    return list(found.values())


def _site(wheel: Path, dest: Path) -> None:
    """The wheel installed with --target, plus the dependencies' files copied from this environment
    (same CPython minor version as the image's, so binary wheels fit; nothing downloaded)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(dest),
                    str(wheel)], check=True, capture_output=True)
    for dist in _runtime_distributions():
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:  # scripts in bin/, caches
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file.locate(), target)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason="the offline image runs Debian bookworm's Python 3.11; dependencies are copied from this one")
@pytest.mark.docker
def test_compose_starts_the_retriever_service_healthy(docker_client, sandbox_image: str, tmp_path: Path) -> None:
    """`docker-compose up retriever` exactly as compose.yaml declares it (command, cache volume,
    healthcheck, port), on an image built here without a registry; then a real search over HTTP."""
    assert COMPOSE, "neither docker-compose nor `docker compose` is installed (CI installs docker-compose)"
    files = source_files(ROOT)
    context = tmp_path / "image"
    _site(build_wheel(ROOT, files, tmp_path / "wheel"), context / "site")
    (context / "Dockerfile").write_text(RETRIEVER_DOCKERFILE.format(base=sandbox_image))
    tag = f"agentgym-test/retriever:{TEST_SESSION}"
    project = f"agentgymtest{TEST_SESSION}"
    port = _free_port()
    env = {**os.environ, "AGENTGYM_IMAGE": tag, "RETRIEVER_PORT": str(port), "RETRIEVER_KB_DOCS": "300",
           "RETRIEVER_DATA": str(tmp_path)}
    base = [*COMPOSE, "-p", project, "-f", str(ROOT / "compose.yaml")]
    docker_client.images.build(path=str(context), tag=tag, rm=True, labels=TEST_LABELS)
    try:
        up = subprocess.run([*base, "up", "-d", "--no-build", "retriever"], env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        (container,) = docker_client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        deadline = time.monotonic() + 180
        while (health := docker_client.api.inspect_container(container.id)["State"]["Health"])["Status"] != "healthy":
            assert health["Status"] == "starting" and time.monotonic() < deadline, (health, container.logs()[-2000:])
            time.sleep(1)
        kb = generate_kb(300, 0)
        local = BM25Retriever(kb.docs, cache_dir=tmp_path / "cache")
        remote = HTTPRetriever(f"http://127.0.0.1:{port}")
        for task in kb.tasks[:5]:
            query = task.hops[0].query
            assert remote.search(query, 3) == local.search(query, 3)
        remote.close()
    finally:
        subprocess.run([*base, "down", "-v", "--timeout", "5"], env=env, capture_output=True)
        docker_client.images.remove(tag, force=True)
