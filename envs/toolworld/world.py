"""ToolWorld's state and its operations: a shop (customers, orders, refunds) and a calendar
(contacts, events), as plain JSON-able dicts.

Every tool the agent calls is a typed :class:`World` method (its schema comes from the signature
and docstring); a method that refuses raises :class:`~agentgym.tools.ToolError` with a message
the agent can act on. The gold plan runs the very same methods on a copy of the initial world,
so "the state the gold plan produces" and "the state the agent produced" come from one code path.

:func:`canonical` is the state that is judged: created events are compared by content (not by
the id their creation happened to get), cancelled events are gone, refunds are a sorted list.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Literal

from agentgym.tools import ToolError

__all__ = ["MUTATING", "Address", "World", "canonical", "canonical_events", "flatten", "generate_world"]

FIRST = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena", "Milo", "Nia",
         "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tess")
LAST = ("Lee", "Okafor", "Silva", "Novak", "Tanaka", "Berg", "Costa", "Dubois", "Ivanova", "Khan", "Moreau",
        "Nguyen", "Park", "Rossi", "Varga", "Weber")
STREETS = ("Elm St", "Harbour Rd", "Mill Lane", "Oak Ave", "Quay St", "Birch Way", "Canal Rd", "Station Sq")
CITIES = ("Arden", "Belmont", "Corvale", "Dunmore", "Eastwick", "Fairport")
PRODUCTS = (("desk lamp", 2599), ("wool scarf", 1899), ("coffee grinder", 4450), ("yoga mat", 2200),
            ("phone case", 1299), ("water bottle", 950), ("bluetooth speaker", 5999), ("notebook set", 1150),
            ("rain jacket", 7900), ("chess board", 3400), ("tea kettle", 3150), ("backpack", 6400),
            ("desk plant", 1475), ("bike light", 1725), ("puzzle", 1999), ("headphones", 8900))
TITLES = ("Budget review", "Design sync", "Dentist", "Team lunch", "1:1 with manager", "Vendor call",
          "Roadmap planning", "Gym session", "Book club", "Quarterly report", "Hiring panel", "Code review",
          "Parent meeting", "Tax advisor", "Offsite prep", "Customer demo", "Board prep", "Sprint retro",
          "Launch check", "Coffee chat", "Piano lesson", "Car service")
NAMES = tuple(f"{f} {lst}" for f in FIRST for lst in LAST)
DAYS = tuple(range(1, 8))  # the days of the planning week
HOURS = tuple(range(9, 18))
SLOTS = tuple((d, h) for d in DAYS for h in HOURS)

CancelReason = Literal["no_longer_needed", "ordered_by_mistake", "found_cheaper"]
RefundMethod = Literal["original_payment", "store_credit"]
#: World methods that change the state (the others only read it).
MUTATING = frozenset({"cancel_order", "update_shipping_address", "refund_order", "return_items", "update_contact",
                      "create_event", "cancel_event", "reschedule_event", "add_attendee"})


@dataclasses.dataclass
class Address:
    """A shipping address."""

    street: str
    city: str
    zip_code: str


def _summary(order: dict[str, Any], products: dict[str, Any]) -> str:
    names = ", ".join(f"{i['qty']}x {products[i['sku']]['name']}" for i in order["items"])
    return f"{order['status']}: {names}"


class World:
    """The mutable state plus the operations the agent may perform on it (the tools)."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def copy(self) -> World:
        """A deep copy, written out for this schema (several times faster than ``deepcopy``);
        the product catalogue is never changed, so it is shared."""
        s = self.state
        return World({
            "customers": {k: {**c, "orders": list(c["orders"])} for k, c in s["customers"].items()},
            "orders": {k: {**o, "items": [dict(i) for i in o["items"]], "address": dict(o["address"])}
                       for k, o in s["orders"].items()},
            "products": s["products"],
            "refunds": [dict(r) for r in s["refunds"]],
            "contacts": {k: dict(c) for k, c in s["contacts"].items()},
            "events": {k: {**e, "attendees": list(e["attendees"])} for k, e in s["events"].items()},
            "next_event": s["next_event"],
        })

    # -- lookups ---------------------------------------------------------------------------
    def _customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self.state["customers"]:
            raise ToolError(f"no customer with id {customer_id!r}")
        return self.state["customers"][customer_id]

    def _order(self, order_id: str) -> dict[str, Any]:
        if order_id not in self.state["orders"]:
            raise ToolError(f"no order with id {order_id!r}")
        return self.state["orders"][order_id]

    def _contact(self, contact_id: str) -> dict[str, Any]:
        if contact_id not in self.state["contacts"]:
            raise ToolError(f"no contact with id {contact_id!r}")
        return self.state["contacts"][contact_id]

    def _event(self, event_id: str) -> dict[str, Any]:
        if event_id not in self.state["events"]:
            raise ToolError(f"no event with id {event_id!r}")
        return self.state["events"][event_id]

    @staticmethod
    def _match(query: str, name: str) -> bool:
        words = query.lower().split()
        return bool(words) and all(w in name.lower().split() for w in words)

    # -- shop tools ------------------------------------------------------------------------
    def find_customers(self, name: str) -> list[dict[str, str]]:
        """Find customers by name.

        Args:
            name: A first name, last name or full name (case-insensitive).
        """
        return [{"customer_id": cid, "name": c["name"], "email": c["email"]}
                for cid, c in self.state["customers"].items() if self._match(name, c["name"])]

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """A customer's profile and a one-line summary of each of their orders.

        Args:
            customer_id: The customer's id, e.g. "C104".
        """
        customer = self._customer(customer_id)
        orders = {oid: _summary(self.state["orders"][oid], self.state["products"]) for oid in customer["orders"]}
        return {"customer_id": customer_id, "name": customer["name"], "email": customer["email"], "orders": orders}

    def get_order(self, order_id: str) -> dict[str, Any]:
        """Full details of an order: items with prices (in cents), status, shipping address.

        Args:
            order_id: The order's id, e.g. "O2031".
        """
        order = self._order(order_id)
        items = [{**item, "name": self.state["products"][item["sku"]]["name"]} for item in order["items"]]
        return {"order_id": order_id, **order, "items": items}

    def cancel_order(self, order_id: str, reason: CancelReason) -> str:
        """Cancel a pending order (shipped or delivered orders cannot be cancelled).

        Args:
            order_id: The order to cancel.
            reason: Why the customer cancels.
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"order {order_id} is {order['status']}; only pending orders can be cancelled")
        order["status"], order["cancel_reason"] = "cancelled", reason
        return f"order {order_id} cancelled"

    def update_shipping_address(self, order_id: str, address: Address) -> str:
        """Change where a pending order will be shipped.

        Args:
            order_id: The order to change.
            address: The new shipping address.
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"order {order_id} is {order['status']}; only a pending order's address can change")
        order["address"] = dataclasses.asdict(address)
        return f"shipping address of {order_id} updated"

    def refund_order(self, order_id: str, method: RefundMethod) -> str:
        """Refund a delivered order in full (every item not yet returned) and mark it refunded.

        Args:
            order_id: The delivered order to refund.
            method: Refund to the original payment method or as store credit.
        """
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ToolError(f"order {order_id} is {order['status']}; only delivered orders can be refunded")
        amount = sum(i["price"] * i["qty"] for i in order["items"] if not i["returned"])
        order["status"] = "refunded"
        self.state["refunds"].append({"order_id": order_id, "amount": amount, "method": method})
        return f"refunded {amount} cents for {order_id} ({method})"

    def return_items(self, order_id: str, skus: list[str]) -> str:
        """Return some items of a delivered order; their price is refunded to the original payment.

        Args:
            order_id: The delivered order.
            skus: The product codes (sku) of the items to return, each once.
        """
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ToolError(f"order {order_id} is {order['status']}; only delivered orders accept returns")
        if not skus or len(set(skus)) != len(skus):
            raise ToolError("skus must list at least one product code, each once")
        items = {i["sku"]: i for i in order["items"]}
        for sku in skus:
            if sku not in items:
                raise ToolError(f"order {order_id} has no item {sku!r}; its items are {sorted(items)}")
            if items[sku]["returned"]:
                raise ToolError(f"item {sku} of {order_id} was already returned")
        amount = 0
        for sku in skus:
            items[sku]["returned"] = True
            amount += items[sku]["price"] * items[sku]["qty"]
        self.state["refunds"].append({"order_id": order_id, "amount": amount, "method": "original_payment"})
        return f"returned {len(skus)} item(s) of {order_id}; refunded {amount} cents"

    # -- calendar tools ----------------------------------------------------------------------
    def find_contacts(self, name: str) -> list[dict[str, str]]:
        """Find contacts by name.

        Args:
            name: A first name, last name or full name (case-insensitive).
        """
        return [{"contact_id": k, **c} for k, c in self.state["contacts"].items() if self._match(name, c["name"])]

    def update_contact(self, contact_id: str, email: str | None = None, phone: str | None = None) -> str:
        """Change a contact's email and/or phone number.

        Args:
            contact_id: The contact to change.
            email: The new email address, if it changes.
            phone: The new phone number, if it changes.
        """
        contact = self._contact(contact_id)
        if email is None and phone is None:
            raise ToolError("give an email or a phone number to change")
        if email is not None:
            if "@" not in email or " " in email.strip():
                raise ToolError(f"{email!r} is not an email address")
            contact["email"] = email.strip()
        if phone is not None:
            contact["phone"] = phone.strip()
        return f"contact {contact_id} updated"

    def list_events(self, day: int) -> list[dict[str, Any]]:
        """The events on a day of the week, by hour.

        Args:
            day: Day of the planning week, 1 to 7.
        """
        self._check_day(day)
        events = [{"event_id": k, **e} for k, e in self.state["events"].items() if e["day"] == day]
        return sorted(events, key=lambda e: e["hour"])

    @staticmethod
    def _check_day(day: int, hour: int | None = None) -> None:
        if day not in DAYS:
            raise ToolError(f"day must be between {DAYS[0]} and {DAYS[-1]}, got {day}")
        if hour is not None and hour not in HOURS:
            raise ToolError(f"hour must be between {HOURS[0]} and {HOURS[-1]}, got {hour}")

    def _check_free(self, day: int, hour: int, ignore: str | None = None) -> None:
        for k, e in self.state["events"].items():
            if k != ignore and e["day"] == day and e["hour"] == hour:
                raise ToolError(f"day {day} at {hour}:00 is taken by {e['title']!r} ({k})")

    def create_event(self, title: str, day: int, hour: int, attendees: list[str]) -> str:
        """Create a one-hour event in a free slot.

        Args:
            title: The event's title.
            day: Day of the planning week, 1 to 7.
            hour: Start hour, 9 to 17.
            attendees: Contact ids of the people invited.
        """
        self._check_day(day, hour)
        if not title.strip():
            raise ToolError("the title is empty")
        for contact_id in attendees:
            self._contact(contact_id)
        self._check_free(day, hour)
        event_id = f"E{self.state['next_event']}"
        self.state["next_event"] += 1
        self.state["events"][event_id] = {"title": title.strip(), "day": day, "hour": hour,
                                          "attendees": sorted(set(attendees))}
        return f"created {event_id}"

    def cancel_event(self, event_id: str) -> str:
        """Cancel (delete) an event.

        Args:
            event_id: The event to cancel.
        """
        self._event(event_id)
        del self.state["events"][event_id]
        return f"event {event_id} cancelled"

    def reschedule_event(self, event_id: str, day: int, hour: int) -> str:
        """Move an event to another free slot.

        Args:
            event_id: The event to move.
            day: New day, 1 to 7.
            hour: New start hour, 9 to 17.
        """
        event = self._event(event_id)
        self._check_day(day, hour)
        self._check_free(day, hour, ignore=event_id)
        event["day"], event["hour"] = day, hour
        return f"event {event_id} moved to day {day} at {hour}:00"

    def add_attendee(self, event_id: str, contact_id: str) -> str:
        """Invite a contact to an event.

        Args:
            event_id: The event.
            contact_id: The contact to invite.
        """
        event = self._event(event_id)
        self._contact(contact_id)
        if contact_id in event["attendees"]:
            raise ToolError(f"{contact_id} already attends {event_id}")
        event["attendees"] = sorted([*event["attendees"], contact_id])
        return f"{contact_id} added to {event_id}"


#: The agent's tools, in the order the prompt lists them.
TOOL_NAMES = ("find_customers", "get_customer", "get_order", "cancel_order", "update_shipping_address",
              "refund_order", "return_items", "find_contacts", "update_contact", "list_events", "create_event",
              "cancel_event", "reschedule_event", "add_attendee")


def canonical_events(state: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Events by content: the id a created event happened to get does not matter."""
    return sorted((e["title"], e["day"], e["hour"], e["attendees"]) for e in state["events"].values())


def canonical(state: dict[str, Any]) -> dict[str, Any]:
    """The judged state: contents of customers, orders, contacts, events and refunds; event ids
    and the id counter do not matter, cancelled events are gone."""
    refunds = sorted((r["order_id"], r["amount"], r["method"]) for r in state["refunds"])
    return {"customers": state["customers"], "orders": state["orders"], "contacts": state["contacts"],
            "events": canonical_events(state), "refunds": refunds}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a canonical state (``orders.O2031.status`` → value), for partial credit.
    Events are keyed by title and refunds by order, so one extra entry does not shift the rest."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if prefix in ("events", "refunds"):
        out = {}
        for entry in value:
            key = f"{prefix}.{entry[0]}"
            while key in out:
                key += "'"
            out[key] = list(entry[1:])
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # an order's items
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def generate_world(rng: random.Random, n_customers: int, n_contacts: int, n_events: int) -> World:
    """A random world: customers with 2–4 orders each, contacts, and a week of events.

    Draws go through ``rng.random()`` (``int(u * n)``) rather than ``randint``/``choice``:
    generation runs on every reset, and this keeps it several times cheaper."""
    u = rng.random
    names = rng.sample(NAMES, n_customers + n_contacts)
    products = {f"P{i + 10}": {"name": n, "price": p} for i, (n, p) in enumerate(PRODUCTS)}
    skus = sorted(products)
    statuses = ("pending", "shipped", "delivered", "delivered")
    customers: dict[str, Any] = {}
    orders: dict[str, Any] = {}
    next_order = 2000 + int(u() * 900)
    for i, name in enumerate(names[:n_customers]):
        cid = f"C{101 + i}"
        own = []
        for _ in range(2 + int(u() * 3)):
            oid = f"O{next_order}"
            next_order += 1 + int(u() * 9)
            orders[oid] = {
                "customer_id": cid,
                "items": [{"sku": s, "qty": 1 + (u() < 0.3), "price": products[s]["price"], "returned": False}
                          for s in rng.sample(skus, 1 + int(u() * 3))],
                "status": statuses[int(u() * 4)],
                "address": {"street": f"{1 + int(u() * 99)} {STREETS[int(u() * len(STREETS))]}",
                            "city": CITIES[int(u() * len(CITIES))], "zip_code": str(10000 + int(u() * 90000))},
            }
            own.append(oid)
        customers[cid] = {"name": name, "email": f"{name.lower().replace(' ', '.')}@mail.test", "orders": own}
    contacts = {f"K{11 + i}": {"name": name, "email": f"{name.split()[0].lower()}@work.test",
                               "phone": f"555-{1000 + int(u() * 9000)}"}
                for i, name in enumerate(names[n_customers:])}
    contact_ids = sorted(contacts)
    slots = rng.sample(SLOTS, n_events)
    titles = rng.sample(TITLES, n_events)
    events = {f"E{i + 1}": {"title": t, "day": d, "hour": h,
                            "attendees": sorted(rng.sample(contact_ids, int(u() * 3)))}
              for i, (t, (d, h)) in enumerate(zip(titles, slots, strict=True))}
    state = {"customers": customers, "orders": orders, "products": products, "refunds": [],
             "contacts": contacts, "events": events, "next_event": n_events + 1}
    return World(state)
