"""The WebShop site: a seeded catalogue, its search, and a small server-rendered shop.

Standard library only, and self-contained: the env sends this file's source to a container of
the python sandbox image (``python3 -c SOURCE PORT SEED N``) where nothing else is installed,
and imports it on the host to generate the same catalogue and tasks from the same seed.

Pages (every URL is under ``/s/<session>/``, one session per episode, so concurrent episodes
never share a cart): home (the instruction and a search box), search results (10 per page),
an item page (options as links, ``Add to cart`` and ``Buy now`` buttons), the cart
(``Remove item N``, ``Checkout``) and the order confirmation. Every page carries
``<meta name="agentgym-state" content="KIND|STATE|CART">``, the normalised page state the env
uses as GiGPO's anchor. Clickable elements are ``<a>`` and ``<button class="act">``; option
links also have ``class="opt"`` and ``data-group``. JSON API:
``POST /api/sessions`` → ``{"sid"}``, ``GET /api/sessions/<sid>`` → ``{"cart", "order"}``,
``DELETE /api/sessions/<sid>``, ``GET /health``.
"""

from __future__ import annotations

import html
import json
import random
import re
import secrets
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

PAGE_SIZE = 10
CURRENT = ' aria-current="true"'  # marks the selected option link
MAX_SESSIONS = 4096  # oldest sessions are forgotten first; an episode holds one for its duration

COLORS = ["black", "white", "red", "blue", "green", "grey", "navy", "pink", "yellow", "brown", "purple", "beige"]
CLOTHING_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
SHOE_SIZES = ["6", "7", "8", "9", "10", "11", "12"]
BRANDS = ["Acme", "Northwind", "Bluebird", "Cedar", "Everly", "Fjord", "Granite", "Harbor", "Ivy", "Juniper",
          "Kestrel", "Lumen", "Maple", "Nimbus", "Orchid", "Pioneer", "Quill", "Rivet", "Summit", "Tundra"]
STYLES = ["Classic", "Essential", "Everyday", "Premium", "Urban", "Vintage", "Modern", "Relaxed", "Slim", "Sport"]

# type -> (category, materials, features, option groups, price range in dollars)
_CLOTHES = {"color": COLORS, "size": CLOTHING_SIZES}
_SHOES = {"color": COLORS, "size": SHOE_SIZES}
_COLOR = {"color": COLORS}
TYPES: dict[str, tuple[str, list[str], list[str], dict[str, list[str]], tuple[int, int]]] = {
    "t-shirt": ("clothing", ["cotton", "polyester", "linen", "bamboo"],
                ["machine washable", "breathable", "organic", "short sleeve", "long sleeve"], _CLOTHES, (8, 40)),
    "hoodie": ("clothing", ["cotton", "fleece", "polyester"],
               ["machine washable", "zip up", "pullover", "organic", "lightweight"], _CLOTHES, (20, 80)),
    "jeans": ("clothing", ["denim", "stretch denim", "organic cotton"],
              ["slim fit", "straight leg", "high waist", "machine washable"], _CLOTHES, (25, 120)),
    "dress": ("clothing", ["cotton", "silk", "linen", "polyester"],
              ["sleeveless", "midi length", "machine washable", "wrinkle free"], _CLOTHES, (20, 150)),
    "jacket": ("clothing", ["leather", "nylon", "wool", "polyester"],
               ["water resistant", "windproof", "hooded", "lightweight", "insulated"], _CLOTHES, (40, 250)),
    "sweater": ("clothing", ["wool", "cashmere", "cotton", "acrylic"],
                ["crew neck", "v neck", "hand wash", "lightweight"], _CLOTHES, (25, 160)),
    "socks": ("clothing", ["cotton", "wool", "bamboo"],
              ["cushioned", "moisture wicking", "ankle length", "pack of 6"], _CLOTHES, (5, 25)),
    "shorts": ("clothing", ["cotton", "nylon", "linen"],
               ["quick dry", "elastic waist", "with pockets", "machine washable"], _CLOTHES, (10, 50)),
    "sneakers": ("footwear", ["canvas", "leather", "mesh", "suede"],
                 ["non slip", "lightweight", "memory foam", "breathable"], _SHOES, (30, 160)),
    "boots": ("footwear", ["leather", "suede", "rubber"],
              ["waterproof", "non slip", "insulated", "steel toe"], _SHOES, (45, 220)),
    "sandals": ("footwear", ["leather", "rubber", "cork"],
                ["adjustable strap", "arch support", "quick dry", "non slip"], _SHOES, (15, 90)),
    "slippers": ("footwear", ["wool", "fleece", "cotton"],
                 ["memory foam", "non slip", "machine washable", "indoor outdoor"], _SHOES, (10, 50)),
    "mug": ("home", ["ceramic", "stainless steel", "glass"],
            ["dishwasher safe", "microwave safe", "insulated", "with lid"], _COLOR, (6, 35)),
    "pillow": ("home", ["memory foam", "down", "cotton"],
               ["hypoallergenic", "machine washable", "cooling", "firm support"], _COLOR, (12, 80)),
    "blanket": ("home", ["fleece", "wool", "cotton", "sherpa"],
                ["machine washable", "oversized", "lightweight", "weighted"], _COLOR, (18, 120)),
    "lamp": ("home", ["metal", "wood", "glass", "ceramic"],
             ["dimmable", "usb charging port", "touch control", "led bulb included"], _COLOR, (15, 110)),
    "towel": ("home", ["cotton", "bamboo", "microfiber"],
              ["quick dry", "extra absorbent", "set of 2", "oversized"], _COLOR, (8, 45)),
    "headphones": ("electronics", ["plastic", "aluminum"],
                   ["wireless", "noise cancelling", "over ear", "foldable", "long battery life"], _COLOR, (20, 300)),
    "phone case": ("electronics", ["silicone", "leather", "plastic"],
                   ["shockproof", "slim", "wireless charging compatible", "card holder"], _COLOR, (8, 50)),
    "charger": ("electronics", ["plastic", "aluminum"],
                ["fast charging", "usb c", "dual port", "foldable plug"], _COLOR, (10, 60)),
    "speaker": ("electronics", ["plastic", "fabric", "aluminum"],
                ["wireless", "waterproof", "portable", "long battery life"], _COLOR, (20, 200)),
    "keyboard": ("electronics", ["plastic", "aluminum"],
                 ["wireless", "mechanical", "backlit", "quiet keys"], _COLOR, (20, 180)),
    "backpack": ("bags", ["nylon", "canvas", "leather", "polyester"],
                 ["water resistant", "laptop sleeve", "lightweight", "anti theft"], _COLOR, (20, 150)),
    "tote bag": ("bags", ["canvas", "cotton", "leather", "jute"],
                 ["foldable", "with zipper", "reusable", "large capacity"], _COLOR, (8, 90)),
    "shampoo": ("beauty", ["argan oil", "coconut oil", "tea tree"],
                ["sulfate free", "paraben free", "for dry hair", "vegan"], {}, (5, 35)),
    "lotion": ("beauty", ["shea butter", "aloe vera", "cocoa butter"],
               ["fragrance free", "for sensitive skin", "vegan", "spf 30"], {}, (5, 40)),
}


@dataclass(frozen=True)
class Product:
    """One catalogue item; ``attributes`` is its material plus its features."""

    pid: int
    title: str
    type: str
    category: str
    material: str
    features: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: float

    @property
    def attributes(self) -> tuple[str, ...]:
        return (self.material, *self.features)


@dataclass(frozen=True)
class Goal:
    """What the instruction asks for; ``target`` is one product that satisfies all of it."""

    text: str
    type: str
    category: str
    attributes: tuple[str, ...]
    options: dict[str, str]
    max_price: float
    target: int


@dataclass
class Catalogue:
    """The seeded product list with an inverted index for search."""

    seed: int
    products: list[Product]
    index: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for product in self.products:
            for token in set(tokens(" ".join([product.title, product.category, *product.attributes,
                                              *product.options.get("color", ())]))):
                self.index.setdefault(token, set()).add(product.pid)

    def search(self, query: str) -> list[Product]:
        """Products matching any query token, most distinct matching tokens first, then by id."""
        scores: dict[int, int] = {}
        for token in set(tokens(query)):
            for pid in self.index.get(token, ()):
                scores[pid] = scores.get(pid, 0) + 1
        return [self.products[pid] for pid in sorted(scores, key=lambda pid: (-scores[pid], pid))]


def tokens(text: str) -> list[str]:
    """Lower-case words; what search matches on (so word order and case never matter)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def normalise_query(query: str) -> str:
    """The search state: its distinct tokens, sorted (queries that rank the same are equal)."""
    return " ".join(sorted(set(tokens(query))))


def make_catalogue(seed: int = 0, n: int = 1200) -> Catalogue:
    """``n`` products, types in rotation, everything else drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    names = sorted(TYPES)
    products = []
    for pid in range(n):
        kind = names[pid % len(names)]
        category, materials, features, groups, (low, high) = TYPES[kind]
        material = rng.choice(materials)
        chosen = tuple(sorted(rng.sample(features, rng.randint(1, 3))))
        options = {}
        for group, values in groups.items():
            if group == "size":  # a contiguous run of sizes, as real listings have
                start = rng.randrange(len(values) - 2)
                options[group] = tuple(values[start:start + rng.randint(3, len(values) - start)])
            else:
                picked = set(rng.sample(values, rng.randint(2, 5)))
                options[group] = tuple(v for v in values if v in picked)
        price = round(rng.uniform(low, high)) - 0.01
        title = f"{rng.choice(BRANDS)} {rng.choice(STYLES)} {material.title()} {kind.title()}"
        products.append(Product(pid, title, kind, category, material, chosen, options, max(price, 0.99)))
    return Catalogue(seed, products)


def make_goal(catalogue: Catalogue, task: int) -> Goal:
    """Task ``task``: a target product, some of its attributes and one value per option group,
    and a price bound above its price; phrased as a shopper's request."""
    rng = random.Random(f"{catalogue.seed}:{task}")
    product = rng.choice(catalogue.products)
    attributes = (product.material, *rng.sample(product.features, rng.randint(0, min(2, len(product.features)))))
    options = {group: rng.choice(values) for group, values in product.options.items()}
    max_price = float(int(product.price * rng.uniform(1.05, 1.6)) + 1)
    color = f"{options['color']} " if "color" in options else ""
    text = f"{rng.choice(['I need', 'Find me', 'I am looking for', 'Buy me'])} a {color}{product.material} {product.type}"
    if len(attributes) > 1:
        text += " that is " + " and ".join(attributes[1:])
    if "size" in options:
        text += f", in size {options['size']}"
    text += f", under ${max_price:.2f}."
    return Goal(text, product.type, product.category, attributes, options, max_price, product.pid)


# -- the server ---------------------------------------------------------------------------------
@dataclass
class Session:
    instruction: str
    cart: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    order: list[tuple[int, dict[str, str]]] | None = None


def item_label(pid: int, options: dict[str, str]) -> str:
    """A cart line in the state string: ``17[color=red,size=M]``."""
    return f"{pid}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]"


class Shop:
    """Sessions and page rendering; the HTTP handler only routes to it."""

    def __init__(self, catalogue: Catalogue):
        self.catalogue = catalogue
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.lock = threading.Lock()

    def new_session(self, instruction: str) -> str:
        sid = secrets.token_hex(8)
        with self.lock:
            self.sessions[sid] = Session(instruction)
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return sid

    # rendering helpers
    def _page(self, sid: str, session: Session, kind: str, state: str, body: str) -> str:
        cart = ";".join(item_label(pid, opts) for pid, opts in session.cart)
        meta = html.escape(f"{kind}|{state}|{cart}", quote=True)
        search = "" if kind == "done" else (
            f'<form role="search" action="/s/{sid}/search" method="get">'
            f'<input type="text" name="q" aria-label="Search"><button type="submit">Search</button></form>'
            f'<nav><a href="/s/{sid}/cart">Cart ({len(session.cart)})</a></nav>')
        return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="agentgym-state" content="{meta}">'
                f'<title>WebShop</title></head><body><header><h1>WebShop</h1>'
                f'<p>Instruction: {html.escape(session.instruction)}</p>{search}</header>'
                f'<main>{body}</main></body></html>')

    @staticmethod
    def _button(action: str, label: str, fields: dict[str, str]) -> str:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in fields.items())
        return f'<form method="post" action="{action}">{hidden}<button class="act" type="submit">{label}</button></form>'

    def home(self, sid: str, session: Session) -> str:
        return self._page(sid, session, "home", "", "<p>Search the catalogue to find what the instruction asks for.</p>")

    def results(self, sid: str, session: Session, query: str, page: int) -> str:
        found = self.catalogue.search(query)
        pages = max(1, -(-len(found) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        rows = "".join(
            f'<li><a href="/s/{sid}/item/{p.pid}?{urlencode({"q": query, "p": page})}">{html.escape(p.title)}</a>'
            f" ${p.price:.2f}</li>" for p in found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE])
        nav = ""
        if page > 1:
            nav += f'<a href="/s/{sid}/search?{urlencode({"q": query, "p": page - 1})}">&lt; Prev</a> '
        if page < pages:
            nav += f'<a href="/s/{sid}/search?{urlencode({"q": query, "p": page + 1})}">Next &gt;</a> '
        body = (f"<h2>Results for &quot;{html.escape(query)}&quot;</h2><p>Page {page} of {pages}, "
                f"{len(found)} items.</p><ul>{rows}</ul><p>{nav}<a href=\"/s/{sid}/\">Back to search</a></p>")
        return self._page(sid, session, "search", f"{normalise_query(query)}#{page}", body)

    def item(self, sid: str, session: Session, pid: int, params: dict[str, str]) -> str:
        product = self.catalogue.products[pid]
        chosen = {g: params[g] for g, values in product.options.items() if params.get(g) in values}
        context = {k: params[k] for k in ("q", "p") if k in params}
        groups = ""
        for group, values in product.options.items():
            links = " ".join(
                f'<a class="opt" data-group="{group}" href="/s/{sid}/item/{pid}?{urlencode({**context, **chosen, group: v})}"'
                f'{CURRENT if chosen.get(group) == v else ""}>{html.escape(v)}</a>'
                for v in values)
            picked = f" (selected: {html.escape(chosen[group])})" if group in chosen else ""
            groups += f"<p>{group}{picked}: {links}</p>"
        fields = {"pid": str(pid), **chosen}
        back = (f'<a href="/s/{sid}/search?{urlencode({"q": context["q"], "p": context.get("p", "1")})}">'
                "&lt; Back to results</a> " if "q" in context else "")
        body = (f"<h2>{html.escape(product.title)}</h2><p>Price: ${product.price:.2f}</p>"
                f"<p>Category: {product.category}. Material: {html.escape(product.material)}. "
                f"Features: {html.escape(', '.join(product.features))}.</p>{groups}"
                f"{self._button(f'/s/{sid}/cart/add', 'Add to cart', fields)}"
                f"{self._button(f'/s/{sid}/buy', 'Buy now', fields)}<p>{back}<a href=\"/s/{sid}/\">Back to search</a></p>")
        return self._page(sid, session, "item", item_label(pid, chosen), body)

    def cart(self, sid: str, session: Session) -> str:
        rows = "".join(
            f"<li>{html.escape(self.catalogue.products[pid].title)} "
            f"{html.escape(', '.join(f'{k}: {v}' for k, v in opts.items()))} "
            f"${self.catalogue.products[pid].price:.2f}"
            f"{self._button(f'/s/{sid}/cart/remove', f'Remove item {i + 1}', {'index': str(i)})}</li>"
            for i, (pid, opts) in enumerate(session.cart))
        checkout = self._button(f"/s/{sid}/checkout", "Checkout", {}) if session.cart else ""
        body = (f"<h2>Your cart</h2><ul>{rows or '<li>The cart is empty.</li>'}</ul>{checkout}"
                f'<p><a href="/s/{sid}/">Back to search</a></p>')
        return self._page(sid, session, "cart", "", body)

    def done(self, sid: str, session: Session) -> str:
        lines = "".join(f"<li>{html.escape(self.catalogue.products[pid].title)} "
                        f"{html.escape(', '.join(f'{k}: {v}' for k, v in opts.items()))}</li>"
                        for pid, opts in session.order or [])
        return self._page(sid, session, "done", "", f"<h2>Thank you for your order</h2><ul>{lines}</ul>")

    def chosen_item(self, form: dict[str, str]) -> tuple[int, dict[str, str]] | None:
        pid = form.get("pid", "")
        if not pid.isdigit() or int(pid) >= len(self.catalogue.products):
            return None
        product = self.catalogue.products[int(pid)]
        return product.pid, {g: form[g] for g, values in product.options.items() if form.get(g) in values}


def _first(query: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in query.items()}


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the :class:`Shop` on ``self.server.shop``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
        pass

    def _send(self, status: int, body: str, content_type: str = "text/html; charset=utf-8",
              location: str | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj), "application/json")

    def _route(self, method: str) -> None:
        shop: Shop = self.server.shop  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if parts == ["health"]:
            return self._json(200, {"ok": True, "products": len(shop.catalogue.products)})
        if parts[:2] == ["api", "sessions"]:
            if method == "POST" and len(parts) == 2:
                instruction = json.loads(raw or "{}").get("instruction", "")
                return self._json(201, {"sid": shop.new_session(str(instruction))})
            session = shop.sessions.get(parts[2]) if len(parts) == 3 else None
            if session is None:
                return self._json(404, {"error": "no such session"})
            if method == "DELETE":
                with shop.lock:
                    shop.sessions.pop(parts[2], None)
                return self._json(200, {})
            return self._json(200, {"cart": session.cart, "order": session.order})
        if len(parts) < 2 or parts[0] != "s" or parts[1] not in shop.sessions:
            return self._send(404, "<!DOCTYPE html><html><body><p>Not found.</p></body></html>")
        sid, rest, session = parts[1], parts[2:], shop.sessions[parts[1]]
        query = _first(parse_qs(url.query))
        if session.order is not None:  # the episode is over: every page is the confirmation
            return self._send(200, shop.done(sid, session))
        if method == "POST":
            form = _first(parse_qs(raw))
            item = shop.chosen_item(form)
            with shop.lock:
                if rest == ["cart", "add"] and item:
                    session.cart.append(item)
                elif rest == ["cart", "remove"] and form.get("index", "").isdigit():
                    if int(form["index"]) < len(session.cart):
                        del session.cart[int(form["index"])]
                elif rest == ["checkout"] and session.cart:
                    session.order = list(session.cart)
                elif rest == ["buy"] and item:
                    session.order = [item]
            target = f"/s/{sid}/done" if session.order is not None else f"/s/{sid}/cart"
            return self._send(303, "", location=target)
        if not rest:
            return self._send(200, shop.home(sid, session))
        if rest == ["search"]:
            page = query.get("p", "1")
            return self._send(200, shop.results(sid, session, query.get("q", ""), int(page) if page.isdigit() else 1))
        if len(rest) == 2 and rest[0] == "item" and rest[1].isdigit() and int(rest[1]) < len(shop.catalogue.products):
            return self._send(200, shop.item(sid, session, int(rest[1]), query))
        if rest == ["cart"]:
            return self._send(200, shop.cart(sid, session))
        return self._send(404, shop._page(sid, session, "missing", quote(url.path), "<p>Not found.</p>"))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


def serve(host: str, port: int, seed: int, n_products: int) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); ``server.server_address`` has the bound port."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.shop = Shop(make_catalogue(seed, n_products))  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> None:
    """``HOST PORT SEED N_PRODUCTS``: serve until killed; prints ``listening PORT`` when ready."""
    host, port, seed, n_products = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    server = serve(host, port, seed, n_products)
    print(f"listening {server.server_address[1]}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
