"""The docs site builds with every link and anchor valid, and nothing the repository ships points
outside it.

README.md is the front door and the manual is the MkDocs site under docs/ (mkdocs.yml). A link that
works only in one engineer's checkout (a path above the repository, a file that was never
committed) is invisible until a user follows it, so every tracked text file is checked here: its
Markdown links, and every ``something.md`` it names in prose, docstrings, CLI help or env
descriptions, must resolve to a tracked file; a ``docs/<page>.md#<anchor>`` must name a heading that
the built site has.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".sh", ".txt", ".html", ".js", ".cfg", ""}
# A path naming a Markdown file: not part of a URL or a longer path (nothing path-like before it).
MD_REF = re.compile(r"(?<![\w/.:-])((?:\.\.?/)*(?:[\w.-]+/)*[\w.-]*\w\.md)(#[\w-]+)?(?![\w/])")
# A relative path that climbs: ``../`` steps and the name they reach.
CLIMB = re.compile(r"(?<![\w/.])((?:\.\./)+[\w.-]+)")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
README_MAX_LINES = 300


def _tracked() -> list[Path]:
    """The repository's files: tracked, or new and not ignored (what a commit of this tree holds)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("not a git checkout: the tracked-file checks need `git ls-files` (run the tests from a clone)")
    return [ROOT / name for name in out.decode().split("\0") if name]


def _text_files() -> list[Path]:
    """The repository's text files, but this one (its probes name missing files on purpose)."""
    return [p for p in _tracked() if p.suffix in TEXT_SUFFIXES and p.is_file() and p != Path(__file__).resolve()
            and b"\0" not in p.read_bytes()[:4096]]


def _resolves(target: str, source: Path, tracked: set[Path]) -> bool:
    """Whether a relative path, read from ``source``, names a tracked file or folder in the repository.

    A bare file name (code that builds ``out / "credit_lm.md"``, prose naming ``RECIPES.md``) passes
    when some tracked file has that name; a path with a folder must resolve exactly.
    """
    if "/" not in target and any(t.name == target for t in tracked):
        return True
    bases = (source.parent, ROOT, ROOT / "docs") if source.name == "mkdocs.yml" else (source.parent, ROOT)
    for base in bases:  # mkdocs.yml names pages relative to docs/
        path = (base / target).resolve()
        if path.is_relative_to(ROOT) and (path in tracked or any(t.is_relative_to(path) for t in tracked)):
            return True
    return False


def problems(text: str, source: Path, tracked: set[Path]) -> list[str]:
    """Every Markdown link and every named ``*.md`` in ``text`` (read from ``source``) that does not
    resolve in the repository."""
    bad = []
    for climb in CLIMB.findall(text):
        if not (source.parent / climb).resolve().is_relative_to(ROOT):
            bad.append(f"{climb!r} climbs above the repository")
    if source.suffix == ".md":
        for target in MD_LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # a URL or an anchor on the same page
                continue
            if not _resolves(target.split("#")[0], source, tracked):
                bad.append(f"link to {target!r} does not resolve in the repository")
    for name, _anchor in MD_REF.findall(text):
        if not _resolves(name, source, tracked):
            bad.append(f"names {name!r}, which is not in the repository")
    return bad


def test_no_tracked_file_points_outside_the_repository() -> None:
    tracked = set(_tracked())
    bad = [f"{path.relative_to(ROOT)}: {problem}" for path in _text_files()
           for problem in problems(path.read_text(errors="replace"), path, tracked)]
    assert not bad, "\n".join(bad)


def test_env_descriptions_point_inside_the_repository() -> None:
    """What `agentgym envs list` prints for each built-in env names only files the repository has."""
    import agentgym  # noqa: F401  (registers the built-ins)
    from agentgym.registry import registry

    tracked = set(_tracked())
    for env_id, spec in registry.items():
        assert not problems(spec.description, ROOT / "README.md", tracked), f"{env_id}: {spec.description}"


def test_the_checker_catches_references_outside_the_repository() -> None:
    """The kinds of reference the old README and env list had are reported; good ones are not."""
    tracked = set(_tracked())
    page = ROOT / "docs" / "index.md"
    found = problems("the maths: `../../notes/CREDIT.md`; see [gone](nowhere.md) and (CREDIT.md §8)", page, tracked)
    assert found[0] == "'../../notes' climbs above the repository" and "link to 'nowhere.md'" in found[1], found
    assert sum("names '../../notes/CREDIT.md'" in f or "names 'CREDIT.md'" in f for f in found) == 2, found
    assert not problems("see [credit](credit.md#gigpo), docs/credit.md#gigpo, README.md and "
                        "[the example](../examples/gridworld)", page, tracked)


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for key, value in attrs if key == "id" and value)


def _build(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(tmp_path / "site")], cwd=config.parent, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)


def test_docs_site_builds_strict_and_docs_anchors_exist(tmp_path: Path) -> None:
    """`mkdocs build --strict` passes (links and anchors validated), and every `docs/<page>.md#<anchor>`
    named anywhere in the repository (docstrings, recipes, CLI help) is a heading of the built page."""
    result = _build(tmp_path, ROOT / "mkdocs.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    api = (site / "api" / "credit" / "index.html").read_text()
    assert "assign_credit" in api and "gigpo" in api  # the API reference was generated from docstrings
    ids: dict[str, set[str]] = {}
    missing = []
    for path in _text_files():
        for name, anchor in MD_REF.findall(path.read_text(errors="replace")):
            if not name.startswith("docs/") or not anchor:
                continue
            page = site / name.removeprefix("docs/").removesuffix(".md") / "index.html"
            if name not in ids:
                parser = _Ids()
                parser.feed(page.read_text() if page.exists() else "")
                ids[name] = parser.ids
            if anchor[1:] not in ids[name]:
                missing.append(f"{path.relative_to(ROOT)}: {name}{anchor} is not a heading of the built page")
    assert not missing, "\n".join(missing)


def test_docs_build_fails_on_a_broken_anchor(tmp_path: Path) -> None:
    """The validation settings in mkdocs.yml are real: a link to a missing heading fails the build."""
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    config = (ROOT / "mkdocs.yml").read_text()
    nav_start = config.index("\nplugins:")
    # the same settings, minus the API pages (they need the package sources) and the nav
    (copy / "mkdocs.yml").write_text(config[:nav_start] + "\nplugins:\n  - search\n")
    (copy / "docs" / "index.md").write_text("# Home\n\nSee [credit](credit.md#no-such-heading).\n")
    (copy / "docs" / "credit.md").write_text("# Credit\n\n## GiGPO\n")
    result = _build(tmp_path, copy / "mkdocs.yml")
    assert result.returncode != 0
    assert "no-such-heading" in result.stdout + result.stderr
    (copy / "docs" / "index.md").write_text("# Home\n\nSee [credit](credit.md#gigpo).\n")
    assert _build(tmp_path, copy / "mkdocs.yml").returncode == 0


def test_readme_is_the_front_door() -> None:
    """README stays short, keeps the two commands, and links the manual's pages."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "bash scripts/demo.sh    # set up .venv and run the main job on the embedded default" in readme
    assert "bash scripts/test.sh    # set up .venv, run ruff and the default test pass" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for page in ("install", "envs", "builtin-envs", "tools", "cli", "sandboxes", "credit", "trainer",
                 "benchmarks", "status"):
        assert f"(docs/{page}.md)" in readme, page
    recipes = sorted(p.stem for p in (ROOT / "trainers" / "recipes").glob("*.yaml"))
    assert all(f"`{name}`" in readme for name in recipes), recipes
