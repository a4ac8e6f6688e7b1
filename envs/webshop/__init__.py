"""WebShop-style web tasks on our own shop site (agentgym/WebShop-v0).

Modules: ``shop`` (catalogue, instructions and the HTTP site; standard library only, it also
runs inside the site container), ``site`` (starting and sharing the site: Docker or loopback),
``backends`` (text: httpx + HTML parser; chromium: Playwright + Debian's Chromium), ``env``
(the env and its reward). Nothing heavy is imported here: Playwright loads with the chromium backend.
"""

from __future__ import annotations

__all__ = ["register_webshop_envs"]


def register_webshop_envs() -> None:
    """Register ``agentgym/WebShop-v0`` (idempotent)."""
    from agentgym.registry import register

    register(
        "agentgym/WebShop-v0",
        "agentgym.envs.webshop.env:WebShopEnv",
        max_turns=30,
        description="Shop for an instruction on our site (1,200 generated products); WebShop reward; "
        "backend=text|chromium.",
    )
