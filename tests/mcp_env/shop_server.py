"""A small stateful MCP server for the tests and the benchmark: a shopping basket.

Run as ``python shop_server.py`` (stdio) or ``python shop_server.py --http PORT`` (streamable HTTP
on 127.0.0.1). Built with the official SDK's ``MCPServer``, so clients meet a real server: its
tools' schemas come from the signatures, a raised ``ToolError`` becomes an ``isError`` result
with its message, and ``crash`` kills the process mid-call, as a server that dies would.
"""

from __future__ import annotations

import argparse
import os

from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

PRICES = {"apple": 3, "pear": 4, "milk": 7, "bread": 5}

server = MCPServer("shop", instructions="A shop with a basket. Prices are in cents.", log_level="WARNING")
basket: dict[str, int] = {}


@server.tool()
def reset_basket() -> str:
    """Empty the basket (the env calls this at the start of every episode)."""
    basket.clear()
    return "basket emptied"


@server.tool()
def add_item(item: str, quantity: int = 1) -> str:
    """Put an item in the basket.

    Args:
        item: one of apple, pear, milk, bread.
        quantity: how many (1 to 10).
    """
    if item not in PRICES:
        raise ToolError(f"no such item: {item!r}; the shop sells {', '.join(PRICES)}")
    if not 1 <= quantity <= 10:
        raise ToolError("quantity must be between 1 and 10")
    basket[item] = basket.get(item, 0) + quantity
    return f"{quantity} {item} added; basket: {basket}"


@server.tool()
def view_basket() -> dict[str, int]:
    """The items in the basket and their quantities."""
    return dict(basket)


@server.tool()
def total() -> int:
    """The basket's total price in cents."""
    return sum(PRICES[item] * n for item, n in basket.items())


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged (used to measure round trips)."""
    return text


@server.tool()
def pid() -> int:
    """The server's process id (tests check that closing a client ends the process)."""
    return os.getpid()


@server.tool()
def fail(code: int) -> str:
    """Answer with a JSON-RPC error of this code instead of a result."""
    raise MCPError(code, f"refused with JSON-RPC error {code}")


@server.tool()
def crash() -> str:
    """Kill the server process without answering (a server that dies mid-episode)."""
    os._exit(3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
