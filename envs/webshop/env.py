"""``agentgym/WebShop-v0``: follow a shopping instruction on our own shop site.

Actions (case-insensitive verbs, one per turn)::

    search[QUERY]          type QUERY into the search box (any page)
    click[LABEL or N]      follow the clickable element with that label, or number N of the list
    select[OPTION]         pick an option on an item page (``M``, ``red`` or ``size: M``)
    back                   return to the previous page
    buy                    ``Buy now`` on an item page, ``Checkout`` on the cart page

The shared action rule of every built-in env applies first
(:func:`agentgym.parsers.extract_action`): ``<think>…</think>`` is dropped, and one
``<action>click[2]</action>`` or ``Action: click[2]`` is unwrapped. Anything else (or a target
that is not on the page) gets the current page back with the reason, and ``info["parse_error"]`` set. The episode ends when an order is placed.

Reward (WebShop's, Yao et al. 2022, with our catalogue's fields). For a goal with type
``T``, category ``C``, attributes ``A``, options ``O`` (group → value) and price bound ``P``, a
purchased item with type ``t``, category ``c``, attributes ``a``, selected options ``o`` and price
``p`` scores::

    r_type  = 1 if t == T else 0.5 if c == C else 0.1
    r_item  = r_type * (|A ∩ a| + |{g : o[g] == O[g]}| + [p <= P]) / (|A| + |O| + 1)

An order of ``n`` items scores ``max(r_item) / n`` (buying everything in sight does not pay);
no order scores 0. ``info["success"]`` is ``reward == 1``. ``info["reward_parts"]`` has the terms.

``state_key`` = (page kind, normalised page state, cart): the search state is the sorted set of
query words and the page number, an item page is its product and selected options, and the
cart is its lines; so the same situation reached by different words or paths is one GiGPO anchor.
The site runs in a container or locally (see :mod:`.site`); one runs per process and serves
every episode, each in its own session. Backends: ``text`` (default) or ``chromium``.
"""

from __future__ import annotations

import functools
import re
import weakref
from typing import Any

from agentgym.core import InfraError, StepResult, TextEnv
from agentgym.parsers import extract_action

from . import shop
from . import site as sites
from .backends import ChromiumBackend, Page, TextBackend, http_client

__all__ = ["WebShopEnv", "score_order"]

_ACTION = re.compile(r"\s*(search|click|select)\s*\[(.*)\]\s*|\s*(back|buy)\s*", re.IGNORECASE | re.DOTALL)
MAX_QUERY_CHARS = 200
SYSTEM_PROMPT = (
    "You are shopping on a website for the user. Each turn, answer with exactly one action: "
    "search[QUERY], click[LABEL or NUMBER], select[OPTION], back, or buy. "
    "Buy the item that best matches the instruction, with the requested options, within the price.")


@functools.lru_cache(maxsize=4)
def catalogue(seed: int, n_products: int) -> shop.Catalogue:
    """The catalogue the site serves (the same seed generates the same one on both sides)."""
    return shop.make_catalogue(seed, n_products)


def score_item(cat: shop.Catalogue, goal: shop.Goal, pid: int, options: dict[str, str]) -> dict[str, float]:
    """The reward terms of one purchased item (see the module docstring)."""
    product = cat.products[pid]
    r_type = 1.0 if product.type == goal.type else 0.5 if product.category == goal.category else 0.1
    attributes = sum(a in product.attributes for a in goal.attributes)
    matched = sum(options.get(g) == v for g, v in goal.options.items())
    price = float(product.price <= goal.max_price)
    total = len(goal.attributes) + len(goal.options) + 1
    return {"r_type": r_type, "attributes": attributes / len(goal.attributes),
            "options": matched / len(goal.options) if goal.options else 1.0, "price": price,
            "reward": r_type * (attributes + matched + price) / total}


def score_order(cat: shop.Catalogue, goal: shop.Goal, order: list[tuple[int, dict[str, str]]]) -> dict[str, float]:
    """The reward of an order: the best item's score divided by the number of items."""
    if not order:
        return {"reward": 0.0}
    best = max((score_item(cat, goal, pid, opts) for pid, opts in order), key=lambda parts: parts["reward"])
    return {**best, "reward": best["reward"] / len(order), "items": float(len(order))}


class WebShopEnv(TextEnv):
    """Buy what the instruction asks for (see the module docstring for actions and reward).

    ``backend``: ``text`` or ``chromium``. ``placement``: where the site runs, ``docker``,
    ``local`` or ``auto`` (default: ``$AGENTGYM_SANDBOX_BACKEND``, else Docker when the python
    sandbox image is there). ``seed``/``n_products`` fix the catalogue; ``n_tasks`` is how many
    instructions the reset seed picks from. ``site_labels`` are added to the site container's
    labels. ``chromium_path`` and ``browsers`` (processes in the shared pool) are for ``chromium``.
    """

    system_prompt = SYSTEM_PROMPT

    def __init__(self, *, backend: str = "text", placement: str | None = None, seed: int = 0,
                 n_products: int = 1200, n_tasks: int = 10_000, site_labels: dict[str, str] | None = None,
                 chromium_path: str | None = None, browsers: int = 1, max_obs_chars: int = 6000,
                 max_turns: int | None = 30, render_mode: str | None = None) -> None:
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if backend not in ("text", "chromium"):
            raise ValueError(f"backend must be 'text' or 'chromium', got {backend!r}")
        if n_products < 1 or n_tasks < 1:
            raise ValueError("n_products and n_tasks must be positive")
        self.backend_name, self.placement = backend, placement
        self.seed, self.n_products, self.n_tasks = seed, n_products, n_tasks
        self.num_tasks = n_tasks
        self.site_labels, self.chromium_path, self.browsers = site_labels, chromium_path, browsers
        self.max_obs_chars = max_obs_chars
        self.catalogue = catalogue(seed, n_products)
        self.goal: shop.Goal | None = None
        self.page: Page | None = None
        self.history: list[str] = []
        self.sid: str | None = None
        # A dict, so the finalizer (GC or interpreter exit without close()) sees what is current.
        self._held: dict[str, Any] = {}
        weakref.finalize(self, _release, self._held)

    # -- resources ------------------------------------------------------------------------
    def _site(self) -> sites.Site:
        site = self._held.get("site")
        if site is None or site.broken:
            _release(self._held)
            site = self._held["site"] = sites.acquire(sites.placement_for(self.placement), self.seed,
                                                      self.n_products, self.site_labels)
        return site

    def _backend(self) -> TextBackend | ChromiumBackend:
        if "backend" not in self._held:
            self._held["backend"] = (TextBackend() if self.backend_name == "text"
                                     else ChromiumBackend(self.chromium_path, self.browsers))
        return self._held["backend"]

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        site = self._site()
        if "api" not in self._held:
            self._held["api"] = http_client()
        try:
            response = self._held["api"].request(method, f"{site.url}{path}", **kwargs)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            site.broken = True
            raise InfraError(f"the shop API failed: {type(exc).__name__}: {exc}") from exc
        return response.json()

    def _navigate(self, go: Any, *args: Any) -> Page:
        try:
            return go(*args)
        except InfraError:
            site = self._held.get("site")
            if site is not None and not site.healthy():  # else the browser failed, not the site
                site.broken = True
            raise

    def _end_session(self) -> None:
        sid, self.sid = self.sid, None
        if sid is not None and "site" in self._held and not self._held["site"].broken:
            try:
                self._api("DELETE", f"/api/sessions/{sid}")
            except InfraError:
                pass  # the site is marked broken; the next episode starts a new one
        if "backend" in self._held:
            self._held["backend"].end_episode()

    def close(self) -> None:
        self._end_session()
        _release(self._held)  # the finalizer stays armed for resources of a later reset

    # -- episode ----------------------------------------------------------------------------
    def _observe(self, prefix: str = "") -> str:
        page = self.page
        assert page is not None
        listed = "\n".join(f"[{i + 1}] {c.label}" for i, c in enumerate(page.clickables))
        text = f"{prefix}{page.text}\n\nClickable:\n{listed}"
        return text if len(text) <= self.max_obs_chars else text[: self.max_obs_chars] + "\n[...]"

    def _info(self) -> dict[str, Any]:
        page = self.page
        assert page is not None
        return {"state_key": (page.kind, page.state, page.cart), "page": page.kind}

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._end_session()
        task = int(options["task"]) if "task" in options else self.pool_index(self.n_tasks)
        self.goal = shop.make_goal(self.catalogue, task)
        self.sid = self._api("POST", "/api/sessions", json={"instruction": self.goal.text})["sid"]
        self.page = self._navigate(self._backend().open, f"{self._site().url}/s/{self.sid}/")
        self.history = [self.page.url]
        return self._observe(), {**self._info(), "task_id": f"webshop-{task}", "instruction": self.goal.text}

    def _invalid(self, reason: str) -> StepResult:
        return (self._observe(f"Invalid action: {reason}\n\n"), 0.0, False, False,
                {**self._info(), "parse_error": reason})

    def _resolve(self, target: str, *, options_only: bool = False) -> int | None:
        """Index of the clickable that ``target`` names (number, label, or ``group: value``)."""
        clickables = self.page.clickables  # type: ignore[union-attr]
        if not options_only and target.isdigit():
            index = int(target) - 1
            return index if 0 <= index < len(clickables) else None
        wanted = " ".join(target.split()).casefold()
        group, _, value = wanted.replace("=", ":").partition(":")
        for i, c in enumerate(clickables):
            if options_only and c.group is None:
                continue
            if c.label.casefold() == wanted or (c.group and c.group == group.strip() and c.label.casefold() == value.strip()):
                return i
        return None

    def _step(self, action: str) -> StepResult:
        extracted = extract_action(action)
        if extracted.error is not None:
            return self._invalid(f"{extracted.error}.")
        match = _ACTION.fullmatch(extracted.text)
        if match is None:
            return self._invalid("expected search[QUERY], click[LABEL or N], select[OPTION], back or buy.")
        verb = (match.group(1) or match.group(3)).lower()
        argument = (match.group(2) or "").strip()
        backend = self._backend()
        page = self.page
        assert page is not None
        if verb == "search":
            # What a text box keeps of it (no control characters, no line breaks), so both backends
            # send the same query.
            query = " ".join("".join(ch for ch in argument if ch.isprintable() or ch.isspace()).split())
            if not query or len(query) > MAX_QUERY_CHARS:
                return self._invalid(f"the query must have 1 to {MAX_QUERY_CHARS} printable characters.")
            new = self._navigate(backend.search, page, query)
        elif verb in ("click", "select", "buy"):
            if verb == "buy":
                label = {"item": "Buy now", "cart": "Checkout"}.get(page.kind)
                index = self._resolve(label) if label else None
                if index is None:
                    return self._invalid("buy works on an item page (Buy now) or a non-empty cart (Checkout).")
            else:
                index = self._resolve(argument, options_only=verb == "select")
                if index is None:
                    what = "option" if verb == "select" else "clickable element"
                    return self._invalid(f"there is no {what} {argument[:80]!r} on this page.")
            new = self._navigate(backend.click, page, index)
        else:  # back
            if len(self.history) < 2:
                return self._invalid("there is no previous page.")
            self.history.pop()
            new = self._navigate(backend.goto, self.history[-1])
        if verb != "back":
            self.history.append(new.url)
        self.page = new
        if new.kind != "done":
            return self._observe(), 0.0, False, False, self._info()
        order = self._api("GET", f"/api/sessions/{self.sid}")["order"]
        parts = score_order(self.catalogue, self.goal, [(pid, opts) for pid, opts in order])  # type: ignore[arg-type]
        info = {**self._info(), "reward_parts": parts, "success": parts["reward"] == 1.0,
                "purchased": [self.catalogue.products[pid].title for pid, _ in order]}
        self._end_session()
        return self._observe(), parts["reward"], True, False, info

    # -- policies -----------------------------------------------------------------------------
    def expert_action(self) -> str:
        """Search the target's title, open it, select the asked options, buy."""
        goal, page = self.goal, self.page
        if goal is None or page is None:
            return "back"
        target = self.catalogue.products[goal.target]
        if page.kind == "search":
            for i, c in enumerate(page.clickables):
                if c.href and c.href.split("?")[0].endswith(f"/item/{target.pid}"):
                    return f"click[{i + 1}]"
            if any(c.label == "Next >" for c in page.clickables):
                return "click[Next >]"
        if page.kind == "item":
            pid, _, chosen = page.state.partition("[")
            if pid == str(target.pid):
                for group, value in goal.options.items():
                    if f"{group}={value}" not in chosen.rstrip("]").split(","):
                        return f"select[{value}]"
                return "buy"
        return f"search[{target.title}]"

    def legal_actions(self) -> list[str]:
        """Every click and select on the page, back, buy, and searches for the instruction's words."""
        if self.page is None or self.goal is None:
            return []
        words = shop.tokens(self.goal.text)
        actions = [f"click[{c.label}]" for c in self.page.clickables if c.label]
        actions += [f"select[{c.label}]" for c in self.page.clickables if c.group]
        actions += [f"search[{' '.join(words[i:i + 3])}]" for i in range(0, len(words), 3)]
        return [*actions, "back", "buy"]


def _release(held: dict[str, Any]) -> None:
    """Close the backend and give the site back (idempotent; also the finalizer)."""
    backend, api, site = held.pop("backend", None), held.pop("api", None), held.pop("site", None)
    try:
        if api is not None:
            api.close()
        if backend is not None:
            backend.close()
    finally:
        if site is not None:
            sites.release(site)
