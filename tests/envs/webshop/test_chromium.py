"""WebShop-v0's chromium backend: real Chromium (Debian's) driven by Playwright.

Skipped with a reason when Chromium or Playwright is missing, except under
AGENTGYM_REQUIRE_CHROMIUM=1 (CI installs both and sets it).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_webshop import run_expert

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/envs: the registry-wide fuzz's generator
from test_registered_envs import _random_action  # noqa: E402

import agentgym
from agentgym.core import INFO_DEFAULTS, InfraError
from agentgym.envs.webshop.backends import BrowserPool, _reap, chromium_path, process_tree

ENV_ID = "agentgym/WebShop-v0"


def _chromium_missing() -> str | None:
    try:
        import playwright  # noqa: F401

        chromium_path()
    except (ImportError, RuntimeError) as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(
    _chromium_missing() is not None and os.environ.get("AGENTGYM_REQUIRE_CHROMIUM") != "1",
    reason=f"no Chromium/Playwright: {_chromium_missing()}")


def chromium_processes() -> set[int]:
    """Chromium processes descending from this test process (other users of the machine ignored)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            names[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    mine = set()
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor != os.getpid():
            ancestor = parents[ancestor]
        if ancestor == os.getpid() and "chrom" in names.get(pid, ""):
            mine.add(pid)
    return mine


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def scripted_episode(env: Any, task: int) -> list[tuple[Any, float, bool]]:
    """A fixed script with searches, option picks, the cart, back and a checkout."""
    env.reset(options={"task": task})
    title = env.catalogue.products[env.goal.target].title
    value = next(iter(env.goal.options.values()), None)
    script = [f"search[{title}]", "click[Next >]", "back", "click[2]", "click[3]", "back", "bogus",
              *([f"select[{value}]"] if value else []), "click[Add to cart]", "back", "click[Buy now]"]
    keys = []
    for action in script:
        _, reward, terminated, _, info = env.step(action)
        keys.append((info["state_key"], reward, info["parse_error"] is None))
        if terminated:
            break
    return keys


def test_backends_agree_on_scripted_episodes() -> None:
    text = agentgym.make(ENV_ID, placement="local", backend="text")
    chromium = agentgym.make(ENV_ID, placement="local", backend="chromium")
    try:
        for task in range(3):
            assert scripted_episode(text, task) == scripted_episode(chromium, task)
        for seed in range(2):
            text_reward, text_info, _ = run_expert(text, seed)
            chromium_reward, chromium_info, _ = run_expert(chromium, seed)
            assert text_reward == chromium_reward == 1.0
            assert text_info["state_key"] == chromium_info["state_key"]
            assert text_info["reward_parts"] == chromium_info["reward_parts"]
    finally:
        text.close()
        chromium.close()


def test_observation_is_the_aria_snapshot() -> None:
    env = agentgym.make(ENV_ID, placement="local", backend="chromium")
    try:
        obs, _ = env.reset(options={"task": 1})
        assert 'textbox "Search"' in obs and "heading \"WebShop\"" in obs and "/url:" not in obs
        assert "Clickable:\n[1] Cart (0)" in obs
        obs, *_ = env.step(f"search[{env.catalogue.products[env.goal.target].title}]")
        assert "link \"" in obs and env.catalogue.products[env.goal.target].title in obs
    finally:
        env.close()


def test_browser_processes_are_pooled_and_reaped() -> None:
    """50 episodes run on one browser process (renderers come and go with contexts); after
    close() no Chromium process of ours is left."""
    baseline = chromium_processes()
    env = agentgym.make(ENV_ID, placement="local", backend="chromium")
    browsers: set[int] = set()
    for episode in range(50):
        env.reset(seed=episode)  # a fresh context (and renderer) per episode
        if episode % 10 == 0:
            browsers |= {pid for pid in chromium_processes() - baseline if "--type=" not in cmdline(pid)}
    assert len(browsers) == 1, browsers  # one browser process served every episode
    env.close()
    assert chromium_processes() == baseline
    assert not BrowserPool._shared


def test_contexts_are_fresh_per_episode() -> None:
    env = agentgym.make(ENV_ID, placement="local", backend="chromium")
    try:
        env.reset(seed=0)
        first = env._held["backend"].context
        env.step("search[mug]")
        env.reset(seed=1)
        assert env._held["backend"].context is not first and first not in first.browser.contexts
    finally:
        env.close()


def test_random_strings_never_crash_chromium() -> None:
    env, rng = agentgym.make(ENV_ID, placement="local", backend="chromium"), random.Random(1)
    try:
        env.reset(seed=0)
        for _ in range(200):
            obs, reward, terminated, truncated, info = env.step(_random_action(rng, env.legal_actions()))
            assert isinstance(obs, str) and INFO_DEFAULTS.keys() <= info.keys()
            if terminated or truncated:
                env.reset(seed=rng.randrange(100))
    finally:
        env.close()


def test_dead_browser_is_an_infra_failure() -> None:
    env = agentgym.make(ENV_ID, placement="local", backend="chromium")
    try:
        env.reset(seed=0)
        for pid in chromium_processes():
            os.kill(pid, 9)
        with pytest.raises(InfraError):
            env.step("search[mug]")
        env.reset(seed=1)  # the pool replaced the dead browser
        assert env.step("search[mug]")[4]["state_key"][0] == "search"
    finally:
        env.close()
    assert chromium_processes() == set()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_close_returns_after_every_process_of_the_browsers_has_exited() -> None:
    """Chromium's helpers outlive browser.close() by seconds on a loaded machine; close() waits for the
    whole process tree of each browser (then kills what is left), so nothing of ours runs after it."""
    env = agentgym.make(ENV_ID, placement="local", backend="chromium", browsers=2)
    env.reset(seed=0)
    env.reset(seed=1)  # the second browser
    pool = next(iter(BrowserPool._shared.values()))
    tree = process_tree(set().union(*pool._browser_pids.values()))
    assert len(pool._browser_pids) == 2 and len(tree) > 2
    env.close()
    assert [pid for pid in tree if _alive(pid)] == []


def test_reap_kills_what_has_not_exited_in_time() -> None:
    stubborn = "import subprocess, sys, time;" \
               " subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", stubborn])
    deadline = time.monotonic() + 10
    while len(tree := process_tree({proc.pid})) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(tree) == 2
    _reap(tree, wait=0.2)  # neither exits by itself: the SIGKILL after the wait ends both
    proc.wait(5)
    deadline = time.monotonic() + 5  # a killed process takes a moment to become a zombie
    while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in tree if _alive(pid)] == []
