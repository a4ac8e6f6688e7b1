"""The env registry: ids, specs as data (rebuilt in another process), YAML, Gymnasium, entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import pytest
from support import install_by_hand

import agentgym
from agentgym import registry
from agentgym.envs.bifurcation import BifurcationEnv
from agentgym.errors import (
    AgentGymError,
    AlreadyRegisteredError,
    ConfigError,
    NameNotFoundError,
    VersionNotFoundError,
)
from agentgym.registry import EnvSpec, UnknownEnvError

BIF = "agentgym/Bifurcation-v0"
BIF_ENTRY = "agentgym.envs.bifurcation:BifurcationEnv"
PLUGIN = Path(__file__).parent / "fixtures" / "agentgym_plugin_demo"


@pytest.fixture(autouse=True)
def _forget_new_ids() -> Iterator[None]:
    """Ids a test registers are removed afterwards (both registries), so tests stay independent."""
    before = {spec.id for spec in registry.all_specs()}
    yield
    for env_id in {spec.id for spec in registry.all_specs()} - before:
        registry.unregister(env_id)


def run_python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_register_make_spec() -> None:
    new = agentgym.register("tests/Bif3-v0", BifurcationEnv, kwargs={"horizon": 3}, max_turns=5,
                            description="short")
    assert new.entry_point == "agentgym.envs.bifurcation:BifurcationEnv"  # a class becomes "module:attr"
    assert agentgym.spec("tests/Bif3-v0") == new
    env = agentgym.make("tests/Bif3-v0")
    assert isinstance(env, BifurcationEnv) and env.horizon == 3 and env.max_turns == 5
    assert env.agentgym_spec.kwargs == {"horizon": 3, "max_turns": 5}  # the spec it was built from


def test_kwargs_override_spec_kwargs() -> None:
    agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 3, "n_options": 4})
    env = agentgym.make("tests/Bif3-v0", horizon=6, max_turns=9)
    assert (env.horizon, env.n_options, env.max_turns) == (6, 4, 9)
    assert env.agentgym_spec.kwargs == {"horizon": 6, "n_options": 4, "max_turns": 9}
    assert env.agentgym_spec.max_turns == 9
    assert agentgym.make(agentgym.spec("tests/Bif3-v0"), horizon=2).horizon == 2  # a spec works as an id



def test_reregistering() -> None:
    agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same spec again is a silent no-op
        agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 3})
    with pytest.raises(ValueError, match="already registered"):
        agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 4})
    agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 4}, force=True)
    assert agentgym.make("tests/Bif3-v0").horizon == 4


@pytest.mark.parametrize(("env_id", "entry_point", "kwargs"), [
    ("Bifurcation", BIF_ENTRY, {}),  # no version
    ("tests/bad id-v0", BIF_ENTRY, {}),
    ("tests/Lambda-v0", lambda: None, {}),  # not importable by a worker
    ("tests/Obj-v0", BIF_ENTRY, {"x": object()}),  # kwargs must be plain data
])
def test_register_rejects(env_id: str, entry_point, kwargs: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        agentgym.register(env_id, entry_point, kwargs=kwargs)
    assert env_id not in registry.registry


def test_bad_entry_point_string() -> None:
    agentgym.register("tests/NoAttr-v0", "agentgym.envs.bifurcation")
    with pytest.raises(ValueError, match="module:attr"):
        agentgym.make("tests/NoAttr-v0")


def test_max_turns_truncation() -> None:
    env = agentgym.make(BIF, horizon=5, max_turns=3)
    env.reset(seed=0)
    results = [env.step("1") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)
    sokoban = agentgym.make("agentgym/Sokoban-v0")
    assert sokoban.max_turns == agentgym.spec("agentgym/Sokoban-v0").max_turns == 40


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(UnknownEnvError) as caught:
        agentgym.make("agentgym/Bifurcaton-v0")
    message = str(caught.value)
    assert "agentgym/Bifurcaton-v0" in message and "Did you mean: agentgym/Bifurcation-v0" in message
    assert isinstance(caught.value, KeyError)
    with pytest.raises(UnknownEnvError, match="No env registered") as caught:
        agentgym.spec("zzz/Nothing-v9")
    assert "Did you mean" not in str(caught.value)


def test_a_verifiers_id_is_registered_on_first_use_and_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    env_spec = agentgym.spec("verifiers/my_vf_env-v0")
    assert (env_spec.entry_point, env_spec.kwargs) == ("agentgym.envs.verifiers:VerifiersEnv",
                                                       {"environment": "my_vf_env"})
    assert gymnasium.spec("verifiers/my_vf_env-v0").name == "my_vf_env"  # gymnasium.make sees it too
    with pytest.raises(UnknownEnvError):
        agentgym.spec("verifiers/my_vf_env-v1")  # only v0: the module has no versions of its own
    monkeypatch.setitem(sys.modules, "verifiers", None)  # as if not installed, wherever this runs
    with pytest.raises(ImportError, match=r"pip install 'agentgym-rl\[verifiers\]'"):
        agentgym.make("verifiers/my_vf_env-v0")


def test_a_verifiers_v1_id_is_registered_on_first_use_and_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    env_spec = agentgym.spec("verifiers-v1/my_taskset-v0")
    assert (env_spec.entry_point, env_spec.kwargs) == ("agentgym.envs.verifiers_v1:VerifiersV1Env",
                                                       {"taskset": "my_taskset"})
    with pytest.raises(UnknownEnvError):
        agentgym.spec("verifiers-v1/my_taskset-v1")
    monkeypatch.setitem(sys.modules, "verifiers", None)
    with pytest.raises(ImportError, match=r"pip install 'agentgym-rl\[verifiers-v1\]'"):
        agentgym.make("verifiers-v1/my_taskset-v0")


def test_spec_json_round_trip_in_another_process() -> None:
    spec = agentgym.spec(BIF)
    assert EnvSpec.from_json(spec.to_json()) == spec
    variant = agentgym.make(BIF, horizon=7, n_options=4, noise=1.0).agentgym_spec
    local = variant.make().reset(seed=11)[0]
    remote = run_python(f"""
        import sys
        from agentgym.registry import EnvSpec
        env = EnvSpec.from_json({variant.to_json()!r}).make()
        sys.stdout.write(env.reset(seed=11)[0])
    """)
    assert remote == local and "Stage 1 of 7" in remote


def test_yaml_envs_and_base_variants(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text(textwrap.dedent(f"""
        envs:
          - id: tests/YamlBif-v0
            entry_point: {BIF_ENTRY}
            kwargs: {{horizon: 3, n_options: 2}}
            max_turns: 4
            description: from yaml
          - id: tests/YamlBifNoisy-v0
            base: tests/YamlBif-v0
            kwargs: {{noise: 1.0}}
          - id: tests/Sokoban2-v0
            base: agentgym/Sokoban-v0
            kwargs: {{n_boxes: 2}}
            max_turns: 60
    """))
    specs = agentgym.load_yaml(path)
    assert [s.id for s in specs] == ["tests/YamlBif-v0", "tests/YamlBifNoisy-v0", "tests/Sokoban2-v0"]
    noisy = agentgym.spec("tests/YamlBifNoisy-v0")
    assert noisy.kwargs == {"horizon": 3, "n_options": 2, "noise": 1.0}  # base kwargs, then overrides
    assert noisy.max_turns == 4  # inherited
    # The base's description would describe another env: a variant says what it is instead.
    assert noisy.description == "variant of tests/YamlBif-v0 with {'noise': 1.0}"
    env = agentgym.make("tests/YamlBifNoisy-v0")
    assert (env.horizon, env.n_options, env.noise, env.max_turns) == (3, 2, 1.0, 4)
    sokoban = agentgym.make("tests/Sokoban2-v0")
    assert sokoban.n_boxes == 2 and sokoban.max_turns == 60
    assert len(sokoban.reset(seed=0)[1]["state_key"].replace("*", "$").split("$")) == 3

    bare = tmp_path / "bare.yaml"
    bare.write_text(f"- id: tests/Bare-v0\n  entry_point: {BIF_ENTRY}\n")
    assert agentgym.load_yaml(bare)[0].id == "tests/Bare-v0"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"envs:\n  - id: tests/Bad-v0\n    entry_point: {BIF_ENTRY}\n    kwarg: {{}}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        agentgym.load_yaml(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("envs:\n  - id: tests/Child-v0\n    base: tests/Nope-v0\n")
    with pytest.raises(UnknownEnvError):
        agentgym.load_yaml(missing)


def test_gymnasium_make() -> None:
    env = gymnasium.make(BIF, horizon=3)
    assert isinstance(env.unwrapped, BifurcationEnv) and env.unwrapped.horizon == 3
    obs, info = env.reset(seed=2)
    assert obs == agentgym.make(BIF, horizon=3).reset(seed=2)[0] and info["horizon"] == 3
    agentgym.register("tests/Bif3-v0", BIF_ENTRY, kwargs={"horizon": 3})
    assert gymnasium.make("tests/Bif3-v0").unwrapped.horizon == 3  # new ids are visible at once


def test_gymnasium_make_in_a_fresh_process() -> None:
    """Gymnasium's ``module:id`` form imports the built-ins first."""
    out = run_python(f"""
        import gymnasium
        env = gymnasium.make("agentgym.envs:{BIF}")
        print(type(env.unwrapped).__name__, env.unwrapped.horizon)
    """)
    assert out.split() == ["BifurcationEnv", "5"]


def test_entry_point_plugin_installed_with_pip(tmp_path: Path) -> None:
    source, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(PLUGIN, source)  # pip builds in the source tree: keep the repo clean
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--quiet", "--target", str(site),
         str(source)], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "agentgym_plugin_demo-0.1.0.dist-info" / "entry_points.txt").exists()
    out = run_python("""
        import json, sys
        import agentgym
        import gymnasium
        loaded = "agentgym_plugin_demo" in sys.modules  # nothing imported the plugin: the entry point did
        gym_env = gymnasium.make("plugin/Demo-v0")  # plugin ids are visible to Gymnasium too
        env = agentgym.make("plugin/Demo-v0")
        fn = agentgym.make("plugin/DemoFn-v0")
        print(json.dumps([loaded, type(gym_env.unwrapped).__name__, env.reset(seed=0)[0], env.max_turns,
                          fn.reset()[0], fn.step("bye")[1],
                          sorted(s.id for s in agentgym.registry.all_specs() if s.id.startswith("plugin/"))]))
    """, PYTHONPATH=str(site))
    loaded, gym_class, obs, max_turns, fn_obs, fn_reward, plugin_ids = json.loads(out)
    assert loaded and gym_class == "DemoEnv" and obs == "Say hello." and max_turns == 3
    assert fn_obs == "Say bye." and fn_reward == 1.0
    assert plugin_ids == ["plugin/Demo-v0", "plugin/DemoFn-v0"]
    with pytest.raises(UnknownEnvError):  # not installed here: unknown in this process
        agentgym.make("plugin/Demo-v0")


def test_gymnasium_make_works_after_a_bare_import_in_a_fresh_process():
    code = ("import agentgym, gymnasium; env = gymnasium.make('agentgym/Sokoban-v0'); "
            "print(type(env.unwrapped).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "SokobanEnv", out.stderr


def test_unknown_ids_raise_typed_errors_like_gymnasium() -> None:
    with pytest.raises(VersionNotFoundError) as caught:  # the name exists, the version does not
        agentgym.spec("agentgym/Bifurcation-v7")
    assert caught.value.suggestions == (BIF,) and BIF in str(caught.value)
    with pytest.raises(NameNotFoundError) as caught:
        agentgym.make("agentgym/Bifurcaton-v0")
    assert caught.value.env_id == "agentgym/Bifurcaton-v0" and caught.value.suggestions[0] == BIF
    for error in (VersionNotFoundError, NameNotFoundError):  # old except clauses keep matching
        assert issubclass(error, UnknownEnvError) and issubclass(error, KeyError)
        assert issubclass(error, AgentGymError)


def test_unregister_removes_the_id_from_both_registries() -> None:
    agentgym.register("tests/Gone-v0", BIF_ENTRY)
    assert gymnasium.make("tests/Gone-v0").unwrapped.horizon
    removed = registry.unregister("tests/Gone-v0")
    assert removed.entry_point == BIF_ENTRY
    with pytest.raises(NameNotFoundError):
        agentgym.spec("tests/Gone-v0")
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("tests/Gone-v0")
    with pytest.raises(UnknownEnvError):
        registry.unregister("tests/Gone-v0")


def test_re_registering_and_bad_yaml_raise_agentgym_errors(tmp_path: Path) -> None:
    agentgym.register("tests/Twice-v0", BIF_ENTRY)
    with pytest.raises(AlreadyRegisteredError, match="force=True"):
        agentgym.register("tests/Twice-v0", BIF_ENTRY, kwargs={"horizon": 2})
    bad = tmp_path / "envs.yaml"
    bad.write_text("envs: {id: tests/X-v0}\n")
    with pytest.raises(ConfigError, match="expected a list"):
        agentgym.load_yaml(bad)


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_by_hand(site, "agentgym_broken_demo", "broken = agentgym_broken_demo")
    (site / "agentgym_broken_demo.py").write_text("raise ImportError('needs a package that is not installed')\n")
    install_by_hand(site, "agentgym_plugin_demo", "demo = agentgym_plugin_demo")
    path = os.pathsep.join([str(site), str(PLUGIN)])
    proc = subprocess.run([sys.executable, "-m", "agentgym.cli", "envs", "list"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": path, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "plugin/Demo-v0" in proc.stdout and "agentgym/Bifurcation-v0" in proc.stdout  # the others still load
    assert "skipping env plugin 'broken'" in proc.stderr and "needs a package" in proc.stderr
