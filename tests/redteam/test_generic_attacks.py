"""The generic attacks of ``agentgym redteam`` (agentgym.redteam.GENERIC_ATTACKS) against every
registered built-in env: none earns reward or a success claim, and none crashes an env. The code
envs run on both sandbox backends (their generic attacks run no code, but the sandbox is theirs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import TEST_LABELS

import agentgym
from agentgym.redteam import GENERIC_ATTACKS, run_redteam
from agentgym.registry import all_specs

CODE_ENVS = {"agentgym/PythonTIR-v0", "agentgym/CodeTests-v0", "agentgym/HumanEval-v0"}
# TextWorld ids differ only in generator settings: TextWorld-v0 stands for them in the default pass.
ENV_IDS = [s.id for s in all_specs() if s.id.startswith("agentgym/")
           and (not s.id.startswith("agentgym/TextWorld-") or s.id == "agentgym/TextWorld-v0")
           and s.id not in CODE_ENVS]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(tmp_path_factory.mktemp("agentgym-cache")))
        yield


def _check(env_id: str, **kwargs: object) -> None:
    results = run_redteam(lambda: agentgym.make(env_id, **kwargs), seeds=(0, 1))
    assert [r.attack for r in results] == [a.name for a in GENERIC_ATTACKS]
    not_held = {r.attack: r.to_json() for r in results if r.verdict not in ("held", "n/a")}
    assert not not_held, f"{env_id}: {not_held}"
    assert sum(r.episodes for r in results) >= len(results)  # the attacks did play


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_generic_attacks_hold(env_id: str) -> None:
    _check(env_id, **({"num_games": 2} if env_id.startswith("agentgym/TextWorld-") else {}))


@pytest.mark.parametrize("env_id", sorted(CODE_ENVS))
def test_generic_attacks_hold_on_the_code_envs(env_id: str, backend: str) -> None:
    _check(env_id, backend=backend, sandbox_labels=TEST_LABELS)
