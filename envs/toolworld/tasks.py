"""ToolWorld's task templates and the scripted simulated user.

A template turns a world and a seeded rng into a :class:`Subtask`: the request the user makes,
the hidden gold plan (the calls an expert makes, lookups and questions to the user included),
and the facts only the user knows. With ``hidden=True`` a fact the plan needs (a cancellation
reason, a new time…) is left out of the request; the agent must ask with ``message_user``.
Some templates always hide a fact (a new address or email is never in the request).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from .world import DAYS, HOURS, STREETS, TITLES, World

__all__ = ["CALENDAR", "SHOP", "Fact", "Subtask", "UserSim"]

Call = tuple[str, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Fact:
    """Something only the user knows; revealed when a message mentions one of ``keywords``."""

    key: str
    keywords: tuple[str, ...]
    reply: str


@dataclasses.dataclass(frozen=True)
class Subtask:
    template: str
    request: str
    plan: tuple[Call, ...]
    facts: tuple[Fact, ...] = ()


REASONS = {"no_longer_needed": "I don't need it anymore", "ordered_by_mistake": "I ordered it by mistake",
           "found_cheaper": "I found it cheaper elsewhere"}
METHODS = {"original_payment": "back to my card", "store_credit": "as store credit"}
KEYWORDS = {
    "reason": ("reason", "why"),
    "method": ("refund", "method", "credit", "card"),
    "address": ("ship", "where", "deliver", "new address", "postal"),
    "time": ("when", "time", "day", "hour"),
    "email": ("email", "e-mail", "mail"),
}
QUESTIONS = {
    "reason": "Could you tell me the reason for the cancellation?",
    "method": "How would you like to be refunded: to your card or as store credit?",
    "address": "What is the new shipping address?",
    "time": "When should it be (day and hour)?",
    "email": "What is the new email?",
}


def _ask(key: str, reply: str) -> tuple[Call, Fact]:
    return ("message_user", {"message": QUESTIONS[key]}), Fact(key, KEYWORDS[key], reply)


def _customer_order(rng: random.Random, world: World, status: str,
                    min_items: int = 1) -> tuple[str, str, str, str] | None:
    """(customer id, name, order id, how the user describes the order): an order in ``status``
    identified unambiguously by one of its products among the customer's orders in that status."""
    state = world.state
    candidates = [(oid, o) for oid, o in state["orders"].items()
                  if o["status"] == status and len(o["items"]) >= min_items]
    rng.shuffle(candidates)
    for oid, order in candidates:
        cid = order["customer_id"]
        siblings = [state["orders"][o] for o in state["customers"][cid]["orders"] if o != oid]
        taken = {i["sku"] for o in siblings if o["status"] == status for i in o["items"]}
        unique = [i["sku"] for i in order["items"] if i["sku"] not in taken]
        if unique:
            product = state["products"][rng.choice(unique)]["name"]
            return cid, state["customers"][cid]["name"], oid, f"my {status} order with the {product}"
    return None


def _lookup(cid: str, name: str, oid: str) -> tuple[Call, ...]:
    return (("find_customers", {"name": name}), ("get_customer", {"customer_id": cid}),
            ("get_order", {"order_id": oid}))


def cancel_order(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    found = _customer_order(rng, world, "pending")
    if found is None:
        return None
    cid, name, oid, what = found
    reason = rng.choice(sorted(REASONS))
    ask, fact = _ask("reason", f"{REASONS[reason]}.")
    why = "" if hidden else f" {REASONS[reason]}."
    return Subtask("cancel_order", f"I'm {name}. Please cancel {what}.{why}",
                   (*_lookup(cid, name, oid), *([ask] if hidden else []),
                    ("cancel_order", {"order_id": oid, "reason": reason})), (fact,) if hidden else ())


def update_address(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    found = _customer_order(rng, world, "pending")
    if found is None:
        return None
    cid, name, oid, what = found
    address = {"street": f"{rng.randint(100, 199)} {rng.choice(STREETS)}", "city": "Greyhaven",
               "zip_code": f"{rng.randint(10000, 99999)}"}
    ask, fact = _ask("address", f"It's {address['street']}, {address['zip_code']} {address['city']}.")
    return Subtask("update_address", f"I'm {name}. I have moved; please change the shipping address of {what}.",
                   (*_lookup(cid, name, oid), ask, ("update_shipping_address", {"order_id": oid, "address": address})),
                   (fact,))


def refund_order(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    found = _customer_order(rng, world, "delivered")
    if found is None:
        return None
    cid, name, oid, what = found
    method = rng.choice(sorted(METHODS))
    ask, fact = _ask("method", f"{METHODS[method].capitalize()}, please.")
    how = "" if hidden else f" {METHODS[method]}"
    return Subtask("refund_order", f"I'm {name}. I want a full refund for {what}{how}.",
                   (*_lookup(cid, name, oid), *([ask] if hidden else []),
                    ("refund_order", {"order_id": oid, "method": method})), (fact,) if hidden else ())


def return_items(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    found = _customer_order(rng, world, "delivered", min_items=2)
    if found is None:
        return None
    cid, name, oid, what = found
    items = world.state["orders"][oid]["items"]
    chosen = rng.sample([i["sku"] for i in items], rng.randint(1, len(items) - 1))
    names = " and the ".join(world.state["products"][s]["name"] for s in chosen)
    return Subtask("return_items", f"I'm {name}. From {what}, I want to return the {names}.",
                   (*_lookup(cid, name, oid), ("return_items", {"order_id": oid, "skus": chosen})))


def _free_slot(rng: random.Random, world: World) -> tuple[int, int]:
    taken = {(e["day"], e["hour"]) for e in world.state["events"].values()}
    return rng.choice([(d, h) for d in DAYS for h in HOURS if (d, h) not in taken])


def schedule_event(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    contacts = world.state["contacts"]
    people = rng.sample(sorted(contacts), rng.randint(1, 2))
    used = {e["title"] for e in world.state["events"].values()}
    title = rng.choice([t for t in TITLES if t not in used])
    day, hour = _free_slot(rng, world)
    names = " and ".join(contacts[k]["name"] for k in people)
    ask, fact = _ask("time", f"Day {day} at {hour}:00.")
    when = "" if hidden else f" on day {day} at {hour}:00"
    plan = (*(("find_contacts", {"name": contacts[k]["name"]}) for k in people), *([ask] if hidden else []),
            ("list_events", {"day": day}),
            ("create_event", {"title": title, "day": day, "hour": hour, "attendees": people}))
    return Subtask("schedule_event", f"Please schedule '{title}' with {names}{when}.", plan,
                   (fact,) if hidden else ())


def _some_event(rng: random.Random, world: World) -> tuple[str, dict[str, Any]]:
    eid = rng.choice(sorted(world.state["events"]))
    return eid, world.state["events"][eid]


def reschedule_event(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    eid, event = _some_event(rng, world)
    day, hour = _free_slot(rng, world)
    ask, fact = _ask("time", f"Move it to day {day} at {hour}:00.")
    to = " to a new time" if hidden else f" to day {day} at {hour}:00"
    return Subtask("reschedule_event", f"Please move my '{event['title']}' on day {event['day']}{to}.",
                   (("list_events", {"day": event["day"]}), *([ask] if hidden else []),
                    ("reschedule_event", {"event_id": eid, "day": day, "hour": hour})), (fact,) if hidden else ())


def cancel_event(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    eid, event = _some_event(rng, world)
    return Subtask("cancel_event", f"Please cancel my '{event['title']}' on day {event['day']}.",
                   (("list_events", {"day": event["day"]}), ("cancel_event", {"event_id": eid})))


def add_attendee(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    eid, event = _some_event(rng, world)
    others = [k for k in sorted(world.state["contacts"]) if k not in event["attendees"]]
    contact = rng.choice(others)
    name = world.state["contacts"][contact]["name"]
    return Subtask("add_attendee", f"Please invite {name} to my '{event['title']}' on day {event['day']}.",
                   (("list_events", {"day": event["day"]}), ("find_contacts", {"name": name}),
                    ("add_attendee", {"event_id": eid, "contact_id": contact})))


def update_email(rng: random.Random, world: World, hidden: bool) -> Subtask | None:
    contact = rng.choice(sorted(world.state["contacts"]))
    name = world.state["contacts"][contact]["name"]
    email = f"{name.split()[0].lower()}.{rng.randint(10, 99)}@newmail.test"
    ask, fact = _ask("email", f"It's {email}.")
    return Subtask("update_email", f"{name} has a new email address; please update my contacts.",
                   (("find_contacts", {"name": name}), ask, ("update_contact", {"contact_id": contact, "email": email})),
                   (fact,))


Template = Callable[[random.Random, World, bool], "Subtask | None"]
SHOP: dict[str, Template] = {"cancel_order": cancel_order, "update_address": update_address,
                             "refund_order": refund_order, "return_items": return_items}
CALENDAR: dict[str, Template] = {"schedule_event": schedule_event, "reschedule_event": reschedule_event,
                                 "cancel_event": cancel_event, "add_attendee": add_attendee,
                                 "update_email": update_email}
#: Templates whose request always leaves a fact out (so "easy", with no dialogue, skips them).
ALWAYS_HIDDEN = frozenset({"update_address", "update_email"})


class UserSim:
    """The scripted, seeded user: reveals a fact when a message mentions one of its keywords,
    otherwise restates the request (phrasing drawn from the task's rng)."""

    FILLERS = ("Sorry, I'm not sure what you mean.", "Hm, what exactly do you need from me?",
               "I'm not sure I follow.")

    def __init__(self, facts: tuple[Fact, ...], request: str, rng: random.Random):
        self.facts = facts
        self.request = request
        self.filler = rng.choice(self.FILLERS)
        self.revealed: list[str] = []

    @property
    def stage(self) -> int:
        """How many facts the user has told so far (part of ToolWorld's state_key)."""
        return len(self.revealed)

    def reply(self, message: str) -> str:
        text = message.lower()
        matches = [f for f in self.facts if any(k in text for k in f.keywords)]
        matches.sort(key=lambda f: f.key in self.revealed)  # a fact not told yet first
        if matches:
            if matches[0].key not in self.revealed:
                self.revealed.append(matches[0].key)
            return matches[0].reply
        if not self.facts:
            return f"Everything you need is in my request: {self.request}"
        return f"{self.filler} {self.request}"
