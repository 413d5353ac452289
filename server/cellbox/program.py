"""The program `cellbox`: the command line of cli/, plus the two commands that
turn this process into a server (lsp/). The one module that joins the two
(with main.py, the entry point, which starts `serve` without click); each
server import waits until its command runs, so `cellbox exec` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cellbox.cli.commands import daemon_group, idle_timeout_option, main
from cellbox.main import LOG_LEVELS


@main.command()
@click.option("--connect", is_flag=True,
              help="Bridge stdio to the project's daemon (started if needed) instead of serving here.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(LOG_LEVELS, case_sensitive=False))
@click.option("--eager", is_flag=True,
              help="Start the workspace's sandbox as soon as initialize names it, not at the first run "
                   "(what an editor wants: its first result comes sooner).")
@idle_timeout_option
def serve(connect: bool, log_level: str, eager: bool, idle_timeout: float) -> None:
    """Speak LSP on stdin/stdout (what an editor starts)."""
    if connect:
        from cellbox.cli.bridge import run_bridge

        sys.exit(run_bridge(idle_timeout))
    from cellbox.lsp.stdio import serve_stdio

    serve_stdio(log_level.upper(), eager=eager)


@daemon_group.command("run", hidden=True)
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path))
@idle_timeout_option
def daemon_run(workspace: Path, idle_timeout: float) -> None:
    """The daemon process itself; `daemon start` runs it in the background."""
    from cellbox.lsp import daemon

    daemon.run(workspace, idle_timeout)


@main.command("mcp")
@click.argument("workspace", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def mcp_command(workspace: Path | None) -> None:
    """Speak the Model Context Protocol on stdin/stdout (what an agent host starts), for WORKSPACE
    (default: the project around the current folder). Needs `pip install 'cellbox[mcp]'`."""
    try:
        from cellbox.mcp.server import run as run_mcp
    except ImportError as exc:
        click.echo(f"cellbox mcp needs the MCP SDK: pip install 'cellbox[mcp]' ({exc})", err=True)
        sys.exit(1)
    from cellbox import project

    run_mcp(workspace.resolve() if workspace else project.project_root(Path.cwd()))


@main.group("env")
def env_group() -> None:
    """Declared environments ([environment] in cellbox.toml): build, list, prune their images."""


@env_group.command("build")
@click.argument("workspace", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def env_build(workspace: Path | None) -> None:
    """Build the workspace's environment image now (for CI), or say it is cached."""
    import asyncio

    sys.exit(asyncio.run(_env_build((workspace or Path.cwd()).resolve())))


@env_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def env_status(as_json: bool) -> None:
    """List the environment images on the engine, with their sizes and who uses them."""
    import asyncio
    import json

    import attrs

    from cellbox.sandbox import environment, state

    found = asyncio.run(_with_engine(lambda engine: environment.cached(engine, state.workspaces_root())))
    if as_json:
        click.echo(json.dumps([attrs.asdict(e) for e in found], indent=2))
        return
    if not found:
        click.echo("no environment images")
    for e in found:
        use = "in use" if e.current or e.in_container else "unused"
        click.echo(f"{e.tag}  {e.size / (1 << 20):.0f} MiB with its base  {use}  {e.created[:19]}  {e.workspace}")


@env_group.command("prune")
def env_prune() -> None:
    """Remove the environment images no workspace uses (only cellbox's own images)."""
    import asyncio

    from cellbox.sandbox import environment, state

    removed = asyncio.run(_with_engine(lambda engine: environment.prune(engine, state.workspaces_root())))
    for e in removed:
        click.echo(f"removed {e.tag}  {e.size / (1 << 20):.0f} MiB  ({e.workspace})")
    freed = sum(e.size for e in removed)
    click.echo(f"{len(removed)} environment image(s) removed, {freed / (1 << 20):.0f} MiB", err=True)


async def _with_engine(work):
    from cellbox.engine.docker import DockerBackend

    engine = DockerBackend()
    try:
        return await work(engine)
    finally:
        engine.close()


async def _env_build(workspace: Path) -> int:
    """`cellbox env build`: the progress on stderr (a bar on a terminal), the image on stdout."""
    import contextlib

    from cellbox.errors import CellboxError
    from cellbox.sandbox import environment, state
    from cellbox.settings.sources import resolve_config

    resolved = resolve_config(workspace, {}, None)
    config = resolved.config
    if config.environment is None:
        unapproved = [i for i in resolved.ignored if i.startswith("environment")]
        if unapproved:
            click.echo(resolved.ignored_message(workspace), err=True)
        else:
            click.echo(f"cellbox: {workspace} declares no [environment]", err=True)
        return 1
    built = []
    terminal = sys.stderr.isatty()

    @contextlib.asynccontextmanager
    async def progress(title: str):
        built.append(title)
        click.echo(title, err=True)

        def report(message: str) -> None:
            if terminal:
                click.echo(f"\r\x1b[2K{message[:100]}", err=True, nl=False)
            else:
                click.echo(message, err=True)

        try:
            yield report
        finally:
            if terminal:
                click.echo("", err=True)

    async def pull_base() -> None:
        if not resolved.image_trusted:
            raise CellboxError(f"the base image {config.image!r} is not on the engine: pull or build it first")
        await engine.pull_image(config.image)

    from cellbox.engine.docker import DockerBackend

    engine = DockerBackend()
    workspace_state = state.WorkspaceState.of(workspace)
    try:
        tag = await environment.Environments(engine).image_for(
            workspace, config.environment, config.image, progress, pull_base, workspace_state.environment_log
        )
    except CellboxError as exc:
        click.echo(f"cellbox: {exc}", err=True)
        return 1
    finally:
        engine.close()
    environment.record(workspace_state.root, workspace, tag)
    click.echo(f"{'built' if built else 'cached'} {tag}")
    return 0


__all__ = ["main"]
