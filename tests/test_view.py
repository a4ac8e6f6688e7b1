"""``agentgym view``: the static page, checked in headless Debian Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentgym import Trajectory, Turn
from agentgym.cli import app
from agentgym.store import TrajectoryStore
from agentgym.view import render_html

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
# CI installs Debian's chromium and sets AGENTGYM_REQUIRE_CHROMIUM=1, so there a missing one fails.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")) and os.environ.get("AGENTGYM_REQUIRE_CHROMIUM") != "1",
    reason=f"no Debian chromium at {CHROMIUM}")
LONG_OBS = "You stand in a corridor. " * 40  # longer than a turn cell shows


def _trajectories() -> list[Trajectory]:
    """Two groups: shared states across a group, a void turn, a parse error, an infra failure, a truncation."""
    def traj(gid: str, k: int, task: str, keys: list[str], outcome: float, **kw: Any) -> Trajectory:
        turns = [Turn(index=i, observation=f"{LONG_OBS}[{gid}/{k}/{i}]", action=f"go {key}", state_key=key,
                      reward=outcome if i == len(keys) - 1 else 0.0) for i, key in enumerate(keys)]
        kw.setdefault("success", outcome == 1.0 and not kw.get("truncated") and not kw.get("failure"))
        return Trajectory(f"{gid}-{k:03d}", gid, task, "tests/Maze-v0", 0, "scripted", turns=turns,
                          outcome=outcome, terminated=not kw.get("truncated"), **kw)

    a = [traj("gA", 0, "maze-1", ["s0", "s1", "s2"], 1.0), traj("gA", 1, "maze-1", ["s0", "s3"], 0.0),
         traj("gA", 2, "maze-1", ["s0", "s1", "s4"], 1.0), traj("gA", 3, "maze-1", ["s0"], 0.0, failure="infra",
                                                                 failure_detail="step: SandboxCrashed: gone")]
    a[1].turns[1].void = True
    b = [traj("gB", 0, "maze-2", ["t0", "t1"], 0.0, truncated=True, truncation_reason="max_turns"),
         traj("gB", 1, "maze-2", ["t0", "t9"], 1.0)]
    b[0].turns[0].parse_error = "no <action> tag"
    return a + b


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    with TrajectoryStore(tmp_path / "run") as store:
        store.extend(_trajectories())
    # real credit: GiGPO over the run, as `agentgym advantages` writes it
    config = tmp_path / "credit.yaml"
    config.write_text("method: gigpo\ngamma: 0.95\n")
    result = CliRunner().invoke(app, ["advantages", str(tmp_path / "run"), "-c", str(config)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["view", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return page, errors, requests


@NEEDS_CHROMIUM
def test_view_draws_groups_side_by_side_with_advantages_markers_and_details(browser: Any, run_dir: Path,
                                                                           tmp_path: Path) -> None:
    page, errors, requests = _open(browser, run_dir / "view.html")
    assert errors == [] and requests == [(run_dir / "view.html").as_uri()]  # no network, nothing else loaded
    assert page.locator("section.group").count() == 2
    cols = page.locator("section.group[data-group='gA'] .traj")
    assert cols.count() == 4
    boxes = [cols.nth(i).bounding_box() for i in range(4)]
    assert len({round(b["y"]) for b in boxes}) == 1 and [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)

    # coloured by advantage: the successful trajectories' turns green, the failed one's red
    def rgb(selector: str) -> tuple[int, ...]:
        value = page.locator(selector).evaluate("e => getComputedStyle(e).backgroundColor")
        return tuple(int(float(x)) for x in value[value.index("(") + 1:-1].split(",")[:3])

    good = rgb("[data-traj='gA-000'] .turn[data-i='2']")
    bad = rgb("[data-traj='gA-001'] .turn[data-i='1']")
    assert good[1] > good[0] and bad[0] > bad[1]
    assert float(page.locator("[data-traj='gA-000'] .turn[data-i='2']").get_attribute("data-adv")) > 0

    # s0 is in every trajectory of gA, s1 in two: both get the same edge colour across the group; s2 does not
    edge = "e => getComputedStyle(e).borderLeftColor"
    s1 = [page.locator(f"[data-traj='{t}'] .turn[data-i='1']").evaluate(edge) for t in ("gA-000", "gA-002")]
    assert s1[0] == s1[1] != page.locator("[data-traj='gA-000'] .turn[data-i='0']").evaluate(edge)
    assert "shared" not in page.locator("[data-traj='gA-000'] .turn[data-i='2']").get_attribute("class")
    page.locator("[data-traj='gA-000'] .turn[data-i='1']").hover()
    assert page.locator("section.group[data-group='gA'] .turn.hl").count() == 2

    # markers: void, parse error, infra, truncation
    assert page.locator("[data-traj='gA-001'] .turn[data-i='1'] .mark.void").count() == 1
    assert page.locator("[data-traj='gB-000'] .turn[data-i='0'] .mark.perr").count() == 1
    assert page.locator("[data-traj='gA-003'] .badge").inner_text() == "infra"
    assert page.locator("[data-traj='gB-000'] .badge").inner_text() == "truncated"

    # a click shows the whole turn
    page.locator("[data-traj='gB-000'] .turn[data-i='0']").click()
    detail = page.locator("#detail")
    assert detail.locator("pre.obs").inner_text() == f"{LONG_OBS}[gB/0/0]".strip()
    assert detail.locator("pre.act").inner_text() == "go t0" and "no <action> tag" in detail.inner_text()
    page.screenshot(path=str(tmp_path / "view.png"))
    assert (tmp_path / "view.png").stat().st_size > 10_000
    page.close()


@NEEDS_CHROMIUM
def test_view_filters_by_outcome_task_and_group(browser: Any, run_dir: Path) -> None:
    page, errors, _ = _open(browser, run_dir / "view.html")
    page.select_option("#f-outcome", "infra")
    assert page.locator(".traj").count() == 1 and page.locator(".traj").get_attribute("data-traj") == "gA-003"
    page.select_option("#f-outcome", "parse-error")
    assert [page.locator(".traj").nth(i).get_attribute("data-traj") for i in range(page.locator(".traj").count())] \
        == ["gB-000"]
    page.select_option("#f-outcome", "success")
    assert page.locator(".traj").count() == 3
    page.select_option("#f-outcome", "")
    page.fill("#f-task", "maze-2")
    assert page.locator("section.group").count() == 1 and page.locator(".traj").count() == 2
    page.fill("#f-task", "")
    page.fill("#f-group", "gA")
    assert page.locator("section.group").count() == 1 and page.locator(".traj").count() == 4
    assert errors == []
    page.close()


@NEEDS_CHROMIUM
def test_view_pages_through_ten_thousand_trajectories(browser: Any, tmp_path: Path) -> None:
    """10,000 trajectories in 1,250 groups: the page holds one page of groups and filters over all."""
    trajs = []
    for g in range(1250):
        for k in range(8):
            turns = [Turn(index=i, observation=f"obs {g}/{k}/{i}", action=f"a{(g + k + i) % 3}",
                          state_key=f"s{i}-{(k + i) % 2}") for i in range(4)]
            trajs.append(Trajectory(f"g{g}-{k}", f"g{g}", f"task-{g % 50}", "tests/Big-v0", g, "p", turns=turns,
                                    outcome=float(k % 2), terminated=True, failure="infra" if k == 7 and g % 10 == 0
                                    else None).to_dict())
    path = tmp_path / "big.html"
    path.write_text(render_html(trajs, title="big"))
    page, errors, _ = _open(browser, path)
    assert page.locator("section.group").count() == 20 and page.locator(".traj").count() == 160
    assert "1250 groups · 10000 trajectories shown of 10000" in page.locator("#count").inner_text()
    page.click("#next")
    assert page.locator("section.group").first.get_attribute("data-group") == "g20"
    page.select_option("#f-outcome", "infra")
    assert "125 groups · 125 trajectories" in page.locator("#count").inner_text()
    assert errors == []
    page.close()


@NEEDS_CHROMIUM
def test_view_escapes_text_that_looks_like_markup(browser: Any, tmp_path: Path) -> None:
    evil = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    t = Trajectory("t0", "g0", "task", "e", 0, "p", turns=[Turn(index=0, observation=evil, action=evil)])
    path = tmp_path / "evil.html"
    path.write_text(render_html([t.to_dict()], title="<b>run</b>"))
    page, errors, requests = _open(browser, path)
    assert errors == [] and page.title() == "<b>run</b>" and len(requests) == 1
    page.locator(".turn").click()
    assert page.locator("#detail pre.obs").inner_text() == evil
    page.close()


def test_view_command_reports_a_missing_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["view", str(tmp_path)])
    assert result.exit_code == 2 and "trajectories.jsonl does not exist" in result.output


def test_badge_is_the_envs_success_not_a_positive_outcome() -> None:
    """Issue 21: a wrong WebShop item bought for reward 0.03 was badged "success"."""
    import json

    bought_wrong = Trajectory("w", "g", "task-1", "agentgym/WebShop-v0", 0, "random", outcome=0.03,
                              terminated=True, success=False).to_dict()
    bought_right = {**bought_wrong, "traj_id": "r", "outcome": 1.0, "success": True}
    partial_v1 = {k: v for k, v in bought_wrong.items() if k != "success"} | {"traj_id": "v1", "schema_version": 1}
    page = render_html([bought_wrong, bought_right, partial_v1])
    data = json.loads(page.split('<script type="application/json" id="data">')[1].split("</script>")[0])
    statuses = {t["id"]: t["s"] for t in data["trajs"]}
    assert statuses == {"w": "failure", "r": "success", "v1": "success"}  # a version-1 record keeps its old rule
