"""An MCP server that keeps global state and has no reset tool (issue 21): a list of notes.

Run as ``python notes_server.py`` (stdio). ``add_note`` appends to a module-level list that only a
new process empties; ``notes`` returns the list (an SDK server sends a returned list as one text
block per item, plus the structured content ``{"result": [...]}``).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes", log_level="WARNING")
NOTES: list[dict[str, str]] = []


@server.tool()
def add_note(text: str) -> str:
    """Add a note."""
    NOTES.append({"text": text})
    return f"{len(NOTES)} note(s)"


@server.tool()
def notes() -> list[dict[str, str]]:
    """Every note, oldest first."""
    return list(NOTES)


if __name__ == "__main__":
    server.run()
