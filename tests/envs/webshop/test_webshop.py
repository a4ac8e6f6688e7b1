"""WebShop-v0: catalogue and reward, the site (local and in a container), the text backend.

Chromium tests are in test_chromium.py. Local-site tests pass ``placement="local"``; the Docker
ones need the engine and the python sandbox image (tests/conftest.py builds it when missing).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support import TEST_LABELS

import agentgym
from agentgym.core import InfraError
from agentgym.envs.webshop import shop
from agentgym.envs.webshop import site as sites
from agentgym.envs.webshop.env import WebShopEnv, catalogue, score_item, score_order
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import plan, rollout

ENV_ID = "agentgym/WebShop-v0"


def run_expert(env: WebShopEnv, seed: int) -> tuple[float, dict[str, Any], int]:
    env.reset(seed=seed)
    steps = 0
    while True:
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        steps += 1
        if terminated or truncated:
            return reward, info, steps


@pytest.fixture
def local_env() -> Any:
    env = agentgym.make(ENV_ID, placement="local")
    yield env
    env.close()


# -- catalogue, tasks, reward ---------------------------------------------------------------
def test_catalogue_is_seeded_and_large() -> None:
    first, again, other = shop.make_catalogue(0), shop.make_catalogue(0), shop.make_catalogue(1)
    assert len(first.products) >= 1000
    assert first.products == again.products and first.products != other.products
    assert len({p.type for p in first.products}) >= 20
    assert all(p.options.get("size") for p in first.products if p.category in ("clothing", "footwear"))


def test_every_goal_is_satisfiable_by_its_target() -> None:
    cat = catalogue(0, 1200)
    for task in range(300):
        goal = shop.make_goal(cat, task)
        target = cat.products[goal.target]
        assert score_item(cat, goal, target.pid, goal.options)["reward"] == 1.0
        assert target.type in goal.text and f"${goal.max_price:.2f}" in goal.text
        if "size" in goal.options:
            assert f"in size {goal.options['size']}" in goal.text
        assert goal == shop.make_goal(cat, task)


def test_reward_terms_are_exact() -> None:
    cat = catalogue(0, 1200)
    goal = shop.make_goal(cat, 1)  # a beige bamboo t-shirt, size S, under $29
    assert goal.options == {"color": "beige", "size": "S"} and goal.type == "t-shirt"
    target = cat.products[goal.target]
    # Right item, one of two options wrong: (1 attribute + 1 option + price) / (1 + 2 + 1).
    assert score_item(cat, goal, target.pid, {"color": "beige", "size": "M"})["reward"] == pytest.approx(3 / 4)
    # Another clothing type (r_type 0.5) with nothing else matching but the price.
    other = next(p for p in cat.products if p.category == "clothing" and p.type != "t-shirt"
                 and p.material != "bamboo" and p.price <= goal.max_price)
    assert score_item(cat, goal, other.pid, {})["reward"] == pytest.approx(0.5 * 1 / 4)
    # Another category: r_type 0.1. An order of two items halves the best score.
    gadget = next(p for p in cat.products if p.category == "electronics" and p.price > goal.max_price)
    assert score_item(cat, goal, gadget.pid, {})["reward"] == 0.0
    assert score_order(cat, goal, [(target.pid, goal.options), (gadget.pid, {})])["reward"] == 0.5
    assert score_order(cat, goal, [])["reward"] == 0.0


# -- the env on a local site ------------------------------------------------------------------
def test_expert_episode_and_state_keys(local_env: WebShopEnv) -> None:
    obs, info = local_env.reset(seed=3)
    assert "Instruction:" in obs and "Clickable:" in obs and info["state_key"] == ("home", "", "")
    reward, info, steps = run_expert(local_env, 3)
    assert reward == 1.0 and info["success"] and info["page"] == "done" and steps >= 3
    assert info["reward_parts"]["r_type"] == 1.0


def test_actions_and_readable_errors(local_env: WebShopEnv) -> None:
    local_env.reset(options={"task": 1})  # beige bamboo t-shirt, size S
    title = local_env.catalogue.products[local_env.goal.target].title
    obs, _, _, _, info = local_env.step(f"SEARCH[ {title.upper()} ]")
    assert info["state_key"][0] == "search" and info["parse_error"] is None and title in obs
    # Word order and case do not change the search state (one GiGPO anchor).
    _, _, _, _, again = local_env.step(f"search[{' '.join(reversed(title.lower().split()))}]")
    assert again["state_key"] == info["state_key"]
    obs, _, _, _, info = local_env.step(f"click[{title}]")
    assert info["state_key"] == ("item", f"{local_env.goal.target}[]", "")
    for bad, why in [("jump", "expected"), ("click[Nope]", "no clickable"), ("select[Add to cart]", "no option"),
                     ("click[999]", "no clickable"), ("search[]", "query"), ("search[" + "x" * 300 + "]", "query")]:
        obs, reward, terminated, _, info = local_env.step(bad)
        assert why in info["parse_error"] and obs.startswith("Invalid action") and not terminated and reward == 0
        assert info["state_key"][0] == "item" and title in obs  # the page is still shown
    _, _, _, _, info = local_env.step("select[size: M]")
    assert info["state_key"][1] == f"{local_env.goal.target}[size=M]"
    _, _, _, _, info = local_env.step("select[beige]")
    assert info["state_key"][1] == f"{local_env.goal.target}[color=beige,size=M]"
    _, _, _, _, info = local_env.step("click[Add to cart]")
    line = f"{local_env.goal.target}[color=beige,size=M]"
    assert info["state_key"] == ("cart", "", line)
    _, _, _, _, info = local_env.step("back")
    assert info["state_key"] == ("item", line, line)  # back re-reads the page: the cart is current
    _, _, _, _, info = local_env.step("select[S]")
    _, _, _, _, info = local_env.step("click[Add to cart]")
    assert info["state_key"][2] == f"{line};{local_env.goal.target}[color=beige,size=S]"
    _, _, _, _, info = local_env.step("click[Remove item 1]")
    obs, reward, terminated, _, info = local_env.step("buy")  # Checkout on the cart page
    assert terminated and reward == 1.0 and info["state_key"][0] == "done" and "Thank you" in obs


def test_wrong_purchase_scores_partially(local_env: WebShopEnv) -> None:
    local_env.reset(options={"task": 1})
    local_env.step(f"search[{local_env.catalogue.products[local_env.goal.target].title}]")
    local_env.step("click[2]")  # the second result link ("Cart (0)" is the first clickable)
    _, reward, terminated, _, info = local_env.step("buy")  # no options selected: 2 of 4 terms
    assert terminated and reward == pytest.approx(0.5) and not info["success"]


def test_sessions_are_isolated() -> None:
    first, second = (agentgym.make(ENV_ID, placement="local") for _ in range(2))
    try:
        first.reset(options={"task": 1})
        second.reset(options={"task": 1})
        assert first._held["site"] is second._held["site"]  # one site serves both
        first.step(f"search[{first.catalogue.products[first.goal.target].title}]")
        first.step("click[2]")
        _, _, _, _, info = first.step("click[Add to cart]")
        assert info["state_key"][2] != ""
        _, _, _, _, info = second.step("click[Cart (0)]")
        assert info["state_key"] == ("cart", "", "")
    finally:
        first.close()
        second.close()


def test_random_policy_does_poorly() -> None:
    env, rng = agentgym.make(ENV_ID, placement="local"), random.Random(0)
    rewards = []
    for seed in range(40):
        env.reset(seed=seed)
        reward = 0.0
        while True:
            _, reward, terminated, truncated, _ = env.step(rng.choice(env.legal_actions()))
            if terminated or truncated:
                break
        rewards.append(reward)
    env.close()
    assert sum(r == 1.0 for r in rewards) <= 2 and sum(rewards) / len(rewards) < 0.3


def test_site_is_shared_started_lazily_and_stopped_on_close() -> None:
    env = agentgym.make(ENV_ID, placement="local", seed=5)
    assert "site" not in env._held  # nothing runs until the first reset
    env.reset(seed=0)
    site = env._held["site"]
    other = agentgym.make(ENV_ID, placement="local", seed=5)
    other.reset(seed=1)
    assert other._held["site"] is site and site.users == 2
    env.close()
    assert site.process.poll() is None  # the other env still uses it
    other.close()
    assert site.process.wait(timeout=10) is not None and site.key not in sites._sites


def test_dead_site_is_an_infra_failure() -> None:
    env = agentgym.make(ENV_ID, placement="local", seed=6)
    env.reset(seed=0)
    site = env._held["site"]
    os.kill(site.process.pid, signal.SIGKILL)
    site.process.wait()
    with pytest.raises(InfraError):
        env.step("search[red shirt]")
    env.reset(seed=0)  # the next episode gets a fresh site
    assert env._held["site"] is not site and env._held["site"].process.poll() is None
    assert env.step("search[red shirt]")[4]["state_key"][0] == "search"
    env.close()


def test_rollout_engine_records_a_dying_site_as_infra() -> None:
    """The site is killed while the engine runs an episode: it is failure="infra", not reward 0."""

    class KillingPolicy(ScriptedPolicy):
        calls = 0

        async def act(self, messages: Any, env: Any) -> Any:
            KillingPolicy.calls += 1
            if KillingPolicy.calls == 2:  # mid-episode
                os.kill(env._held["site"].process.pid, signal.SIGKILL)
                env._held["site"].process.wait()
            return await super().act(messages, env)

    spec = agentgym.spec(ENV_ID)
    trajectories = asyncio.run(rollout(spec, KillingPolicy(), plan("kill", tasks=2, group_size=1), concurrency=1,
                                       env_kwargs={"placement": "local", "seed": 7}))
    first, second = sorted(trajectories, key=lambda t: t.seed)
    assert first.failure == "infra" and "InfraError" in first.failure_detail
    assert second.failure is None and second.outcome == 1.0  # the next episode got a fresh site


# -- the site in a container -------------------------------------------------------------------
@pytest.mark.docker
def test_site_container_is_isolated_and_removed(sandbox_image: str, docker_client: Any) -> None:
    env = agentgym.make(ENV_ID, placement="docker", site_labels=TEST_LABELS)
    reward, _, _ = run_expert(env, 0)
    assert reward == 1.0
    site = env._held["site"]
    container = docker_client.containers.get(site.container_id)
    network = docker_client.networks.get(site.network_id)
    assert network.attrs["Internal"] is True
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [network.name]
    # A server on the host, listening on every address: the site must not reach it, nor the world.
    server = ThreadingHTTPServer(("0.0.0.0", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gateway = network.attrs["IPAM"]["Config"][0].get("Gateway", "")
    host_ip = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()[0]
    probe = ("import socket,sys\nfor host, port in [(sys.argv[1], int(sys.argv[3])), (sys.argv[2], int(sys.argv[3])),"
             " ('1.1.1.1', 80), ('deb.debian.org', 80)]:\n"
             "    try:\n        socket.create_connection((host, port), timeout=1).close(); print('REACHED', host)\n"
             "    except OSError as e:\n        print('blocked', host, e)\n")
    result = container.exec_run(["python3", "-c", probe, gateway or host_ip, host_ip, str(server.server_address[1])])
    server.shutdown()
    output = result.output.decode()
    assert "REACHED" not in output and output.count("blocked") == 4, output
    env.close()
    with pytest.raises(Exception, match="404|No such"):
        docker_client.containers.get(site.container_id)
    with pytest.raises(Exception, match="404|not found"):
        docker_client.networks.get(site.network_id)


@pytest.mark.docker
def test_killed_site_container_is_an_infra_failure(sandbox_image: str, docker_client: Any) -> None:
    env = agentgym.make(ENV_ID, placement="docker", site_labels=TEST_LABELS, seed=8)
    env.reset(seed=0)
    site = env._held["site"]
    docker_client.containers.get(site.container_id).kill()
    with pytest.raises(InfraError):
        env.step("search[red shirt]")
    env.close()


@pytest.mark.docker
def test_sites_of_dead_processes_are_pruned(sandbox_image: str, docker_client: Any) -> None:
    from agentgym.sandboxes.reaper import owner_id, sandbox_labels

    child = subprocess.Popen(["sleep", "60"])
    labels = {**sandbox_labels("web", 3600, TEST_LABELS), "agentgym.owner": owner_id(child.pid)}
    child.kill()
    child.wait()  # the "owner" is gone now
    stale = docker_client.networks.create(f"agentgym-web-stale-{os.getpid()}", internal=True, labels=labels)
    env = agentgym.make(ENV_ID, placement="docker", site_labels=TEST_LABELS, seed=9)
    env.reset(seed=0)
    env.close()
    with pytest.raises(Exception, match="404|not found"):
        docker_client.networks.get(stale.id)
