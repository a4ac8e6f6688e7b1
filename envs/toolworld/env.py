"""``agentgym/ToolWorld-v0``: stateful tool use judged by the final state (tau-bench style).

Each seed generates a world — a shop (customers, orders, refunds) and a calendar (contacts,
events) — and a task from the user: one request (two for ``hard``), with a hidden gold plan.
Running the gold plan on a copy of the initial world gives the gold state; when the agent
answers (``<answer>done</answer>``) the episode ends and

* **reward** = 1 if the world's judged state (:func:`~.world.canonical`) equals the gold state,
  else 0. Lookups are free: only the resulting state counts, so any order of calls that ends in
  the right state succeeds, and a wrong change (cancelling the wrong order) fails it.
* ``partial_credit=True``: a failed episode scores ``0.5 × |right changes| / |changes made or
  due|``, counting leaf fields of the state that the gold plan or the agent changed
  (``info["score"]`` holds the fraction either way; ``info["success"]`` the exact match).
* ``otc_penalty=λ`` (OTC tool efficiency): a success scores ``max(0, 1 − λ·excess)``, where
  ``excess`` is the number of tool calls beyond the gold plan's (a failed call counts).

**The simulated user.** Some requests leave out a fact the plan needs (a cancellation reason,
the refund method, a new time, a new address or email): the agent must ask with the
``message_user`` tool. The user is scripted and seeded (:class:`~.tasks.UserSim`): it tells a
fact when the message asks about it, otherwise it restates the request.

**state_key** = hash of the judged state and the dialogue stage (how many facts the user has
told), so GiGPO's anchor groups mean "same world, same knowledge"; lookups leave it unchanged.

Variants by difficulty (kwarg ``difficulty``): ``easy`` (no dialogue, small world),
``medium`` (half of the requests need dialogue), ``hard`` (two requests, one per domain,
bigger world, mostly with dialogue). ``expert_action()`` follows the gold plan;
``legal_actions()`` lists well-formed calls on the current world, for the random policy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from agentgym.tools import Tool, ToolEnv, ToolError, format_tool_calls, tool

from .tasks import ALWAYS_HIDDEN, CALENDAR, QUESTIONS, SHOP, Subtask, UserSim
from .world import (
    DAYS,
    HOURS,
    MUTATING,
    TOOL_NAMES,
    World,
    canonical,
    canonical_events,
    flatten,
    generate_world,
)

__all__ = ["DIFFICULTIES", "ToolWorldEnv"]

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "easy": {"n_customers": 4, "n_contacts": 6, "n_events": 8, "subtasks": 1, "p_hidden": 0.0, "max_turns": 20},
    "medium": {"n_customers": 6, "n_contacts": 8, "n_events": 10, "subtasks": 1, "p_hidden": 0.5, "max_turns": 25},
    "hard": {"n_customers": 8, "n_contacts": 10, "n_events": 14, "subtasks": 2, "p_hidden": 0.7, "max_turns": 40},
}
DOMAINS = {"shop": SHOP, "calendar": CALENDAR}
INSTRUCTIONS = (
    "\n\nYou are this user's assistant, with tools for the shop's orders and the user's calendar. Carry out "
    "the request with the tools. If you need something that is not in the request, ask the user with "
    "message_user. When everything is done, reply <answer>done</answer>."
)


@functools.cache
def _world_tool(name: str) -> Tool:
    """The schema of a World method, built once per process (envs are made by the dozen)."""
    return Tool.from_function(getattr(World, name))


class ToolWorldEnv(ToolEnv):
    """Procedurally generated shop + calendar world; see the module docstring."""

    def __init__(
        self,
        difficulty: str = "medium",
        *,
        domains: tuple[str, ...] | list[str] = ("shop", "calendar"),
        otc_penalty: float = 0.0,
        partial_credit: bool = False,
        max_turns: int | None = None,
        render_mode: str | None = None,
        **tool_kwargs: Any,
    ):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}")
        unknown = set(domains) - set(DOMAINS)
        if unknown or not domains:
            raise ValueError(f"domains must be a non-empty subset of {sorted(DOMAINS)}, got {list(domains)}")
        if otc_penalty < 0:
            raise ValueError("otc_penalty must be >= 0")
        self.difficulty, self.config = difficulty, DIFFICULTIES[difficulty]
        self.domains = tuple(domains)
        self.otc_penalty, self.partial_credit = float(otc_penalty), bool(partial_credit)
        super().__init__(max_turns=max_turns or self.config["max_turns"], render_mode=render_mode, **tool_kwargs)
        for name in TOOL_NAMES:  # the world's methods are the tools; calls go to the current world
            self.add_tool(dataclasses.replace(_world_tool(name), fn=self._dispatch(name)))
        self.world = World({})
        self.user = UserSim((), "", random.Random(0))
        self.plan: tuple[tuple[str, dict[str, Any]], ...] = ()
        self._key: str | None = None
        self._legal: list[str] | None = None

    def _dispatch(self, name: str) -> Callable[..., Any]:
        return lambda **arguments: getattr(self.world, name)(**arguments)

    @tool
    def message_user(self, message: str) -> str:
        """Send the user a message (e.g. a question) and get their reply.

        Args:
            message: What to say or ask.
        """
        if not message.strip():
            raise ToolError("the message is empty")
        return self.user.reply(message)

    # -- the task ----------------------------------------------------------------------------
    def _subtasks(self, rng: random.Random, world: World) -> list[Subtask] | None:
        """One request per chosen domain, or None when this world has no fitting one."""
        n = self.config["subtasks"]
        pools = [DOMAINS[d] for d in self.domains]
        chosen = rng.sample(pools, n) if len(pools) >= n else [pools[0]] * n
        subtasks: list[Subtask] = []
        for pool in chosen:
            names = [t for t in pool if self.config["p_hidden"] > 0 or t not in ALWAYS_HIDDEN]
            names = [t for t in names if t not in {s.template for s in subtasks}]
            sub = pool[rng.choice(names)](rng, world, rng.random() < self.config["p_hidden"])
            if sub is None:
                return None
            subtasks.append(sub)
        return subtasks

    def _execute(self, world: World, name: str, arguments: dict[str, Any]) -> None:
        if name in MUTATING:  # through the Tool, so arguments are validated and converted the same way
            Tool(name, "", self.tools[name].parameters, getattr(world, name), self.tools[name].arg_types)(arguments)

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        world_seed = int(self.np_random.integers(2**63))
        rng = random.Random(world_seed)
        while True:
            initial = generate_world(rng, self.config["n_customers"], self.config["n_contacts"], self.config["n_events"])
            subtasks = self._subtasks(rng, initial)
            if subtasks is None:
                continue
            gold = initial.copy()
            try:
                for sub in subtasks:
                    for name, arguments in sub.plan:
                        self._execute(gold, name, arguments)
            except ToolError:  # two requests that collide (e.g. the same slot): draw again
                continue
            break
        self.world, self.initial = initial, initial.copy()
        self.initial_events = canonical_events(initial.state)
        self.gold_state = canonical(gold.state)
        self.world_seed = world_seed
        self.plan = tuple(call for sub in subtasks for call in sub.plan)
        self.position = 0  # how much of the gold plan has been carried out (for expert_action)
        if len(subtasks) == 1:
            request = subtasks[0].request
        else:
            request = "Two things. " + " ".join(f"({i}) {s.request}" for i, s in enumerate(subtasks, 1))
        self.user = UserSim(tuple(f for s in subtasks for f in s.facts), request, rng)
        self._key, self._legal = None, None
        info = {"task_id": f"toolworld-{self.difficulty}-{world_seed:016x}", "templates": [s.template for s in subtasks],
                "needs_user": bool(self.user.facts), "state_key": self.state_key(),
                # the expert's calls, for credit that matches the agent's calls against them (MatchTIR)
                "gold_trace": [{"name": name, "arguments": dict(arguments)} for name, arguments in self.plan]}
        return request + INSTRUCTIONS, info

    # -- ToolEnv hooks ---------------------------------------------------------------------------
    def after_calls(self, calls: list[dict[str, Any]]) -> tuple[float, bool, dict[str, Any]]:
        for entry in calls:
            if "result" not in entry:
                continue
            if entry["name"] in MUTATING or entry["name"] == "message_user":
                self._key = None
            if self.position < len(self.plan) and (entry["name"], entry["arguments"]) == self.plan[self.position]:
                self.position += 1
        return 0.0, False, {}

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        final = canonical(self.world.state)
        success = final == self.gold_state
        excess = max(0, len(self.history) - len(self.plan))
        score = 1.0 if success else self._score(final)
        if success:
            reward = max(0.0, 1.0 - self.otc_penalty * excess)
        else:
            reward = 0.5 * score if self.partial_credit else 0.0
        obs = "The request is complete." if success else "The world is not in the requested state."
        return obs, reward, True, {"success": success, "score": score, "tool_calls_made": len(self.history),
                                   "gold_calls": len(self.plan)}

    def _score(self, final_state: dict[str, Any]) -> float:
        """Right changes / changes due or made, over leaf fields of the judged state."""
        initial = flatten(canonical(self.initial.state))
        gold, final = flatten(self.gold_state), flatten(final_state)
        due = {p for p in gold.keys() | initial.keys() if gold.get(p) != initial.get(p)}
        made = {p for p in final.keys() | initial.keys() if final.get(p) != initial.get(p)}
        right = {p for p in due if final.get(p) == gold.get(p)}
        return len(right) / len(due | made) if due | made else 0.0

    def state_key(self) -> str:
        """Hash of (task, dialogue stage, what differs from the initial world). Within a task
        that is the judged state itself, but hashing only the differences keeps it cheap."""
        if self._key is None:
            now, start = self.world.state, self.initial.state
            changed: dict[str, Any] = {f"{section}.{k}": v for section in ("orders", "contacts", "customers")
                                       for k, v in now[section].items() if v != start[section].get(k)}
            events = canonical_events(now)
            if events != self.initial_events:
                changed["events"] = events
            if now["refunds"]:
                changed["refunds"] = sorted((r["order_id"], r["amount"], r["method"]) for r in now["refunds"])
            text = json.dumps([self.world_seed, self.user.stage, changed], sort_keys=True)
            self._key = hashlib.sha1(text.encode()).hexdigest()[:16]
        return self._key

    # -- policies' helpers -------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The next call of the gold plan, then ``<answer>done</answer>``."""
        if self.position >= len(self.plan):
            return "<answer>done</answer>"
        name, arguments = self.plan[self.position]
        return format_tool_calls([{"name": name, "arguments": arguments}])

    def legal_actions(self) -> list[str]:
        """Well-formed calls on this task's world (most of them wrong for the task) and the answer;
        built once per episode from the initial world, so it costs nothing per step."""
        if self._legal is None:
            self._legal = [format_tool_calls([{"name": n, "arguments": a}]) for n, a in self._candidate_calls()]
            self._legal.append("<answer>done</answer>")
        return self._legal

    def _candidate_calls(self) -> list[tuple[str, dict[str, Any]]]:
        state = self.world.state
        calls: list[tuple[str, dict[str, Any]]] = []
        decoy = {"street": "1 Nowhere Rd", "city": "Arden", "zip_code": "10000"}
        for cid, customer in state["customers"].items():
            calls += [("find_customers", {"name": customer["name"].split()[0]}), ("get_customer", {"customer_id": cid})]
        for oid, order in state["orders"].items():
            calls += [("get_order", {"order_id": oid}), ("cancel_order", {"order_id": oid, "reason": "no_longer_needed"}),
                      ("refund_order", {"order_id": oid, "method": "original_payment"}),
                      ("return_items", {"order_id": oid, "skus": [order["items"][0]["sku"]]}),
                      ("update_shipping_address", {"order_id": oid, "address": decoy})]
        for kid, contact in state["contacts"].items():
            calls += [("find_contacts", {"name": contact["name"].split()[-1]}),
                      ("update_contact", {"contact_id": kid, "email": f"{kid.lower()}@example.test"})]
        first_contact = next(iter(state["contacts"]))
        for day in DAYS:
            calls += [("list_events", {"day": day}),
                      ("create_event", {"title": "Catch-up", "day": day, "hour": HOURS[0], "attendees": [first_contact]})]
        for eid, event in state["events"].items():
            calls += [("cancel_event", {"event_id": eid}),
                      ("reschedule_event", {"event_id": eid, "day": event["day"] % len(DAYS) + 1, "hour": event["hour"]}),
                      ("add_attendee", {"event_id": eid, "contact_id": first_contact})]
        calls += [("message_user", {"message": q}) for q in QUESTIONS.values()]
        return calls
