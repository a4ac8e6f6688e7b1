"""Real MCP servers for the MCP tests (see mcp_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("mcp")

from mcp_support import start_http_shop  # noqa: E402


@pytest.fixture
def http_shop() -> Iterator[str]:
    """A fresh shop server over streamable HTTP (fresh, since tests may crash it)."""
    process, url = start_http_shop()
    yield url
    process.kill()
    process.wait()
