"""``agentgym sandbox``: list, prune and build sandbox containers and images."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from .errors import SandboxUnavailable

app = typer.Typer(help="List and prune sandbox containers; build sandbox images offline.", no_args_is_help=True)
console = Console(soft_wrap=True)  # paths and ids stay whole, so they can be copied


def _client():  # noqa: ANN202 - the docker SDK is imported lazily
    from .engine import docker_client

    try:
        return docker_client(timeout=30)
    except SandboxUnavailable as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _age(seconds: float) -> str:
    seconds = max(seconds, 0)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


@app.command("ls")
def ls(
    label: str = typer.Option(None, "--label", help="Only containers with this extra label (key or key=value)."),
) -> None:
    """List agentgym sandbox containers: pool, owner, age, TTL, status and whether the reaper would remove it."""
    from .reaper import list_sandboxes

    boxes = list_sandboxes(_client(), label=label)
    table = Table("name", "status", "pool", "owner", "age", "ttl", "stale", "image")
    now = time.time()
    for box in boxes:
        table.add_row(box.name, box.status, box.pool or "-", box.owner, _age(now - box.created), _age(box.ttl),
                      box.stale_reason(now) or "", box.image)
    console.print(table)
    console.print(f"{len(boxes)} sandbox container(s)")


@app.command()
def prune(
    everything: bool = typer.Option(False, "--all", help="Remove every agentgym sandbox container, not just stale ones."),
    label: str = typer.Option(None, "--label", help="Only containers with this extra label (key or key=value)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
) -> None:
    """Remove stale sandbox containers: past their TTL, or whose owner process on this host is gone."""
    from .reaper import prune as prune_containers

    removed = prune_containers(_client(), everything=everything, label=label, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for box, reason in removed:
        console.print(f"{verb} {box.name} ({reason})")
    console.print(f"{verb} {len(removed)} container(s)")


@app.command()
def build(
    name: str = typer.Argument(..., help="Image recipe under sandboxes/images/ (e.g. python)."),
    tag: str = typer.Option(None, "--tag", help="Image tag (default agentgym/sandbox-NAME:VERSION)."),
    dockerfile: bool = typer.Option(False, "--dockerfile",
                                    help="Use `docker build` on the Dockerfile (needs a registry) instead of debootstrap."),
    mirror: str = typer.Option("http://deb.debian.org/debian", "--mirror", help="Debian mirror for debootstrap."),
    suite: str = typer.Option("bookworm", "--suite", help="Debian suite for debootstrap."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the tag already exists."),
) -> None:
    """Build a sandbox image. By default offline: debootstrap + docker import (root, about a minute)."""
    from .images import build_dockerfile, build_offline, image_present, image_tag, packages

    try:
        packages(name)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    tag = tag or image_tag(name)
    client = _client()
    if not force and image_present(client, tag):
        console.print(f"{tag} already present (use --force to rebuild)")
        return
    started = time.monotonic()
    try:
        if dockerfile:
            build_dockerfile(name, tag=tag, client=client)
        else:
            build_offline(name, tag=tag, mirror=mirror, suite=suite, log=console.print)
    except Exception as exc:
        console.print(f"[bold red]error:[/] build failed: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"built {tag} in {time.monotonic() - started:.0f} s")
