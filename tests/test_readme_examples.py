"""The README's Python examples for tools, ToolWorld, MCP, WebShop and user datasets run as written,
and give what their comments promise (rewards, printed values).

Each block is taken from README.md under its heading and executed from the checkout's root; the only
edits are the interpreter paths (``.venv/bin/python`` / ``.venv/bin/agentgym`` become this test's
interpreter). Sandboxes and the WebShop site run locally, so no container is left unlabelled.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> dict[str, list[str]]:
    """Python blocks of README.md by the heading they stand under."""
    found: dict[str, list[str]] = {}
    heading, block = "", None
    for line in (ROOT / "README.md").read_text().splitlines():
        if block is not None:
            if line == "```":
                found.setdefault(heading, []).append("\n".join(block))
                block = None
            else:
                block.append(line)
        elif line == "```python":
            block = []
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


BLOCKS = _blocks()


def _block(heading: str, index: int = 0) -> str:
    matches = [h for h in BLOCKS if h.startswith(heading)]
    assert len(matches) == 1, f"README heading {heading!r}: found {matches}"
    return BLOCKS[matches[0]][index]


def _run(source: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    """Execute a README block from the repository root; (its namespace, what it printed)."""
    python = shlex.quote(sys.executable)
    source = source.replace('".venv/bin/python"', repr(sys.executable))
    source = source.replace(".venv/bin/agentgym ", f"{python} -m agentgym.cli ")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AGENTGYM_SANDBOX_BACKEND", "local")
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "README.md", "exec"), namespace)  # our own README, as a user would run it
    return namespace, out.getvalue()


def test_typed_tools_example(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, _ = _run(_block("Typed tools and `ToolEnv`"), monkeypatch)
    assert (ns["reward"], ns["terminated"]) == (1.0, True)


def test_toolworld_example(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, printed = _run("import agentgym\n" + _block("ToolWorld: `agentgym/ToolWorld-v0`"), monkeypatch)
    assert printed.splitlines() == ["message_user", "It's quinn.91@newmail.test."]
    assert (ns["reward"], ns["terminated"]) == (1.0, True)


def test_mcp_tool_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mcp")
    _, printed = _run(_block("An MCP server as an env"), monkeypatch)
    assert printed.startswith("Put 2 apples and 1 pear in the basket")
    assert printed.splitlines()[-1] == "1.0"


def test_serve_mcp_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mcp")
    _, printed = _run(_block("A tool env as an MCP server"), monkeypatch)
    names = ast.literal_eval(printed.splitlines()[0])  # the printed list of tool names
    assert names[0] == "message_user" and names[-2:] == ["reset", "answer"] and "find_customers" in names


def test_webshop_example(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, printed = _run(_block("Web tasks: `agentgym/WebShop-v0`"), monkeypatch)
    assert (ns["reward"], ns["terminated"]) == (1.0, True)
    assert printed.strip() == "('done', '', '')"


@pytest.mark.parametrize("index", [0, 1], ids=["code-datasets", "math-dataset"])
def test_bring_your_own_data_examples(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _block("Bring your own data", index)
    if index == 1:  # the math example continues the code example's `import agentgym`
        source = "import agentgym\n" + source
    assert re.search(r"^assert ", source, re.MULTILINE)  # the block checks its own rewards
    _run(source, monkeypatch)
