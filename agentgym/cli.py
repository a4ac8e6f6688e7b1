"""The ``agentgym`` command line (Typer)."""

from __future__ import annotations

import typer

import agentgym

app = typer.Typer(
    help="agentgym: multi-turn agentic RL environments, rollouts, credit assignment and training.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentgym {agentgym.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """agentgym: multi-turn agentic RL environments, rollouts, credit assignment and training."""


def main() -> None:
    app()
