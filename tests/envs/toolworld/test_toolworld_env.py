"""ToolWorld: gold plans reproduce gold states, the judge is the final state, the simulated user
holds facts the agent must ask for, state_key semantics, partial credit, OTC, and the policies.
(The registry-wide contract tests — check_env, 10,000 random strings, expert ≥ 95% — run on
every ToolWorld variant from tests/envs/test_registered_envs.py.)"""

from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentgym
from agentgym.envs.toolworld.env import ToolWorldEnv
from agentgym.envs.toolworld.world import MUTATING, canonical
from agentgym.policies import make_policy
from agentgym.rollout import plan, rollout
from agentgym.tools import format_tool_calls

VARIANTS = ["agentgym/ToolWorld-Easy-v0", "agentgym/ToolWorld-v0", "agentgym/ToolWorld-Hard-v0"]


def call(name: str, /, **arguments: Any) -> str:
    return format_tool_calls([{"name": name, "arguments": arguments}])


def play(env: ToolWorldEnv, actions: list[str]) -> tuple[float, dict[str, Any]]:
    total, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total, info


def expert_episode(env: ToolWorldEnv) -> tuple[float, dict[str, Any], int]:
    steps, total = 0, 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        steps, total = steps + 1, total + reward
        if terminated or truncated:
            return total, info, steps


def test_two_domains_and_at_least_12_tools() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    assert len(env.tools) >= 12 and "message_user" in env.tools
    schemas = {s["function"]["name"]: s["function"] for s in env.tool_schemas()}
    address = schemas["update_shipping_address"]["parameters"]["properties"]["address"]
    assert address["type"] == "object" and address["required"] == ["street", "city", "zip_code"]
    assert schemas["cancel_order"]["parameters"]["properties"]["reason"]["enum"] == [
        "no_longer_needed", "ordered_by_mistake", "found_cheaper"]
    templates = set()
    for seed in range(300):
        templates.update(env.reset(seed=seed)[1]["templates"])
    assert {"cancel_order", "update_address", "refund_order", "return_items"} <= templates  # shop
    assert {"schedule_event", "reschedule_event", "cancel_event", "add_attendee", "update_email"} <= templates


@pytest.mark.parametrize("env_id", VARIANTS)
def test_expert_always_reaches_the_gold_state(env_id: str) -> None:
    env = agentgym.make(env_id).unwrapped
    for seed in range(100):
        env.reset(seed=seed)
        assert canonical(env.world.state) != env.gold_state  # every task changes the world
        reward, info, steps = expert_episode(env)
        assert reward == 1.0 and info["success"] and canonical(env.world.state) == env.gold_state
        assert steps == len(env.plan) + 1 and info["tool_calls_made"] == info["gold_calls"]


def test_hard_has_two_requests_and_dialogue_is_common() -> None:
    env = agentgym.make("agentgym/ToolWorld-Hard-v0").unwrapped
    infos = [env.reset(seed=s)[1] for s in range(100)]
    assert all(len(i["templates"]) == 2 for i in infos)
    assert sum(i["needs_user"] for i in infos) > 70
    easy = agentgym.make("agentgym/ToolWorld-Easy-v0").unwrapped
    assert not any(easy.reset(seed=s)[1]["needs_user"] for s in range(100))


def test_hidden_facts_are_not_in_the_request_and_must_be_asked() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    checked = 0
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        if info["templates"] != ["update_email"]:
            continue
        new_email = env.plan[-1][1]["email"]
        assert new_email not in obs
        # A plan without the question cannot know the email; the user tells it only when asked.
        _, _, _, _, info = env.step(call("message_user", message="Hello, can you help?"))
        assert new_email not in info["tool_calls"][0]["result"] and env.user.stage == 0
        key = info["state_key"]
        _, _, _, _, info = env.step(call("message_user", message="What's their new e-mail?"))
        assert new_email in info["tool_calls"][0]["result"] and env.user.stage == 1
        assert info["state_key"] != key  # the dialogue stage is part of the anchor
        checked += 1
    assert checked >= 5


def test_only_the_final_state_counts() -> None:
    env = agentgym.make("agentgym/ToolWorld-Easy-v0").unwrapped
    for seed in range(60):
        env.reset(seed=seed)
        mutations = [call(n, **a) for n, a in env.plan if n in MUTATING]
        reward, info = play(env, [*mutations, "<answer>done</answer>"])  # no lookups at all
        assert reward == 1.0 and info["success"]


def test_wrong_change_fails_and_partial_credit_scores_it() -> None:
    strict = agentgym.make("agentgym/ToolWorld-Easy-v0").unwrapped
    lenient = agentgym.make("agentgym/ToolWorld-Easy-v0", partial_credit=True).unwrapped
    seen = 0
    for seed in range(100):
        strict.reset(seed=seed)
        if strict.plan[-1][0] != "return_items" or len(strict.plan[-1][1]["skus"]) < 2:
            continue
        name, arguments = strict.plan[-1]
        half = call(name, **{**arguments, "skus": arguments["skus"][:1]})  # returns only part
        reward, info = play(strict, [half, "<answer>done</answer>"])
        assert reward == 0.0 and not info["success"] and 0.0 < info["score"] < 1.0
        lenient.reset(seed=seed)
        reward, info = play(lenient, [half, "<answer>done</answer>"])
        assert reward == pytest.approx(0.5 * info["score"]) and 0.0 < reward < 0.5
        seen += 1
    assert seen >= 3
    lenient.reset(seed=0)
    reward, info = play(lenient, ["<answer>done</answer>"])  # nothing done: nothing right
    assert reward == 0.0 and info["score"] == 0.0


def test_otc_penalty_for_calls_beyond_the_gold_plan() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0", otc_penalty=0.1).unwrapped
    env.reset(seed=4)
    extra = [call("list_events", day=1)] * 3
    reward, info = play(env, [*extra, *[call(n, **a) for n, a in env.plan], "<answer>done</answer>"])
    assert info["success"] and info["tool_calls_made"] == info["gold_calls"] + 3
    assert reward == pytest.approx(0.7)
    env.reset(seed=4)
    assert expert_episode(env)[0] == 1.0  # the gold plan's count is not penalised


def test_state_key_lookups_keep_it_mutations_change_it_and_undo_restores_it() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    _, info = env.reset(seed=11)
    start = info["state_key"]
    _, _, _, _, info = env.step(call("list_events", day=2) + call("find_contacts", name="Lee"))
    assert info["state_key"] == start
    event_id, event = next(iter(env.world.state["events"].items()))
    event = dict(event)
    free = next((d, h) for d in range(1, 8) for h in range(9, 18)
                if all((e["day"], e["hour"]) != (d, h) for e in env.world.state["events"].values()))
    _, _, _, _, info = env.step(call("reschedule_event", event_id=event_id, day=free[0], hour=free[1]))
    moved = info["state_key"]
    assert moved != start
    _, _, _, _, info = env.step(call("reschedule_event", event_id=event_id, day=event["day"], hour=event["hour"]))
    assert info["state_key"] == start  # same world, same knowledge: same anchor
    other = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    other.reset(seed=11)
    _, _, _, _, info = other.step(call("reschedule_event", event_id=event_id, day=free[0], hour=free[1]))
    assert info["state_key"] == moved  # another rollout reaching the same state shares it


def test_created_events_are_judged_by_content() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    for seed in range(200):
        env.reset(seed=seed)
        if env.plan[-1][0] == "create_event":
            break
    args = env.plan[-1][1]
    taken = {(e["day"], e["hour"]) for e in env.world.state["events"].values()} | {(args["day"], args["hour"])}
    wrong = next((d, h) for d in range(1, 8) for h in range(9, 18) if (d, h) not in taken)
    # create it at a wrong time, cancel it, create it right: a different event id, the same state
    _, _, _, _, info = env.step(call("create_event", **{**args, "day": wrong[0], "hour": wrong[1]}))
    created = re.search(r"E\d+", info["tool_calls"][0]["result"]).group(0)
    reward, info = play(env, [call("cancel_event", event_id=created), call("create_event", **args),
                              "<answer>done</answer>"])
    assert reward == 1.0


@pytest.mark.parametrize(("action", "needle"), [
    (call("cancel_order", order_id="O1", reason="no_longer_needed"), "no order with id 'O1'"),
    (call("cancel_order", order_id="{oid}", reason="bored"), "must be one of"),
    (call("list_events", day=9), "day must be between 1 and 7"),
    (call("update_contact", contact_id="{kid}"), "give an email or a phone number"),
    (call("update_shipping_address", order_id="{oid}", address={"street": "x"}), "missing required argument 'city'"),
    (call("message_user", message="  "), "the message is empty"),
])
def test_refusals_are_readable_and_change_nothing(action: str, needle: str) -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    _, info = env.reset(seed=5)
    before = json.dumps(canonical(env.world.state), sort_keys=True)
    action = action.replace("{oid}", next(iter(env.world.state["orders"]))).replace(
        "{kid}", next(iter(env.world.state["contacts"])))
    obs, reward, terminated, _, step_info = env.step(action)
    assert needle in obs and needle in step_info["parse_error"] and not terminated
    assert step_info["tool_calls"][0]["error_kind"] == "agent" and step_info["failure"] is None
    assert json.dumps(canonical(env.world.state), sort_keys=True) == before
    assert step_info["state_key"] == info["state_key"]


def test_a_delivered_order_cannot_be_cancelled() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0").unwrapped
    env.reset(seed=2)
    oid = next(k for k, o in env.world.state["orders"].items() if o["status"] == "delivered")
    obs, *_ = env.step(call("cancel_order", order_id=oid, reason="found_cheaper"))
    assert obs == f"Error: order {oid} is delivered; only pending orders can be cancelled"


def test_kwargs_are_checked() -> None:
    with pytest.raises(ValueError, match="difficulty"):
        ToolWorldEnv("impossible")
    with pytest.raises(ValueError, match="domains"):
        ToolWorldEnv(domains=("garden",))
    env = ToolWorldEnv(domains=("calendar",))
    assert all(t in {"schedule_event", "reschedule_event", "cancel_event", "add_attendee", "update_email"}
               for s in range(50) for t in env.reset(seed=s)[1]["templates"])
    hard_shop = ToolWorldEnv("hard", domains=["shop"])
    for seed in range(30):
        hard_shop.reset(seed=seed)
        assert expert_episode(hard_shop)[0] == 1.0


def _success_rate(policy_name: str, episodes: int, **kwargs: Any) -> float:
    items = plan("toolworld", tasks=episodes, group_size=1)
    trajs = asyncio.run(rollout(agentgym.spec("agentgym/ToolWorld-v0"), make_policy(policy_name, seed=0), items,
                                concurrency=8, **kwargs))
    assert not any(t.failure for t in trajs)
    return sum(t.success for t in trajs) / len(trajs)


def test_scripted_policy_succeeds_random_policy_does_not() -> None:
    assert _success_rate("scripted", 60) == 1.0
    assert _success_rate("random", 100) <= 0.03


def test_random_legal_actions_are_well_formed() -> None:
    env = agentgym.make("agentgym/ToolWorld-Hard-v0").unwrapped
    rng = random.Random(0)
    env.reset(seed=0)
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(rng.choice(env.legal_actions()))
        for entry in info["tool_calls"]:
            assert entry.get("error_kind") != "infra"
            assert "error" not in entry or "invalid arguments" not in entry["error"]
        if terminated or truncated:
            env.reset(seed=rng.randrange(1000))


_json = st.recursive(st.none() | st.booleans() | st.integers(-3, 30) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=6)
_TOOL_NAMES = sorted(ToolWorldEnv().tools)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*_TOOL_NAMES, "nope"]),
                          st.dictionaries(st.sampled_from(["order_id", "event_id", "day", "hour", "name", "skus",
                                                           "address", "attendees", "email", "x"]), _json,
                                          max_size=4)), min_size=1, max_size=4))
def test_arbitrary_calls_never_crash_and_are_the_agents_fault(calls: list[tuple[str, dict[str, Any]]]) -> None:
    env = ToolWorldEnv()
    env.reset(seed=1)
    for name, arguments in calls:
        obs, reward, terminated, _, info = env.step(call(name, **arguments))
        assert isinstance(obs, str) and reward == 0.0 and not terminated
        for entry in info["tool_calls"]:
            assert entry.get("error_kind") in (None, "agent"), entry  # never an env bug


# -- issue 21, item 2: only a declared call syntax runs; every model format plays an episode ----
def _formats() -> dict[str, Any]:
    ds = ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{head}<｜tool▁sep｜>{body}<｜tool▁call▁end｜>"
          "<｜tool▁calls▁end｜>")

    def qwen3(name: str, args: dict[str, Any]) -> str:
        params = "".join(f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v)}\n</parameter>\n"
                         for k, v in args.items())
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"

    return {
        "hermes": lambda n, a: call(n, **a),
        "qwen3-coder": qwen3,
        "llama3-json": lambda n, a: json.dumps({"name": n, "parameters": a}),
        "llama3-python-tag": lambda n, a: "<|python_tag|>" + json.dumps({"name": n, "parameters": a}) + "<|eom_id|>",
        "llama4-function": lambda n, a: f"<function={n}>{json.dumps(a)}</function>",
        "mistral-list": lambda n, a: "[TOOL_CALLS]" + json.dumps([{"name": n, "arguments": a}]),
        "mistral-v11": lambda n, a: f"[TOOL_CALLS]{n}[ARGS]{json.dumps(a)}",
        "deepseek-v3": lambda n, a: ds.format(head="function", body=f"{n}\n```json\n{json.dumps(a)}\n```"),
        "deepseek-v3.1": lambda n, a: ds.format(head=n, body=json.dumps(a)),
        "fenced-json": lambda n, a: "I will call it.\n```json\n" + json.dumps({"name": n, "arguments": a}) + "\n```",
        "reasoning-then-hermes": lambda n, a: f"<think>{json.dumps({'name': 'cancel_order', 'arguments': {}})}"
                                              f"</think>\n{call(n, **a)}",
    }


@pytest.mark.parametrize("fmt", sorted(_formats()))
def test_every_model_format_plays_the_gold_plan(fmt: str) -> None:
    render = _formats()[fmt]
    for seed in range(4):
        env = agentgym.make("agentgym/ToolWorld-v0")
        env.reset(seed=seed)
        for name, arguments in env.plan:
            _, _, _, _, info = env.step(render(name, arguments))
            assert info["parse_error"] is None and [c["name"] for c in info["tool_calls"]] == [name], (fmt, info)
        _, reward, terminated, _, info = env.step("<answer>done</answer>")
        assert terminated and reward == 1.0 and info["success"], (fmt, seed)


def test_json_inside_prose_does_not_cancel_the_order() -> None:
    """The issue's input: after reset(seed=0) this cancelled order O2526 for good."""
    env = agentgym.make("agentgym/ToolWorld-v0")
    env.reset(seed=0)
    before = canonical(env.world.state)
    for text in ['I should NOT do {"name": "cancel_order", "arguments": {"order_id": "O2526", '
                 '"reason": "found_cheaper"}}',
                 'Plan: maybe {"name": "cancel_order", "arguments": {"order_id": "O2526", "reason": "found_cheaper"}} '
                 "later, after asking.",
                 'The user wrote ```{"name": "cancel_order", "arguments": {"order_id": "O2526"}}``` earlier.']:
        _, reward, terminated, _, info = env.step(text)
        assert info["tool_calls"] == () and not terminated and reward == 0.0, (text, info)
    assert canonical(env.world.state) == before and env.world.state["orders"]["O2526"]["status"] == "pending"
    assert env.history == []


def test_a_record_quoted_back_is_not_a_call() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0")
    env.reset(seed=0)
    obs, *_ = env.step(call("find_contacts", name="Nguyen"))
    (record,) = json.loads(obs)
    assert record["name"] == "Quinn Nguyen"
    for text in [f"Found {json.dumps(record)}; now I ask for the email.", json.dumps(record),
                 f"```json\n{json.dumps(record)}\n```"]:
        _, _, _, _, info = env.step(text)
        assert info["tool_calls"] == (), (text, info)
        assert "Quinn Nguyen" not in json.dumps(env.history[1:])
    assert len(env.history) == 1  # only the find_contacts call ran


@pytest.mark.parametrize("text", [
    '<function=find_contacts>{"name": "Quinn"}</function>',
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>find_contacts\n```json\n"
    '{"name": "Quinn"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
])
def test_llama4_and_deepseek_call_the_tool_not_the_argument(text: str) -> None:
    env = agentgym.make("agentgym/ToolWorld-v0")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(text)
    assert [c["name"] for c in info["tool_calls"]] == ["find_contacts"] and "Quinn Nguyen" in obs, info
