import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import SOURCE_ROOTS, build_wheel, source_files

ROOT = Path(__file__).parent.parent
ROOTS = SOURCE_ROOTS


def test_every_folder_is_declared_as_a_package():
    """Data-only folders too: setuptools ships package-data of declared packages only."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for rel in source_files(ROOT):
        top, *parts = Path(rel).parent.parts or ("",)
        if top in ROOTS:
            for depth in range(len(parts) + 1):
                found.add(".".join((*ROOTS[top].split("/"), *parts[:depth])))
    assert found == declared


def test_import_agentgym_is_light():
    code = ("import sys, agentgym, agentgym.envs, agentgym.rollout, agentgym.store, agentgym.credit,"
            " agentgym.mcp_env, agentgym.mcp_server;"
            "heavy = {'torch', 'transformers', 'vllm', 'datasets', 'docker', 'mcp'} & set(sys.modules);"
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, source_files(ROOT), tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_every_source_file(wheel: Path) -> None:
    """A data file (recipe, Dockerfile, template, ...) that package-data misses fails here, not on a user's machine."""
    expected = set()
    for rel in source_files(ROOT):
        top, _, rest = rel.partition("/")
        if top in ROOTS and rest:
            expected.add(f"{ROOTS[top]}/{rest}")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if not n.split("/")[0].endswith(".dist-info")}
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert sorted(expected - shipped) == [], "missing from the wheel: add the folder to packages / the pattern to package-data"
    assert sorted(shipped - expected) == []
    assert "License-Expression: Apache-2.0" in meta


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the wheel installed (no -e). Its dependencies come from
    the test's own environment through a .pth file, so the install is quick and needs no index."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # Path entries only: the editable install's own .pth hook in the dependency dirs is not run.
    Path(purelib, "agentgym_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_installed_wheel_imports_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    out = _run(installed, tmp_path, "python", "-c", "import agentgym, agentgym.trainers; print(agentgym.__file__)")
    assert Path(out.stdout.strip()).is_relative_to(installed)


def test_installed_wheel_lists_envs_and_rolls_out(installed: Path, tmp_path: Path) -> None:
    assert "agentgym/Bifurcation-v0" in _run(installed, tmp_path, "agentgym", "envs", "list").stdout
    _run(installed, tmp_path, "agentgym", "rollout", "--env", "agentgym/Bifurcation-v0", "--policy", "scripted",
         "--tasks", "3", "--group-size", "2", "--out", "runs/bif")
    lines = (tmp_path / "runs" / "bif" / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["outcome"] == 1.0 for line in lines)


def test_installed_wheel_finds_the_sandbox_images(installed: Path, tmp_path: Path) -> None:
    code = ("from agentgym.sandboxes.images import IMAGES_DIR, image_names, packages;"
            "print(image_names(), 'python3' in packages('python'), (IMAGES_DIR / 'python' / 'Dockerfile').is_file())")
    assert _run(installed, tmp_path, "python", "-c", code).stdout.split() == ["['python']", "True", "True"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}{env['PATH']}"
    unknown = subprocess.run(["agentgym", "sandbox", "build", "nosuch"], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
    assert unknown.returncode == 2 and "known: python" in unknown.stdout


def test_installed_wheel_trains_the_bundled_demo_recipe(installed: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    _run(installed, tmp_path, "agentgym", "train", "demo_bifurcation", "train.iterations=1", "train.plot=false",
         "train.tensorboard=false", "sft.steps=1", "sft.episodes=2", "eval.episodes_per_task=0", "eval.every=0",
         "rollout.tasks_per_iter=2", "rollout.group_size=2", "rollout.task_pool=2")
    rows = [json.loads(line) for line in (tmp_path / "runs" / "demo-bifurcation" / "metrics.jsonl").read_text().splitlines()]
    assert rows and "rollout/success_rate" in rows[-1]
    assert (tmp_path / "runs" / "tiny-model" / "config.json").is_file()


def _dists_needed_by(name: str) -> list[Any]:
    """``name``'s installed distribution and those it requires (markers evaluated, no extras)."""
    seen: dict[str, Any] = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key not in seen:
            seen[key] = dist = metadata.distribution(key)
            todo += [r.name for r in map(Requirement, dist.requires or [])
                     if r.marker is None or r.marker.evaluate({"extra": ""})]
    return list(seen.values())


def test_the_wheel_with_a_cpu_torch_first_pulls_no_cuda(wheel: Path, tmp_path: Path) -> None:
    """README's CPU install: torch from PyTorch's CPU index first, then the wheel with [train]. Step one is
    stood in for by this environment's CPU torch (only it and its requirements made visible in a fresh venv);
    step two is resolved for real against the configured indexes, whose newest torch is a CUDA build."""
    torch_version = metadata.version("torch") if importlib.util.find_spec("torch") else ""
    if not torch_version.endswith("+cpu"):
        pytest.skip(f"needs a CPU build of torch in the test environment, found {torch_version or 'none'}")
    venv, only_torch = tmp_path / "venv", tmp_path / "torch-site"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    only_torch.mkdir()
    for dist in _dists_needed_by("torch"):
        for top in {Path(f).parts[0] for f in dist.files if not str(f).startswith("..")} - {"__pycache__"}:
            if not top.endswith(".pth") and not (only_torch / top).exists():
                (only_torch / top).symlink_to(Path(dist.locate_file(top)))
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "torch_only.pth").write_text(f"{only_torch}\n")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "-q",
                           "--report", str(report), f"{wheel}[train]"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    pulled = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert "agentgym-rl" in pulled and "transformers" in pulled
    assert sorted(n for n in pulled if n.startswith(("nvidia-", "cuda-", "triton", "torch"))) == []
    installed_torch = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                                     check=True, capture_output=True, text=True).stdout.strip()
    assert installed_torch == torch_version


def test_setup_sh_skips_an_up_to_date_venv_and_reinstalls_after_a_change(tmp_path: Path) -> None:
    """scripts/setup.sh on a tiny project of the same layout: a fresh tree installs, the same inputs again
    install nothing, a changed pyproject.toml installs again."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    project = ('[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n'
               '[project]\nname = "setup-probe"\nversion = "0"\n[project.optional-dependencies]\ndev = []\n'
               "[tool.setuptools]\npy-modules = []\n")
    (tmp_path / "pyproject.toml").write_text(project)

    def setup() -> str:
        done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "installing agentgym[dev]" in setup()
    again = setup()
    assert "up to date" in again and "installing" not in again
    (tmp_path / "pyproject.toml").write_text(project.replace('version = "0"', 'version = "1"'))
    assert "installing agentgym[dev]" in setup()
    assert subprocess.run([str(tmp_path / ".venv" / "bin" / "python"), "-m", "pip", "show", "setup-probe"],
                          capture_output=True, text=True, check=True).stdout.count("Version: 1") == 1
