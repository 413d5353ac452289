"""The program `cellbox`: the command line of cli/, plus the two commands that
turn this process into a server (lsp/). The one module that joins the two;
each server import waits until its command runs, so `cellbox exec` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cellbox.cli.commands import daemon_group, idle_timeout_option, main


@main.command()
@click.option("--connect", is_flag=True,
              help="Bridge stdio to the project's daemon (started if needed) instead of serving here.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@idle_timeout_option
def serve(connect: bool, log_level: str, idle_timeout: float) -> None:
    """Speak LSP on stdin/stdout (what an editor starts)."""
    if connect:
        from cellbox.cli.bridge import run_bridge

        sys.exit(run_bridge(idle_timeout))
    from cellbox.lsp.stdio import serve_stdio

    serve_stdio(log_level.upper())


@daemon_group.command("run", hidden=True)
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path))
@idle_timeout_option
def daemon_run(workspace: Path, idle_timeout: float) -> None:
    """The daemon process itself; `daemon start` runs it in the background."""
    from cellbox.lsp import daemon

    daemon.run(workspace, idle_timeout)


__all__ = ["main"]
