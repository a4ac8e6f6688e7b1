"""``agentgym view RUN_DIR``: one static HTML file to read a rollout run in a browser.

No server and no network: the trajectories (and the per-turn advantages of ``advantages.jsonl``,
when ``agentgym advantages`` wrote one) are embedded as JSON and drawn by a small script in the
page. Groups sit one under another, their trajectories side by side; each turn is coloured by its
advantage (green above 0, red below, stronger with magnitude); turns whose ``state_key`` recurs in
other trajectories of the group share a coloured left edge, and hovering a turn outlines every turn
of the group in the same state. Markers: ∅ void turn, ⚠ parse error; the trajectory header says
success (the env's own verdict, ``success`` of the record) / failure (infra, agent, error) / truncation. Filters: outcome, task, group. A click on a turn shows
its full observation and action. Only one page of groups is in the DOM at a time, so a run of
10,000 trajectories opens and filters quickly (``bench/view_large.py``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from agentgym.trajectory import record_success

__all__ = ["VIEW", "render_html", "view", "write_view"]

VIEW = "view.html"
console = Console(soft_wrap=True)  # paths and ids stay whole, so they can be copied


def _status(t: dict[str, Any]) -> str:
    """One word per trajectory, the outcome filter's values."""
    if t.get("failure") in ("infra", "error"):
        return str(t["failure"])
    if t.get("failure") == "agent":
        return "agent-failure"
    if record_success(t):  # the env's own verdict, not a positive outcome (partial credit is not success)
        return "success"
    if t.get("truncated"):
        return "truncated"
    return "failure"


def _compact(t: dict[str, Any], advantages: list[float] | None) -> dict[str, Any]:
    """The fields the page shows, with short keys (a run of 10,000 trajectories stays a few MB)."""
    turns = []
    for i, turn in enumerate(t.get("turns", [])):
        key = turn.get("state_key")
        turns.append({
            "o": turn.get("observation", ""), "a": turn.get("action", ""), "r": turn.get("reward", 0.0),
            # canonical non-str keys start with NUL: compare them, show a readable stand-in
            "k": key, "K": None if key is None else ("‹binary key›" if key.startswith("\x00") else key),
            "v": bool(turn.get("void")), "p": turn.get("parse_error"),
            "A": advantages[i] if advantages is not None and i < len(advantages) else None,
        })
    return {
        "id": t["traj_id"], "g": t["group_id"], "task": t.get("task_id", ""), "o": t.get("outcome", 0.0),
        "s": _status(t), "why": t.get("truncation_reason") or t.get("failure_detail") or "",
        "T": turns,
    }


def render_html(trajectories: Iterable[dict[str, Any]], advantages: dict[str, list[float]] | None = None,
                title: str = "agentgym run") -> str:
    """The page for ``trajectories`` (dicts as stored in ``trajectories.jsonl``)."""
    data = [_compact(t, (advantages or {}).get(t["traj_id"])) for t in trajectories]
    payload = json.dumps({"title": title, "hasAdv": advantages is not None, "trajs": data},
                         ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c")  # no "</script>" can end the data block early
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_view(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the page for the run in ``run_dir`` (default ``RUN_DIR/view.html``); return its path."""
    from agentgym.credit.cli import ADVANTAGES
    from agentgym.store import TrajectoryStore, read_jsonl

    run_dir = Path(run_dir)
    store = TrajectoryStore(run_dir)
    if not store.path.exists():
        raise FileNotFoundError(f"{store.path} does not exist (is {run_dir} a rollout directory?)")
    adv_path = run_dir / ADVANTAGES
    advantages = {rec["traj_id"]: rec["advantages"] for rec in read_jsonl(adv_path)} if adv_path.exists() else None
    manifest = store.manifest_path
    info = json.loads(manifest.read_text()) if manifest.exists() else {}
    env_id = (info.get("env_spec") or {}).get("id") or info.get("env") or ""
    title = " · ".join(str(x) for x in (run_dir.name, env_id, info.get("policy", "")) if x)
    out = Path(out) if out else run_dir / VIEW
    out.write_text(render_html(store.iter_dicts(), advantages, title), encoding="utf-8")
    return out


def view(
    run_dir: Path = typer.Argument(..., help="A rollout directory (holds trajectories.jsonl).", exists=True,
                                   file_okay=False),
    out: Path = typer.Option(None, help=rf"Where to write the page. \[default: RUN_DIR/{VIEW}]"),
) -> None:
    """Write a static HTML viewer of a run: groups side by side, turns coloured by advantage."""
    from agentgym.store import CorruptStoreError

    try:
        path = write_view(run_dir, out)
    except (FileNotFoundError, CorruptStoreError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"wrote {path} (open it in a browser; it needs no server)")


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
body{font:13px/1.35 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #ddd;padding:8px 12px;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
header h1{font-size:15px;margin:0 8px 0 0}
main{display:flex}
#groups{flex:1;padding:8px 12px;min-width:0}
.group{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 10px;padding:6px}
.group h2{font-size:12px;margin:0 0 6px;color:#555;font-weight:600}
.trajs{display:flex;gap:6px;overflow-x:auto;align-items:flex-start}
.traj{flex:0 0 150px;border:1px solid #ccc;border-radius:4px;background:#fff}
.traj.infra{background:repeating-linear-gradient(45deg,#fff,#fff 6px,#fde8e8 6px,#fde8e8 12px)}
.th{padding:3px 5px;font-size:11px;border-bottom:1px solid #ddd;display:flex;justify-content:space-between;gap:4px}
.badge{border-radius:3px;padding:0 4px;font-weight:600}
.b-success{background:#d7f5dd;color:#11602a}.b-failure{background:#eee;color:#555}
.b-infra,.b-error{background:#f8d0d0;color:#8a1010}.b-agent-failure{background:#fde3c6;color:#7a4100}
.b-truncated{background:#e3e3fb;color:#303090}
.turn{margin:3px;padding:3px 4px;border-radius:3px;border-left:5px solid transparent;cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-family:ui-monospace,monospace;font-size:11px}
.turn.hl{outline:2px solid #1a5fd0}
.turn.sel{outline:2px solid #000}
.mark{font-weight:700;margin-right:3px}
#detail{flex:0 0 36%;max-width:36%;position:sticky;top:48px;align-self:flex-start;height:calc(100vh - 60px);overflow:auto;background:#fff;border-left:1px solid #ddd;padding:8px 12px}
#detail dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px}#detail dd{margin:0;word-break:break-word}
#detail pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:6px;border-radius:4px;font-size:12px}
#legend{font-size:11px;color:#555}
.pager button{margin:0 2px}
</style></head>
<body>
<header>
 <h1 id="title"></h1>
 <label>outcome <select id="f-outcome">
  <option value="">all</option><option>success</option><option>failure</option><option>agent-failure</option>
  <option>infra</option><option>error</option><option>truncated</option><option value="parse-error">has parse error</option>
  <option value="void">has void turn</option></select></label>
 <label>task <input id="f-task" size="14" placeholder="contains…"></label>
 <label>group <input id="f-group" size="14" placeholder="contains…"></label>
 <span class="pager"><button id="prev">◀</button><span id="page"></span><button id="next">▶</button></span>
 <span id="count"></span>
 <span id="legend"></span>
</header>
<main><div id="groups"></div><aside id="detail"><p>Click a turn to see its full observation and action.</p></aside></main>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const PAGE = 20, PALETTE = ["#e6194b","#3cb44b","#4363d8","#f58231","#911eb4","#42d4f4","#f032e6","#9a6324","#469990","#808000"];
document.getElementById("title").textContent = D.title;
const groups = new Map();
for (const t of D.trajs) { if (!groups.has(t.g)) groups.set(t.g, []); groups.get(t.g).push(t); }
for (const t of D.trajs) { t.pe = t.T.some(u => u.p); t.vd = t.T.some(u => u.v); }
let scale = 0;
if (D.hasAdv) { const a = D.trajs.flatMap(t => t.T.map(u => Math.abs(u.A || 0))).sort((x, y) => x - y);
  scale = a.length ? (a[Math.floor(0.95 * (a.length - 1))] || a[a.length - 1]) || 1 : 1; }
document.getElementById("legend").textContent = D.hasAdv
  ? "colour: advantage (green > 0 > red); edge colour: state_key shared in the group; ∅ void, ⚠ parse error"
  : "no advantages.jsonl (run `agentgym advantages RUN_DIR`); edge colour: shared state_key; ∅ void, ⚠ parse error";
function colour(a) {
  if (a === null || a === undefined || !D.hasAdv) return "#f2f2f2";
  const x = Math.min(1, Math.abs(a) / scale), alpha = (0.08 + 0.62 * x).toFixed(3);
  return a >= 0 ? `rgba(20,150,50,${alpha})` : `rgba(210,30,30,${alpha})`;
}
const sel = {outcome: "", task: "", group: ""};
let page = 0, visible = [];
function matches(t) {
  const o = sel.outcome;
  if (o && !(o === "parse-error" ? t.pe : o === "void" ? t.vd : t.s === o)) return false;
  if (sel.task && !String(t.task).includes(sel.task)) return false;
  return true;
}
function refilter() {
  visible = [];
  for (const [g, ts] of groups) {
    if (sel.group && !String(g).includes(sel.group)) continue;
    const shown = ts.filter(matches);
    if (shown.length) visible.push([g, ts, shown]);
  }
  page = 0; draw();
}
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function draw() {
  const root = document.getElementById("groups"); root.replaceChildren();
  const pages = Math.max(1, Math.ceil(visible.length / PAGE));
  page = Math.min(page, pages - 1);
  document.getElementById("page").textContent = ` page ${page + 1}/${pages} `;
  const ntraj = visible.reduce((n, v) => n + v[2].length, 0);
  document.getElementById("count").textContent = `${visible.length} groups · ${ntraj} trajectories shown of ${D.trajs.length}`;
  for (const [g, all, shown] of visible.slice(page * PAGE, (page + 1) * PAGE)) {
    const keyTrajs = new Map();  // state_key -> trajectories of the group holding it
    for (const t of all) for (const u of t.T) if (u.k !== null && u.k !== undefined) {
      if (!keyTrajs.has(u.k)) keyTrajs.set(u.k, new Set()); keyTrajs.get(u.k).add(t.id); }
    const keyColour = new Map(); let next = 0;
    for (const [k, s] of keyTrajs) if (s.size > 1) keyColour.set(k, PALETTE[next++ % PALETTE.length]);
    const box = el("section", "group"); box.dataset.group = g;
    box.append(el("h2", "", `group ${g} · task ${all[0].task} · ${shown.length}/${all.length} trajectories`));
    const row = el("div", "trajs");
    for (const t of shown) {
      const col = el("div", "traj " + t.s); col.dataset.traj = t.id; col.dataset.status = t.s;
      const head = el("div", "th");
      head.append(el("span", "", `R ${Number(t.o).toFixed(2)}`), el("span", "badge b-" + t.s, t.s));
      if (t.why) head.title = t.why;
      col.append(head);
      t.T.forEach((u, i) => {
        const c = el("div", "turn"); c.style.background = colour(u.A);
        c.dataset.i = i; if (u.A !== null && u.A !== undefined) c.dataset.adv = u.A;
        if (keyColour.has(u.k)) { c.style.borderLeftColor = keyColour.get(u.k); c.classList.add("shared"); c.dataset.key = u.k; }
        if (u.v) c.append(el("span", "mark void", "∅"));
        if (u.p) c.append(el("span", "mark perr", "⚠"));
        c.append(document.createTextNode(`${i}: ${u.a.slice(0, 80)}`));
        c.onmouseenter = () => { if (c.dataset.key !== undefined) for (const o of box.querySelectorAll(".turn.shared"))
          if (o.dataset.key === c.dataset.key) o.classList.add("hl"); };
        c.onmouseleave = () => { for (const o of box.querySelectorAll(".turn.hl")) o.classList.remove("hl"); };
        c.onclick = () => show(t, i, c);
        col.append(c);
      });
      row.append(col);
    }
    box.append(row); root.append(box);
  }
}
function show(t, i, cell) {
  for (const o of document.querySelectorAll(".turn.sel")) o.classList.remove("sel");
  cell.classList.add("sel");
  const u = t.T[i], d = document.getElementById("detail"); d.replaceChildren();
  d.append(el("h3", "", `${t.id} · turn ${i}`));
  const facts = [["group", t.g], ["task", t.task], ["status", t.s + (t.why ? ` (${t.why})` : "")],
    ["reward", u.r], ["advantage", u.A === null || u.A === undefined ? "–" : Number(u.A).toPrecision(4)],
    ["state_key", u.K === null ? "–" : u.K], ["void", u.v], ["parse error", u.p || "–"]];
  const dl = el("dl"); for (const [k, v] of facts) dl.append(el("dt", "", k), el("dd", "", String(v)));
  d.append(dl, el("h4", "", "observation"), el("pre", "obs", u.o), el("h4", "", "action"), el("pre", "act", u.a));
}
document.getElementById("f-outcome").onchange = e => { sel.outcome = e.target.value; refilter(); };
document.getElementById("f-task").oninput = e => { sel.task = e.target.value; refilter(); };
document.getElementById("f-group").oninput = e => { sel.group = e.target.value; refilter(); };
document.getElementById("prev").onclick = () => { page = Math.max(0, page - 1); draw(); };
document.getElementById("next").onclick = () => { page += 1; draw(); };
refilter();
document.body.dataset.ready = "1";
</script></body></html>
"""
