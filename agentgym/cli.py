"""The ``agentgym`` command line (Typer)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

import agentgym
from agentgym import registry
from agentgym.errors import ConfigError, InfraError, RequestRejectedError, TooManyInfraFailures

app = typer.Typer(
    help="agentgym: multi-turn agentic RL environments, rollouts, credit assignment and training.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
envs_app = typer.Typer(help="List and inspect registered environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
console = Console(soft_wrap=True)  # paths and ids stay whole, so they can be copied


def _mount_subcommands() -> None:
    """Commands that live beside their subsystem; their modules import nothing heavy at mount time."""
    from agentgym.credit.cli import advantages
    from agentgym.envs.search.server import serve_retriever
    from agentgym.mcp_server import serve_mcp
    from agentgym.openenv_server import serve_openenv
    from agentgym.sandboxes.cli import app as sandbox_app
    from agentgym.trainers.cli import make_tiny_model, recipe_keys, train
    from agentgym.view import view

    app.add_typer(sandbox_app, name="sandbox")
    app.command("serve-retriever")(serve_retriever)
    app.command("serve-mcp")(serve_mcp)
    app.command("serve-openenv")(serve_openenv)
    app.command("advantages")(advantages)
    app.command("view")(view)
    app.command("train")(train)
    app.command("make-tiny-model")(make_tiny_model)
    app.command("recipe-keys")(recipe_keys)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentgym {agentgym.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    env_file: list[Path] = typer.Option(
        [], "--env-file", help="YAML file of extra env declarations to register (repeatable).",
        exists=True, dir_okay=False,
    ),
) -> None:
    """agentgym: multi-turn agentic RL environments, rollouts, credit assignment and training."""
    for path in env_file:
        try:
            registry.load_yaml(path)
        except (ValueError, TypeError, KeyError, yaml.YAMLError) as e:  # UnknownEnvError is a KeyError
            raise _fail(f"--env-file {path}: {e}") from None


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


def _error_exit(message: str) -> typer.Exit:
    """A run that finished but must not look fine (exit 1; 2 is for bad arguments)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """Parse ``key=value`` options; values are YAML scalars (``3`` is an int, ``true`` a bool)."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"{what} must look like key=value, got {pair!r}")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _served_env(env_id: str, env_kwarg: list[str]) -> tuple[Callable[[], Any], dict[str, Any]]:
    """For a ``serve-*`` command: a factory of fresh ``env_id`` envs (one per session) and the
    ``--env-kwarg`` overrides it applies; an unknown id or a malformed override is a usage error."""
    kwargs = _parse_pairs(env_kwarg, "--env-kwarg")
    try:
        env_spec = registry.spec(env_id)
    except registry.UnknownEnvError as e:
        raise _fail(str(e)) from None
    return (lambda: env_spec.make(**kwargs)), kwargs


def _loopback_socket(port: int, key: str, url: str) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port) for a ``serve-*`` command; prints
    ``{key: url}`` (``url`` formatted with the bound ``port``) on stderr, so a caller that asked for
    port 0 learns the address. Connections wait in the backlog until the server accepts them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise _fail(f"cannot listen on 127.0.0.1:{port}: {e}") from None
    sock.listen(128)
    print(json.dumps({key: url.format(port=sock.getsockname()[1])}), file=sys.stderr, flush=True)
    return sock


def _serve_asgi(app: Any, sock: socket.socket) -> None:
    """Serve an ASGI app on ``sock`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])


# -- envs ---------------------------------------------------------------------------------
@envs_app.command("list")
def envs_list(
    as_json: bool = typer.Option(False, "--json", help="Print the specs as a JSON array (every field)."),
) -> None:
    """List every registered env: built-ins, installed plugins and --env-file declarations."""
    specs = registry.all_specs()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in specs], indent=2))
    elif console.is_terminal and console.width >= _WIDE_TABLE:
        table = Table(Column("id", no_wrap=True), "max turns", "description", "entry point")
        for env_spec in specs:
            table.add_row(env_spec.id, str(env_spec.max_turns), env_spec.description, env_spec.entry_point)
        console.print(table)
    else:  # piped or narrow: one line per env, the description cut to the width (rich's 80 when piped)
        id_width = max([len("id"), *(len(s.id) for s in specs)])
        rows = [("id", "turns", "description"), *((s.id, str(s.max_turns or "-"), s.description) for s in specs)]
        room = max(console.width - id_width - 9, 20)
        for env_id, turns, description in rows:
            if len(description) > room:
                description = description[:room - 1].rstrip() + "…"
            typer.echo(f"{env_id:<{id_width}}  {turns:>5}  {description}".rstrip())


_WIDE_TABLE = 140  # below this the table wraps each description over many lines


@envs_app.command("show")
def envs_show(
    env_id: str = typer.Argument(..., help="Env id, e.g. agentgym/Bifurcation-v0."),
    seed: int = typer.Option(0, help="Seed of the example episode whose first observation is shown."),
) -> None:
    """Show an env's spec (as JSON), its system prompt and the first observation for a seed."""
    try:
        env_spec = registry.spec(env_id)
    except registry.UnknownEnvError as e:
        raise _fail(str(e)) from None
    console.print_json(env_spec.to_json())
    env = env_spec.make()
    try:
        obs, info = env.reset(seed=seed)
        if env.system_prompt:
            console.rule("system prompt")
            console.print(env.system_prompt, markup=False)
        console.rule(f"first observation (seed {seed})")
        console.print(obs, markup=False)
        console.rule("info")
        console.print(json.dumps(info, default=str, indent=2), markup=False)
    finally:
        env.close()


# -- redteam -----------------------------------------------------------------------------
@app.command("redteam")
def redteam(
    env_id: str = typer.Argument(..., help="Env id, e.g. agentgym/WebShop-v0 or your own registered id."),
    seeds: int = typer.Option(3, min=1, help="Episodes per attack (seeds 0 … N-1)."),
    env_kwarg: list[str] = typer.Option([], "--env-kwarg", help="Env kwarg override key=value (repeatable)."),
    attack: list[str] = typer.Option([], "--attack", help="Run only this attack (repeatable); default all."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per attack instead of a table."),
) -> None:
    """Play forged replies against an env: exit 1 if any earns reward > 0 or success, or crashes it.

    The generic attacks of agentgym.redteam (empty/huge/binary replies, claims of success, JSON
    and tool-call lookalikes, answer floods, hedging over legal actions, reasoning-tag tricks,
    loops, ...) each run for SEEDS episodes; the table gives, per attack, the highest reward any
    step or episode got and whether info["success"] was ever true."""
    from agentgym.redteam import GENERIC_ATTACKS, run_redteam

    try:
        env_spec = registry.spec(env_id)
    except registry.UnknownEnvError as e:
        raise _fail(str(e)) from None
    kwargs = _parse_pairs(env_kwarg, "--env-kwarg")
    unknown = sorted(set(attack) - {a.name for a in GENERIC_ATTACKS})
    if unknown:
        raise _fail(f"unknown attack(s) {unknown}; choose from {[a.name for a in GENERIC_ATTACKS]}")
    chosen = [a for a in GENERIC_ATTACKS if not attack or a.name in attack]
    try:
        env_spec.make(**kwargs).close()
    except Exception as e:  # noqa: BLE001 — any construction error is the user's to see, as one line
        raise _fail(f"env {env_id} could not be built with kwargs {kwargs}: {type(e).__name__}: {e}") from None

    def report(result: Any) -> None:
        if as_json:
            typer.echo(json.dumps(result.to_json()))

    results = run_redteam(lambda: env_spec.make(**kwargs), seeds=range(seeds), attacks=chosen, on_result=report)
    if not as_json:
        table = Table(Column("attack", no_wrap=True), "episodes", "max reward", "success", "verdict")
        for r in results:
            style = {"FORGED": "bold red", "CRASH": "bold red", "INFRA": "yellow"}.get(r.verdict, "")
            table.add_row(r.attack, str(r.episodes), f"{r.max_reward:g}", "yes" if r.success else "no",
                          f"[{style}]{r.verdict}[/]" if style else r.verdict)
        console.print(table)
        for r in results:
            for line in r.errors + r.infra:
                console.print(f"{r.attack}: {line}", markup=False)
    failed = [r.attack for r in results if r.verdict in ("FORGED", "CRASH")]
    if not as_json:
        console.print(f"{env_id}: " + (f"[bold red]{len(failed)} attack(s) not held:[/] {', '.join(failed)}" if failed
                                       else f"every attack held ({len(results)} attacks x {seeds} seeds)"))
    if failed:
        raise typer.Exit(1)


# -- check --------------------------------------------------------------------------------
@app.command("check")
def check(
    env_id: str = typer.Argument(..., help="Env id, e.g. agentgym/Sokoban-v0 or your own (--env-file) id."),
    seeds: int = typer.Option(3, min=1, help="Seeds (0 … N-1) played by the determinism, info and red-team checks."),
    pool_window: int = typer.Option(
        1000, min=1, help="Most consecutive seeds reset by the task-pool check (a bigger pool is checked for "
        "repeats over this window only)."),
    env_kwarg: list[str] = typer.Option([], "--env-kwarg", help="Env kwarg override key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the report."),
) -> None:
    """Check an env for authors: exit 0 when every check passes, 1 on any FAIL, 2 on bad input.

    Gymnasium's env checker, reset determinism per seed (and replay of the same actions),
    info['state_key'] / ['task_id'] / ['success'], malformed actions never raising, finite task-pool
    coverage by consecutive seeds, the generic red-team attacks of `agentgym redteam`, and reset /
    step latency (reported, not judged)."""
    from agentgym.envcheck import run_checks

    try:
        env_spec = registry.spec(env_id)
    except registry.UnknownEnvError as e:
        raise _fail(str(e)) from None
    overrides = _parse_pairs(env_kwarg, "--env-kwarg")
    try:
        registry.check_env_config(env_spec, overrides).close()
    except ConfigError as e:
        raise _fail(str(e)) from None
    except InfraError as e:  # the config may be fine; the checks say what the infrastructure breaks
        console.print(f"[yellow]warning:[/] the env's first reset failed on infrastructure: {e}")
    styles = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "INFO": "cyan"}

    def report(r: Any) -> None:
        if not as_json:
            console.print(f"[{styles[r.status]}]{r.status:<4}[/] {r.name:<18} ", end="")
            console.print(r.reason, markup=False)

    if not as_json:
        console.print(f"[bold]{env_id}[/] kwargs {json.dumps({**env_spec.kwargs, **overrides}, default=str)}")
    results = run_checks(env_spec, overrides, seeds=seeds, pool_window=pool_window, on_result=report)
    failed = [r.name for r in results if r.status == "FAIL"]
    if as_json:
        typer.echo(json.dumps({"env": env_id, "kwargs": {**env_spec.kwargs, **overrides}, "passed": not failed,
                               "checks": [r.to_json() for r in results]}, default=str))
    else:
        warned = sum(r.status == "WARN" for r in results)
        console.print(f"{env_id}: " + (f"[bold red]{len(failed)} check(s) failed:[/] {', '.join(failed)}" if failed
                                       else f"every check passed ({warned} warning(s))"))
    if failed:
        raise typer.Exit(1)


# -- rollout ------------------------------------------------------------------------------
class PolicyName(str, Enum):
    random = "random"
    scripted = "scripted"
    openai = "openai"
    transformers = "transformers"


# Run settings stored in run.json; on --resume any that is given again must match.
_RUN_SETTINGS = ("env", "policy", "tasks", "group_size", "seed", "max_turns", "max_tokens", "env_kwargs",
                 "policy_kwargs", "base_url", "model")


INFRA_FAILURES = "infra_failures.jsonl"


@app.command()
def rollout(
    env: str = typer.Option(None, "--env", help="Env id to roll out, e.g. agentgym/Bifurcation-v0."),
    policy: PolicyName = typer.Option(
        None, help="Who acts: 'random' (legal actions), 'scripted' (the env's expert), 'openai' "
        "(any OpenAI-compatible server, e.g. `vllm serve`; needs --base-url and --model) or 'transformers' "
        "(a local model or training checkpoint, --model PATH; options such as temperature=0.7 or device=cpu "
        "via --policy-kwarg).",
    ),
    base_url: str = typer.Option(None, help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1."),
    model: str = typer.Option(None, help="Model name to request from the server, or the local model / "
                              "checkpoint directory of --policy transformers."),
    api_key: str = typer.Option(None, envvar="OPENAI_API_KEY", help="API key for the server (not stored)."),
    tasks: int = typer.Option(None, help=r"Number of tasks (distinct seeds). \[default: 8]", min=1),
    all_tasks: bool = typer.Option(
        False, "--all-tasks", help="Play every task of the env's finite pool exactly once (--tasks is the "
        "pool's size, read from the env; seeds --seed … --seed+size-1 cover the pool without repeats); "
        "--group-size still applies.",
    ),
    group_size: int = typer.Option(None, help=r"Rollouts per task sharing its seed (G). \[default: 1]", min=1),
    concurrency: int = typer.Option(
        None, help=r"Episodes in flight at once. \[default: 8; on --resume, the run's]", min=1,
    ),
    out: Path = typer.Option(..., help="Run directory: run.json and trajectories.jsonl are written here."),
    resume: bool = typer.Option(False, help="Continue the run in --out: run exactly the missing episodes."),
    retry_infra: bool = typer.Option(
        False, "--retry-infra", help="With --resume: run infra-failed episodes again (their old records "
        f"move to {INFRA_FAILURES}).",
    ),
    seed: int = typer.Option(
        None, help="Seed of task 0 (task i uses seed+i), and of the policy's sampling unless --policy-kwarg "
        r"seed=N: the same seed gives the same run at any --concurrency. \[default: 0]",
    ),
    max_turns: int = typer.Option(None, help="Override the env's turn limit (truncates, marked).", min=1),
    max_tokens: int = typer.Option(
        None, help="Completion-token budget per episode (truncates, marked; ~4 chars/token when the "
        "policy reports no token counts).", min=1,
    ),
    step_timeout: float = typer.Option(None, help="Seconds before an env reset/step counts as an infra failure."),
    env_kwarg: list[str] = typer.Option([], "--env-kwarg", help="Env kwarg override key=value (repeatable)."),
    policy_kwarg: list[str] = typer.Option(
        [], "--policy-kwarg", help="Policy option key=value, e.g. epsilon=0.2 or temperature=0.7 (repeatable).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    stop_after_infra: int = typer.Option(
        10, "--stop-after-infra", min=0, help="Stop the run once this many episodes in a row have failed on "
        "infrastructure (server or sandbox down), instead of failing the rest the same way; 0: never stop.",
    ),
    ray_workers: int = typer.Option(
        0, "--ray-workers", min=0, help="Run the episodes in this many Ray actors (ray extra), each with "
        "--concurrency episodes in flight; trajectories stream back to this process's store. 0: no Ray.",
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Ray cluster to join ('auto', 'ray://HOST:10001') [default: a local one].",
    ),
    state_groups: int = typer.Option(
        None, "--state-groups", min=1, help="VPR's state-group rollout: at every state sample K candidate "
        "actions, score each with the env's oracle (verify_action), play the best; one record per candidate "
        "(docs/credit.md#vpr). Such a run cannot be resumed.",
    ),
) -> None:
    """Roll out a policy on an env in groups, writing trajectories as JSONL (kill-safe, resumable)."""
    from agentgym.policies import OpenAIChatPolicy, make_policy
    from agentgym.rollout import plan, summarize
    from agentgym.rollout import rollout as run_rollouts
    from agentgym.store import TrajectoryStore

    given = {
        "env": env, "policy": policy.value if policy else None, "tasks": tasks, "group_size": group_size,
        "seed": seed, "max_turns": max_turns, "max_tokens": max_tokens,
        "env_kwargs": _parse_pairs(env_kwarg, "--env-kwarg") or None,
        "policy_kwargs": _parse_pairs(policy_kwarg, "--policy-kwarg") or None,
        "base_url": base_url, "model": model,
    }
    store = TrajectoryStore(out)
    manifest = store.read_manifest()
    if resume:
        if manifest is None:
            raise _fail(f"--resume: {out} holds no run (no run.json)")
        clashes = [f"--{k.replace('_', '-')} {given[k]!r} (run has {manifest[k]!r})"
                   for k in _RUN_SETTINGS if given[k] is not None and given[k] != manifest[k]]
        if clashes:
            raise _fail("--resume with settings that differ from the run: " + "; ".join(clashes))
    else:
        if manifest is not None or store.path.exists():
            raise _fail(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        if env is None or policy is None:
            raise _fail("--env and --policy are required for a new run")
        defaults = {"tasks": 8, "group_size": 1, "seed": 0, "env_kwargs": {}, "policy_kwargs": {}}
        manifest = {k: given[k] if given[k] is not None else defaults.get(k) for k in _RUN_SETTINGS}
        manifest.update(run_id=uuid.uuid4().hex[:8], created_at=time.time(), agentgym_version=agentgym.__version__)
    if state_groups and (resume or ray_workers):
        raise _fail("--state-groups runs whole episodes in this process: it cannot be resumed, nor run on Ray")
    if resume and manifest.get("state_groups"):
        raise _fail(f"{out} holds a state-group run, which cannot be resumed: start a new one")
    if state_groups:
        manifest["state_groups"] = state_groups
    if retry_infra and not resume:
        raise _fail("--retry-infra needs --resume")
    if all_tasks and resume:
        raise _fail("--all-tasks starts a run; --resume continues the run's own tasks")
    if all_tasks and tasks is not None:
        raise _fail("--all-tasks reads the number of tasks from the env: leave out --tasks")
    if resume and "env_spec" in manifest:  # the run's own spec: an --env-file need not be given again
        env_spec = registry.EnvSpec(**manifest["env_spec"])
    else:
        try:
            env_spec = registry.spec(manifest["env"])
        except registry.UnknownEnvError as e:
            raise _fail(str(e)) from None
    manifest["env_spec"] = dataclasses.asdict(env_spec)
    if concurrency is None:
        concurrency = manifest.get("concurrency") or 8
    manifest["concurrency"] = concurrency
    policy_kwargs = dict(manifest["policy_kwargs"])
    if manifest["policy"] != "transformers":  # per-episode sampling seeds (transformers: see below)
        policy_kwargs.setdefault("seed", manifest["seed"])
    if manifest["policy"] == "openai":
        if not manifest["base_url"] or not manifest["model"]:
            raise _fail("--policy openai needs --base-url and --model")
        policy_kwargs.update(base_url=manifest["base_url"], model=manifest["model"], api_key=api_key)
    if manifest["policy"] == "transformers":
        if not manifest["model"]:
            raise _fail("--policy transformers needs --model PATH (a model or checkpoint directory)")
        policy_kwargs["path"] = manifest["model"]
    try:
        agent = make_policy(manifest["policy"], **policy_kwargs)
    except (TypeError, ValueError, OSError) as e:
        raise _fail(f"policy {manifest['policy']!r}: {e}") from None
    pool = _check_env(env_spec, manifest, oracle=bool(state_groups))
    if all_tasks:
        if pool is None:
            raise _fail(f"--all-tasks needs an env with a finite task pool; {env_spec.id} makes a new task for "
                        "every seed (num_tasks is None): use --tasks N")
        manifest["tasks"] = pool
    if isinstance(agent, OpenAIChatPolicy):
        try:
            agent.check_server()
        except (InfraError, RequestRejectedError) as e:
            raise _fail(f"--policy openai: {e}") from None
    # A local model samples a batch at a time: seeded, and with envs stepped on the event loop
    # (no thread timing decides which requests share a batch), its run repeats exactly.
    deterministic_batches = manifest["policy"] == "transformers"
    if deterministic_batches:
        import torch

        torch.manual_seed(manifest["seed"])
    if retry_infra:
        retried = store.remove(lambda d: d.get("failure") == "infra", moved_to=out / INFRA_FAILURES)
        console.print(f"--retry-infra: {retried} infra-failed episodes to run again (old records in {INFRA_FAILURES})")
    store.write_manifest(manifest)

    items = plan(manifest["run_id"], tasks=manifest["tasks"], group_size=manifest["group_size"], seed=manifest["seed"])
    done = store.completed_ids()
    todo = [item for item in items if item.traj_id not in done]
    console.print(
        f"[bold]{env_spec.id}[/] × [bold]{agent.name}[/]: {manifest['tasks']} tasks × G={manifest['group_size']}"
        f" → {out}  ({len(items) - len(todo)} done, {len(todo)} to run, concurrency {concurrency})"
    )
    started = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("success {task.fields[success]:.0%}"), TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(), console=console, disable=quiet, transient=False,
    ) as progress:
        bar = progress.add_task("rollout", total=len(todo), success=0.0, failed=0)
        counts = {"n": 0, "ok": 0, "failed": 0}

        def on_done(traj: agentgym.Trajectory) -> None:
            counts["n"] += 1
            counts["ok"] += traj.success
            counts["failed"] += traj.failure is not None
            progress.update(bar, advance=1, success=counts["ok"] / counts["n"], failed=counts["failed"])

        async def go() -> None:
            options = {"concurrency": concurrency, "store": store, "max_turns": manifest["max_turns"],
                       "max_tokens": manifest["max_tokens"], "step_timeout": step_timeout,
                       "env_kwargs": manifest["env_kwargs"], "on_done": on_done,
                       "stop_after_infra": stop_after_infra or None}
            if state_groups:
                options["state_groups"] = state_groups
            try:
                if ray_workers:
                    from agentgym.ray_rollout import rollout_on_ray

                    await rollout_on_ray(env_spec, manifest["policy"], todo, policy_kwargs=policy_kwargs,
                                         workers=ray_workers, address=ray_address, **options)
                else:
                    await run_rollouts(env_spec, agent, todo, threads=not deterministic_batches, **options)
            finally:
                await agent.aclose()

        stopped: TooManyInfraFailures | None = None
        try:
            asyncio.run(go())
        except TooManyInfraFailures as e:
            stopped = e
        except BaseException:
            if not resume and not store.completed_ids():  # nothing ran: leave no run behind
                store.manifest_path.unlink(missing_ok=True)
            raise
        finally:
            store.close()
    summary = summarize(store.read(), time.perf_counter() - started)
    _print_summary(summary, summary.trajectories if state_groups else len(items))
    if state_groups:
        console.print(f"{len(items)} episodes in state groups of {state_groups}; one record per candidate")
    if summary.failures.get("error"):
        raise _error_exit(f"{summary.failures['error']} episode(s) ended with failure='error': a bug in the env's "
                          f"or its user's code (e.g. the verifier raised); see failure_detail in {store.path}")
    if stopped is not None:
        console.print(f"[bold red]stopped:[/] {stopped}\nFix the cause, then continue with "
                      f"`agentgym rollout --out {out} --resume --retry-infra`.", markup=True)
        raise typer.Exit(1)


def _check_env(env_spec: registry.EnvSpec, manifest: dict[str, Any], oracle: bool = False) -> int | None:
    """Build the env and reset it to the first task once, so a bad kwarg (or a policy the env
    cannot serve, or ``oracle``: no ``verify_action`` for state groups) is an error before anything
    is written, not an infra failure on every episode; return its task pool's size (None: a new
    task for every seed)."""
    overrides = dict(manifest["env_kwargs"])
    if manifest["max_turns"] is not None:
        overrides["max_turns"] = manifest["max_turns"]
    try:
        env = registry.check_env_config(env_spec, overrides, seed=manifest["seed"])
    except ConfigError as e:
        raise _fail(str(e)) from None
    except InfraError as e:  # the config is fine; the infrastructure is down (the run's breaker decides)
        console.print(f"[yellow]warning:[/] the env's first reset failed on infrastructure: {e}")
        env = env_spec.make(**overrides)
    try:
        if manifest["policy"] == "scripted" and not callable(getattr(env.unwrapped, "expert_action", None)):
            raise _fail(f"--policy scripted needs an env with expert_action(); {env_spec.id} "
                        f"({type(env.unwrapped).__name__}) has none: use --policy random or a model")
        if oracle:
            from agentgym.state_group import check_verifier

            try:
                check_verifier(env.unwrapped, env_spec.id)
            except ConfigError as e:
                raise _fail(f"--state-groups: {e}") from None
        return getattr(env.unwrapped, "num_tasks", None)
    finally:
        env.close()


def _print_summary(summary: Any, planned: int) -> None:
    table = Table(title="rollout summary", show_header=False)
    table.add_row("trajectories", f"{summary.trajectories} / {planned}")
    table.add_row("success rate", f"{summary.success_rate:.1%}")
    table.add_row("mean outcome", f"{summary.mean_outcome:.3f}")
    table.add_row("mean turns", f"{summary.mean_turns:.2f}")
    table.add_row("truncated", str(summary.truncated))
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failures.items())) or "none"
    table.add_row("failures by kind", failures)
    table.add_row("this session", f"{summary.seconds:.1f} s")
    console.print(table)


def main() -> None:
    app()


_mount_subcommands()


if __name__ == "__main__":
    main()
