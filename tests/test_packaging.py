import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).parent.parent
MAPPING = {"agentgym": "agentgym", "agentgym.envs": "envs", "agentgym.sandboxes": "sandboxes",
           "agentgym.trainers": "trainers"}


def test_every_subpackage_is_declared():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for package, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    assert found == declared


def test_import_agentgym_is_light():
    code = ("import sys, agentgym, agentgym.envs, agentgym.rollout, agentgym.store, agentgym.credit;"
            "heavy = {'torch', 'transformers', 'vllm', 'datasets', 'docker'} & set(sys.modules);"
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_compose_builds_point_at_dockerfiles_and_names_the_services():
    import yaml

    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"sandbox-python", "retriever", "vllm"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            assert (ROOT / service["build"]["context"] / "Dockerfile").is_file(), name
