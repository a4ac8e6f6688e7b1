"""``agentgym view`` on 10,000 trajectories: page build time and time to first draw in Chromium.

Rolls out 10,000 real Bifurcation episodes (random policy, groups of 8), computes GiGPO advantages,
then measures, each beside a baseline taken in the same run:

* Python: ``write_view`` (read the run + advantages, write the page) vs only reading the run's
  JSON lines;
* Chromium (headless Debian chromium through Playwright): opening the viewer until its first page
  of groups is drawn vs opening a page that holds the same JSON and only parses it; a filter
  change over all trajectories.

    .venv/bin/python bench/view_large.py [--tasks 1250] [--group-size 8] [--screenshot docs/assets/view.png]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentgym.view import VIEW, render_html, write_view

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
BASELINE = """<!doctype html><html><body><script type="application/json" id="data">__DATA__</script>
<script>JSON.parse(document.getElementById("data").textContent); document.body.dataset.ready = "1";</script>
</body></html>"""


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1250)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="Save a screenshot of the viewer here (the docs use docs/assets/view.png).")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="agentgym-view-") as tmp:
        run = Path(tmp) / "run"
        exe = [sys.executable, "-m", "agentgym.cli"]
        subprocess.run([*exe, "rollout", "--env", "agentgym/Bifurcation-v0", "--policy", "random", "--tasks",
                        str(args.tasks), "--group-size", str(args.group_size), "--concurrency", "64", "--out",
                        str(run)], check=True, capture_output=True)
        config = Path(tmp) / "gigpo.yaml"
        config.write_text("method: gigpo\ngamma: 0.95\n")
        subprocess.run([*exe, "advantages", str(run), "-c", str(config)], check=True, capture_output=True)
        lines = (run / "trajectories.jsonl").read_text().splitlines()
        n_turns = sum(len(json.loads(line)["turns"]) for line in lines)

        read = best(lambda: [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()],
                    args.repeats)
        build = best(lambda: write_view(run), args.repeats)
        page_path = run / VIEW
        size = page_path.stat().st_size
        trajs = [json.loads(line) for line in lines]
        payload = render_html(trajs)
        data = payload[payload.index('id="data">') + len('id="data">'):payload.index("</script>")]
        base_path = Path(tmp) / "baseline.html"
        base_path.write_text(BASELINE.replace("__DATA__", data))

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)

            def open_page(path: Path) -> float:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                start = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready='1']", state="attached")
                elapsed = time.perf_counter() - start
                page.close()
                return elapsed

            base_open = min(open_page(base_path) for _ in range(args.repeats))
            view_open = min(open_page(page_path) for _ in range(args.repeats))
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            filter_ms = page.evaluate("""() => { const s = document.getElementById("f-outcome"), t = [];
                for (const v of ["success", "failure", ""]) { const t0 = performance.now(); s.value = v;
                  s.dispatchEvent(new Event("change")); t.push(performance.now() - t0); } return Math.min(...t); }""")
            if args.screenshot:
                page.locator(".turn.shared").nth(5).hover()
                page.locator(".turn").nth(7).click()
                page.screenshot(path=str(args.screenshot))
            browser.close()

    print(f"# agentgym view, {len(lines)} trajectories, {n_turns} turns ({platform.processor() or platform.machine()}, "
          f"{platform.python_version()})")
    print(f"page size: {size / 1e6:.1f} MB")
    print(f"python: read the run {read:.3f} s | write_view {build:.3f} s | ratio {build / read:.2f}x")
    print(f"chromium: open JSON-only page {base_open:.3f} s | open viewer to first draw {view_open:.3f} s | "
          f"ratio {view_open / base_open:.2f}x")
    print(f"chromium: outcome filter over all trajectories + redraw {filter_ms:.1f} ms")


if __name__ == "__main__":
    main()
