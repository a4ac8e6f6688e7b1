"""compose.yaml is validated by Compose itself (``docker-compose config``, or ``docker compose config``
where the v2 plugin is installed); CI installs Debian's ``docker-compose`` (.ci/run)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if os.environ.get("AGENTGYM_REQUIRE_DOCKER") == "1":
        pytest.fail("neither docker-compose nor `docker compose` is installed (CI installs docker-compose)")
    pytest.skip("neither docker-compose nor `docker compose` is installed")


def _config(path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RETRIEVER_PORT": "18001"}
    return subprocess.run([*_compose(), "-f", str(path), "--profile", "build", "--profile", "gpu", "config", *args],
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
