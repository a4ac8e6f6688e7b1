"""The Python examples of README.md and of the docs pages (tools, ToolWorld, MCP, WebShop, user
datasets) run as written, and give what their comments promise (rewards, printed values).

Each block is taken from README.md or docs/*.md under its heading (headings are unique across
them) and executed from the checkout's root, or from a run directory for the credit quickstart; the
only edits are the interpreter paths (``.venv/bin/python`` / ``.venv/bin/agentgym`` become this
test's interpreter). Sandboxes and the WebShop site run locally, so no container is left unlabelled.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks() -> dict[str, list[str]]:
    """Python blocks of README.md and the docs pages by the heading they stand under."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        heading, fence, block = "", None, None
        for line in page.read_text().splitlines():
            if fence is not None:  # inside a fenced block: '#' lines are comments, not headings
                if line == fence:
                    if block is not None:
                        found.setdefault(heading, []).append("\n".join(block))
                    fence = block = None
                elif block is not None:
                    block.append(line)
            elif line.startswith("```"):
                fence = "```"
                block = [] if line == "```python" else None
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
    return found


BLOCKS = _blocks()


def _block(heading: str, index: int = 0) -> str:
    matches = [h for h in BLOCKS if h.startswith(heading)]
    assert len(matches) == 1, f"heading {heading!r}: found {matches}"
    return BLOCKS[matches[0]][index]


def _run(source: str, monkeypatch: pytest.MonkeyPatch, cwd: Path = ROOT) -> tuple[dict[str, Any], str]:
    """Execute a documented block from ``cwd`` (the repository root); (its namespace, what it printed)."""
    python = shlex.quote(sys.executable)
    source = source.replace('".venv/bin/python"', repr(sys.executable))
    source = source.replace(".venv/bin/agentgym ", f"{python} -m agentgym.cli ")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("AGENTGYM_SANDBOX_BACKEND", "local")
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "docs", "exec"), namespace)  # our own docs, as a user would run them
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


def test_serve_openenv_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openenv.core")
    _, printed = _run(_block("Serve an env to OpenEnv clients"), monkeypatch)
    assert printed.splitlines() == ["['up', 'down', 'right']", "malformed_action", "1.0 True True"]


def test_openenv_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openenv.core")
    _, printed = _run(_block("An OpenEnv server as an env"), monkeypatch)
    assert printed.splitlines() == ["['1', '2', '3']", "False True"]


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


def test_readme_rollout_quickstart(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, _ = _run(_block("Quickstart: roll out an env from the CLI"), monkeypatch)
    assert ns["info"]["parse_error"] is None and ns["info"]["state_key"] is not None


def test_readme_own_env_quickstart(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentgym.registry import registry, unregister

    try:
        _, printed = _run(_block("Quickstart: register your own env"), monkeypatch)
        assert printed.strip() == "('Right!', 1.0, True)"
        assert registry["myorg/Guess-v0"].entry_point == "mypkg.guess:Guess"
    finally:
        if "myorg/Guess-v0" in registry:
            unregister("myorg/Guess-v0")


def test_readme_sandbox_quickstart(monkeypatch: pytest.MonkeyPatch) -> None:
    _, printed = _run(_block("Quickstart: sandboxes"), monkeypatch)
    assert printed.splitlines()[0] == "42" and printed.splitlines()[-1].startswith("True ")


def test_readme_credit_quickstart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The credit block reads the run that the rollout quickstart writes (runs/bif), here a small one."""
    subprocess.run([sys.executable, "-m", "agentgym.cli", "rollout", "--env", "agentgym/Bifurcation-v0",
                    "--policy", "scripted", "--tasks", "4", "--group-size", "4", "--out", "runs/bif"],
                   cwd=tmp_path, check=True, capture_output=True)
    ns, printed = _run(_block("Quickstart: turn-level credit"), monkeypatch, cwd=tmp_path)
    assert printed.strip() == "True"
    assert len(ns["result"].advantages) == sum(len(t.turns) for t in ns["trajectories"])


@pytest.mark.verifiers
def test_verifiers_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("verifiers")
    _, printed = _run(_block("Example: a SingleTurnEnv as an agentgym env"), monkeypatch)
    assert printed.splitlines() == ["Answer with <answer>NUMBER</answer>. | What is 4 + 4? | SingleTurnEnv-1",
                                    "1.0 True True {'correct': 1.0, 'num_turns': 1.0}"]


@pytest.mark.verifiers_v1
def test_verifiers_v1_example(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("verifiers.v1")
    # the null harness's program runs with the venv's uv (scripts/setup_verifiers_v1.sh installs it)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    _, printed = _run(_block("Example: a v1 taskset, played by verifiers' `null` harness"), monkeypatch)
    assert printed.splitlines() == ["Answer with <answer>NUMBER</answer>. | What is 4 + 4? | SumTaskset-1",
                                    "1.0 True True {'correct': 1.0}"]


@pytest.mark.docker
def test_terminal_example(monkeypatch: pytest.MonkeyPatch, sandbox_image: str) -> None:
    ns, printed = _run(_block("Terminal tasks: `agentgym/Terminal-v0`"), monkeypatch)
    assert printed.splitlines() == ["agentgym/csv-report", "['[exit code 0]', 'region,amount']", "1.0 True"]
    assert ns["terminated"] and ns["env"].unwrapped.task.name == "agentgym/csv-report"
