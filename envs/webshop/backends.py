"""Two ways to look at the shop, behind one interface: plain HTTP + an HTML parser, or Chromium.

Both backends turn a page into a :class:`Page`: the site's state meta tag, a text rendering and
the numbered clickable elements (``<a>`` and ``<button class="act">`` in document order), so
the env resolves every action the same way and the site sees the same requests. The text
backend renders the HTML itself (fast, no browser); the chromium backend drives Debian's
Chromium through Playwright and renders ``locator("body").aria_snapshot()``, the accessibility
tree a browser agent sees. Any failure of the machinery below is an :class:`InfraError`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from agentgym.core import InfraError

__all__ = ["BrowserPool", "ChromiumBackend", "Clickable", "Page", "TextBackend", "chromium_path", "http_client"]

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
TIMEOUT_S = 30.0
# The state meta tag, and the clickables as both backends list them: label, href, option group.
_READ_JS = """() => ({
    meta: document.querySelector('meta[name="agentgym-state"]')?.getAttribute('content') ?? null,
    clickables: [...document.querySelectorAll('a, button.act')].map(e => ({
        label: e.innerText.replace(/\\s+/g, ' ').trim(), href: e.getAttribute('href'),
        group: e.dataset.group || null}))})"""


@dataclass(frozen=True)
class Clickable:
    label: str
    href: str | None = None  # links: where they go (the text backend follows it)
    group: str | None = None  # option links: the option group, e.g. "size"
    form: tuple[str, tuple[tuple[str, str], ...]] | None = None  # text backend's buttons: (action, fields)


@dataclass(frozen=True)
class Page:
    """One rendered page. ``kind``/``state``/``cart`` come from the site's state meta tag."""

    url: str
    kind: str
    state: str
    cart: str
    text: str
    clickables: tuple[Clickable, ...]


def _split_state(meta: str | None) -> tuple[str, str, str]:
    parts = (meta or "").split("|", 2)
    if len(parts) != 3:
        raise InfraError("the shop returned a page without its state (the session is gone or the site is not ours)")
    return parts[0], parts[1], parts[2]


class _Parser(HTMLParser):
    """Page text (block elements on their own lines) plus clickables, from the shop's HTML."""

    BLOCKS = frozenset({"p", "li", "h1", "h2", "h3", "ul", "form", "header", "main", "nav", "div", "br", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.clickables: list[Clickable] = []
        self.meta: str | None = None
        self._skip = 0
        self._link: dict[str, str] | None = None
        self._form: tuple[str, list[tuple[str, str]]] | None = None
        self._button: list[str] | None = None
        self._label: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and a.get("name") == "agentgym-state":
            self.meta = a.get("content", "")
        elif tag in ("head", "script", "style"):
            self._skip += 1
        elif tag == "a":
            self._link, self._label = a, []
        elif tag == "form":
            self._form = (a.get("action", ""), [])
        elif tag == "input" and self._form is not None and a.get("type") == "hidden":
            self._form[1].append((a.get("name", ""), a.get("value", "")))
        elif tag == "button" and "act" in a.get("class", "").split():
            self._button, self._label = [], []
        if tag in self.BLOCKS:
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        label = " ".join("".join(self._label).split())
        if tag in ("head", "script", "style"):
            self._skip -= 1
        elif tag == "a" and self._link is not None:
            self.clickables.append(Clickable(label, self._link.get("href"), self._link.get("data-group")))
            self._link = None
        elif tag == "button" and self._button is not None and self._form is not None:
            self.clickables.append(Clickable(label, form=(self._form[0], tuple(self._form[1]))))
            self._button = None
        elif tag == "form":
            self._form = None
        if tag in self.BLOCKS:
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self._label.append(data)
        self.lines[-1] += data

    def text(self) -> str:
        return "\n".join(line for line in (" ".join(raw.split()) for raw in self.lines) if line)


def http_client() -> Any:
    """An httpx client for the shop (plain HTTP: no TLS context to build, no proxies from the env)."""
    import httpx

    return httpx.Client(timeout=TIMEOUT_S, follow_redirects=True, verify=False, trust_env=False)


class TextBackend:
    """httpx + :class:`html.parser.HTMLParser`; one client (and connection pool) per env."""

    name = "text"

    def __init__(self) -> None:
        import httpx

        self._httpx = httpx
        self.client = http_client()

    def _load(self, method: str, url: str, data: dict[str, str] | None = None) -> Page:
        try:
            response = self.client.request(method, url, data=data)
        except self._httpx.HTTPError as exc:
            raise InfraError(f"the shop did not answer: {type(exc).__name__}: {exc}") from exc
        parser = _Parser()
        parser.feed(response.text)
        kind, state, cart = _split_state(parser.meta)
        return Page(str(response.url), kind, state, cart, parser.text(), tuple(parser.clickables))

    def open(self, url: str) -> Page:
        return self._load("GET", url)

    def goto(self, url: str) -> Page:
        return self._load("GET", url)

    def click(self, page: Page, index: int) -> Page:
        target = page.clickables[index]
        if target.form is not None:
            return self._load("POST", urljoin(page.url, target.form[0]), dict(target.form[1]))
        return self._load("GET", urljoin(page.url, target.href or ""))

    def search(self, page: Page, query: str) -> Page:
        path = urlsplit(page.url).path.split("/")
        return self._load("GET", urljoin(page.url, f"/s/{path[2]}/search?{urlencode({'q': query})}"))

    def end_episode(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


def chromium_path(path: str | None = None) -> str:
    """The Chromium to drive: ``path``, ``$AGENTGYM_CHROMIUM``, or ``chromium`` on PATH (Debian's)."""
    found = path or os.environ.get("AGENTGYM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not os.path.exists(found):
        raise RuntimeError("the chromium backend needs a Chromium binary: `apt-get install chromium` "
                           "(or set AGENTGYM_CHROMIUM)")
    return found


def process_tree(roots: set[int]) -> set[int]:
    """``roots`` and every live process descending from them (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it exited meanwhile
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    tree = {pid for pid in roots if pid in parents}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree


def _reap(pids: set[int], wait: float) -> None:
    """Wait up to ``wait`` seconds for ``pids`` to exit (Chromium's helpers outlive ``browser.close()`` by
    seconds), then SIGKILL the rest, so that no browser process outlives the pool."""
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


class BrowserPool:
    """Chromium processes shared by every chromium-backend env of the process.

    Playwright's async API runs on one event-loop thread owned by the pool; envs (in any
    thread) submit coroutines to it, so many episodes run concurrently on ``browsers`` Chromium
    processes. Each episode gets a fresh browser context (its own cookies, cache and storage);
    browsers stay up between episodes. The last :meth:`release` closes the browsers, stops
    Playwright's driver and the thread, so no Chromium process outlives its users.
    """

    _shared: dict[tuple[str, int], BrowserPool] = {}
    _lock = threading.Lock()

    def __init__(self, executable: str, browsers: int) -> None:
        try:
            from playwright.async_api import async_playwright
        except ImportError as exc:
            raise RuntimeError("the chromium backend needs Playwright: pip install 'agentgym-rl[web]'") from exc
        self.executable, self.size, self.users = executable, browsers, 0
        self._async_playwright = async_playwright
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentgym-browser-pool", daemon=True)
        self.thread.start()
        self._playwright: Any = None
        self._browsers: list[Any] = []
        self._browser_pids: dict[Any, set[int]] = {}
        self._next = 0

    @classmethod
    def acquire(cls, executable: str, browsers: int = 1) -> BrowserPool:
        with cls._lock:
            pool = cls._shared.get((executable, browsers))
            if pool is None:
                pool = cls._shared[(executable, browsers)] = cls(executable, browsers)
            pool.users += 1
            return pool

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            self._shared.pop((self.executable, self.size), None)
        processes: set[int] = set()
        try:
            processes = self.run(self._shutdown(), timeout=TIMEOUT_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT_S)
            self.loop.close()
            _reap(processes, wait=10.0)

    def run(self, coro: Any, timeout: float = TIMEOUT_S * 2) -> Any:
        """Run ``coro`` on the pool's loop and wait; failures of the browser become InfraError."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 — Playwright's errors, timeouts, a dead browser
            future.cancel()
            raise InfraError(f"the browser failed: {type(exc).__name__}: {exc}") from exc

    async def new_context(self) -> Any:
        """A fresh context on the next browser (round robin), launching browsers on first use."""
        if self._playwright is None:
            self._playwright = await self._async_playwright().start()
        index = self._next % self.size
        self._next += 1
        while len(self._browsers) <= index:
            self._browsers.append(await self._launch())
        if not self._browsers[index].is_connected():  # it crashed or was killed: replace it
            self._browsers[index] = await self._launch()
        context = await self._browsers[index].new_context()
        context.set_default_timeout(TIMEOUT_S * 1000)
        return context

    async def _launch(self) -> Any:
        # Playwright starts each browser with a fresh temporary --user-data-dir of its own (and
        # deletes it on close); it refuses one passed in ``args``.
        browser = await self._playwright.chromium.launch(executable_path=self.executable, args=CHROMIUM_FLAGS)
        cdp = await browser.new_browser_cdp_session()  # the browser process's id, to reap its tree on close
        info = await cdp.send("SystemInfo.getProcessInfo")
        await cdp.detach()
        self._browser_pids[browser] = {p["id"] for p in info["processInfo"] if p["type"] == "browser"}
        return browser

    async def _shutdown(self) -> set[int]:
        """Close the browsers and the driver; the browsers' processes (still exiting) to wait for."""
        processes = process_tree(set().union(*self._browser_pids.values()))
        for browser in self._browsers:
            try:
                await browser.close()
            except Exception:  # noqa: BLE001, S110 — a dead browser is already closed
                pass
        if self._playwright is not None:
            await self._playwright.stop()
        self._browsers, self._playwright, self._browser_pids = [], None, {}
        return processes


class ChromiumBackend:
    """Playwright over a pooled Chromium; one browser context per episode."""

    name = "chromium"

    def __init__(self, executable: str | None = None, browsers: int = 1, max_snapshot_chars: int = 6000) -> None:
        self.pool = BrowserPool.acquire(chromium_path(executable), browsers)
        self.max_snapshot_chars = max_snapshot_chars
        self.context: Any = None
        self.page: Any = None

    async def _read(self) -> Page:
        page = self.page
        found = await page.evaluate(_READ_JS)
        kind, state, cart = _split_state(found["meta"])
        snapshot = await page.locator("body").aria_snapshot()
        lines = [line for line in snapshot.splitlines() if not line.lstrip().startswith("- /url:")]
        text = "\n".join(lines)[: self.max_snapshot_chars]
        clickables = tuple(Clickable(c["label"], c["href"], c["group"]) for c in found["clickables"])
        return Page(page.url, kind, state, cart, text, clickables)

    async def _open(self, url: str) -> Page:
        await self._end()
        self.context = await self.pool.new_context()
        self.page = await self.context.new_page()
        return await self._goto(url)

    async def _goto(self, url: str) -> Page:
        await self.page.goto(url, wait_until="load")
        return await self._read()

    async def _click(self, index: int) -> Page:
        async with self.page.expect_navigation(wait_until="load"):
            await self.page.locator("a, button.act").nth(index).click()
        return await self._read()

    async def _search(self, query: str) -> Page:
        box = self.page.get_by_role("textbox", name="Search")
        await box.fill(query)
        async with self.page.expect_navigation(wait_until="load"):
            await box.press("Enter")
        return await self._read()

    async def _end(self) -> None:
        context, self.context, self.page = self.context, None, None
        if context is not None:
            await context.close()

    def open(self, url: str) -> Page:
        return self.pool.run(self._open(url))

    def goto(self, url: str) -> Page:
        return self.pool.run(self._goto(url))

    def click(self, page: Page, index: int) -> Page:
        return self.pool.run(self._click(index))

    def search(self, page: Page, query: str) -> Page:
        return self.pool.run(self._search(query))

    def end_episode(self) -> None:
        if self.context is not None:
            self.pool.run(self._end())

    def close(self) -> None:
        try:
            self.end_episode()
        finally:
            self.pool.release()
