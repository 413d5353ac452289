"""The `cellbox` command line (click): the per-project daemon's controls, and
commands that run blocks from a shell, script, git hook or agent through that
daemon. The two commands that turn this process into a server (`serve`,
`daemon run`) are added by cellbox.main, so that nothing here imports the
server, pygls or docker.

Exit codes: a run's is its first failing block's exit code (0 when all pass,
124 for a timeout, 130 after Ctrl-C); 1 when cellbox itself failed (engine,
image, configuration, daemon); 2 for a wrong command line.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import click

from cellbox import __version__, project
from cellbox.vocabulary import CANCELLED_EXIT_CODE, MIN_TIMEOUT_SECONDS, Command, Notification, document_run

# Only light modules: `cellbox exec` in a git hook pays for every import
# (tests/unit/test_house_rules.py checks what this package may import).

IDLE_TIMEOUT_HELP = "Seconds without clients or runs before the daemon stops itself (0: never)."


def idle_timeout_option(fn):
    return click.option(
        "--idle-timeout", type=click.FloatRange(min=0), default=project.DEFAULT_IDLE_TIMEOUT,
        envvar="CELLBOX_IDLE_TIMEOUT", show_default=True, show_envvar=True, help=IDLE_TIMEOUT_HELP,
    )(fn)


def _workspace_option(fn):
    return click.option(
        "--workspace", "-w", type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="The project folder (default: the nearest folder holding cellbox.toml, pyproject.toml or .git).",
    )(fn)


def _json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print the protocol's result as JSON, nothing else.")(fn)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cellbox", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run code blocks in one Docker sandbox per project.

    Editors start `cellbox serve` (LSP over stdio). From a shell: `cellbox run
    notes.md`, `cellbox exec -c 'print(1)'`. `cellbox daemon start` keeps one
    daemon per project that every client shares.
    """
    if ctx.invoked_subcommand is None:
        # Bare `cellbox` has always meant `cellbox serve` to editors (main.py adds it).
        serve = main.get_command(ctx, "serve")
        assert serve is not None, "cellbox.main adds `serve`"
        ctx.invoke(serve)


# ---------------------------------------------------------------- daemon


@main.group("daemon")
def daemon_group() -> None:
    """The project's background daemon, shared by editors and the CLI."""


def _project(workspace: Path | None, near: Path | None = None) -> Path:
    if workspace is not None:
        return workspace.resolve()
    return project.project_root(near or Path.cwd())


def _print_daemon(found, as_json: bool, prefix: str = "") -> None:
    if as_json:
        import attrs

        from cellbox.cli.console import json_text

        click.echo(json_text(attrs.asdict(found)))
    elif found.running:
        click.echo(f"{prefix}daemon for {found.workspace}: running, pid {found.pid}\n"
                   f"  socket {found.socket}\n  log    {found.log}")
    else:
        click.echo(f"{prefix}daemon for {found.workspace}: not running")


@daemon_group.command("start")
@click.argument("workspace", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@idle_timeout_option
@_json_option
def daemon_start(workspace: Path | None, idle_timeout: float, as_json: bool) -> None:
    """Start the daemon of WORKSPACE (default: this project), or show the running one."""
    from cellbox import daemon_control as daemon

    found, started = _daemon_call(daemon.start, _project(workspace), idle_timeout)
    _print_daemon(found, as_json, prefix="" if started else "already running: ")


@daemon_group.command("stop")
@click.argument("workspace", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def daemon_stop(workspace: Path | None) -> None:
    """Stop the daemon of WORKSPACE and the containers it started."""
    from cellbox import daemon_control as daemon

    folder = _project(workspace)
    pid = _daemon_call(daemon.stop, folder)
    click.echo(f"daemon for {folder}: " + (f"stopped (pid {pid})" if pid else "was not running"))


@daemon_group.command("status")
@click.argument("workspace", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@_json_option
def daemon_status(workspace: Path | None, as_json: bool) -> None:
    """Whether WORKSPACE's daemon runs, its pid, socket and log."""
    from cellbox import daemon_control as daemon

    _print_daemon(_daemon_call(daemon.status, _project(workspace)), as_json)


def _daemon_call(fn, *args):
    try:
        return fn(*args)
    except project.DaemonError as exc:
        raise click.ClickException(str(exc)) from None


# ------------------------------------------------------------ run / exec


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--block", "-b", type=click.IntRange(min=1), help="Run the Nth runnable block (from 1).")
@click.option("--line", "-l", type=click.IntRange(min=1), help="Run the block holding line L (from 1).")
@click.option("--all", "-a", "run_all", is_flag=True, help="Run every block in order (the default).")
@click.option("--timeout", "-t", type=click.FloatRange(min=MIN_TIMEOUT_SECONDS), help="Seconds each block may run.")
@click.option("--session", "-s", help="Run the blocks in this named session (a kernel per language that keeps state).")
@_workspace_option
@_json_option
def run(path: Path, block: int | None, line: int | None, run_all: bool, timeout: float | None,
        session: str | None, workspace: Path | None, as_json: bool) -> None:
    """Run blocks of a Markdown file or a `# %%` script, streaming their output.

    Exits with the first failing block's exit code, 0 when all pass."""
    if sum(x is not None and x is not False for x in (block, line, run_all or None)) > 1:
        raise click.UsageError("give one of --block, --line, --all")
    path = path.resolve()
    argument = document_run(path.as_uri(), block, line, timeout, session)
    sys.exit(_run_blocks(_project(workspace, path), argument, as_json))


@main.command("exec")
@click.argument("file", required=False, type=click.File("r"))
@click.option("--lang", "-L", "language", help="The language (python, bash, sh, ...); default: from FILE's name.")
@click.option("-c", "--code", help="The code to run, instead of FILE.")
@click.option("--timeout", "-t", type=click.FloatRange(min=MIN_TIMEOUT_SECONDS), help="Seconds the block may run.")
@click.option("--session", "-s", help="Run the blocks in this named session (a kernel per language that keeps state).")
@_workspace_option
@_json_option
def exec_command(file, language: str | None, code: str | None, timeout: float | None, session: str | None,
                 workspace: Path | None, as_json: bool) -> None:
    """Run one snippet: `-c CODE`, a FILE, or `-` for stdin, as one block."""
    from cellbox.languages import SCRIPT_LANGUAGES

    if (file is None) == (code is None):
        raise click.UsageError("give either -c CODE or a FILE (or - for stdin)")
    if code is None:
        code = file.read()
        if language is None and file.name != "<stdin>":
            language = SCRIPT_LANGUAGES.get(Path(file.name).suffix.lower())
    if language is None:
        raise click.UsageError("cannot tell the language: give --lang (python, bash, sh, ...)")
    argument: dict[str, Any] = {"blocks": [{"language": language, "code": code}]}
    if timeout is not None:
        argument["timeout"] = timeout
    if session is not None:
        argument["session"] = session
    folder = _project(workspace)
    argument["workspace"] = str(folder)
    sys.exit(_run_blocks(folder, argument, as_json))


def _run_blocks(folder: Path, argument: dict, as_json: bool) -> int:
    from cellbox.cli.console import RunDisplay, exit_code_of, json_text
    from cellbox.cli.rpc_client import Session

    display = RunDisplay()
    run_id = f"cli-{os.urandom(6).hex()}"
    argument["runId"] = run_id
    interrupts: list[int] = []
    shown: set[str] = set()

    def on_notification(method: str, params: Any) -> None:
        if method == "window/showMessage" and isinstance(params, dict):
            message = str(params.get("message"))
            shown.add(message.removeprefix("cellbox: "))
            display.note(message if message.startswith("cellbox") else f"cellbox: {message}")
        if method == "textDocument/publishDiagnostics" and isinstance(params, dict) and not as_json:
            _show_warnings(display, params, argument.get("uri"))
        if method == "$/progress" and isinstance(params, dict) and not as_json:
            display.progress(params)
        if as_json or not isinstance(params, dict) or params.get("runId") != run_id:
            return
        if method == Notification.BLOCK_STARTED:
            display.block_started(params)
        elif method == Notification.OUTPUT:
            display.output(params)

    def go() -> int:
        # Ctrl-C only sets a flag (the handler must not break a half-read
        # message); the wait below turns the first into a cancel in the
        # sandbox, and a second stops waiting for it.
        signal.signal(signal.SIGINT, lambda *_: interrupts.append(1))
        with Session(folder, on_notification, progress=display.live and not as_json) as session:
            cancel_sent = False

            def on_wait() -> None:
                nonlocal cancel_sent
                if interrupts and not cancel_sent:
                    cancel_sent = True
                    display.note("cancelling… (Ctrl-C again to stop waiting)")
                    session.send_command(Command.CANCEL, {"runId": run_id})
                elif len(interrupts) > 1:
                    sys.exit(CANCELLED_EXIT_CODE)
                display.tick()

            result = session.command(Command.EXECUTE, argument, on_wait)
        if as_json:
            click.echo(json_text(result))
        else:
            display.summary(result)
        return CANCELLED_EXIT_CODE if interrupts else exit_code_of(result)

    return _session_call(go, shown)


def _show_warnings(display, params: dict, uri: str | None) -> None:
    """The server's warnings about the document being run (a fence whose
    language looks mistyped), as `FILE:LINE: message` lines. Its errors are in
    the blocks' own output already."""
    if uri is None or params.get("uri") != uri:
        return
    path = project.uri_path(uri)
    try:
        name = str(path.relative_to(Path.cwd()))
    except ValueError:
        name = str(path)
    for diagnostic in params.get("diagnostics") or []:
        if diagnostic.get("severity") == WARNING_SEVERITY:
            display.note(f"⚠ {name}:{diagnostic['range']['start']['line'] + 1}: {diagnostic['message']}")


WARNING_SEVERITY = 2
"""LSP's DiagnosticSeverity.Warning."""


# ------------------------------------------------------- sandbox commands


@main.command()
@click.option("--session", "-s", help="Restart only this session's kernel (its state is lost), not the sandbox.")
@_workspace_option
@_json_option
def restart(session: str | None, workspace: Path | None, as_json: bool) -> None:
    """Restart the project's sandbox container (files stay; processes go)."""
    _sandbox_command(Command.RESTART, workspace, as_json, {"session": session} if session is not None else {})


@main.command()
@_workspace_option
@_json_option
def stop(workspace: Path | None, as_json: bool) -> None:
    """Stop the project's sandbox container."""
    _sandbox_command(Command.STOP, workspace, as_json)


@main.command()
@_workspace_option
@_json_option
def status(workspace: Path | None, as_json: bool) -> None:
    """The project's sandbox: its container and state."""
    _sandbox_command(Command.STATUS, workspace, as_json)


def _sandbox_command(name: Command, workspace: Path | None, as_json: bool, extra: dict | None = None) -> None:
    from cellbox.cli.console import json_text, status_lines
    from cellbox.cli.rpc_client import Session

    folder = _project(workspace)

    def go() -> int:
        with Session(folder, lambda *_: None) as session:
            argument = {} if name == Command.STATUS else {"workspace": str(folder), **(extra or {})}
            result = session.command(name, argument)
        if as_json:
            click.echo(json_text(result))
        elif name == Command.STATUS:
            click.echo("\n".join(status_lines(result)))
        else:
            click.echo(f"{result['workspace']}: {result['state']} ({result['container']})")
        return 0

    sys.exit(_session_call(go))


def _session_call(go: Callable[[], int], shown: AbstractSet[str] = frozenset()) -> int:
    """Run a session; a failure is one line on stderr and exit code 1.
    `shown`: messages the server already showed (window/showMessage), not to repeat."""
    from cellbox.cli.rpc_client import RpcError

    try:
        return go()
    except RpcError as exc:
        if exc.message not in shown:
            click.echo(f"cellbox: {exc.message}", err=True)
        return 1
    except (OSError, project.DaemonError) as exc:
        click.echo(f"cellbox: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return CANCELLED_EXIT_CODE


# ----------------------------------------------------------------- trust


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--revoke", is_flag=True, help="Forget the approval instead.")
def trust(path: Path | None, revoke: bool) -> None:
    """Allow the sandbox settings of PATH (a project folder, default: this project) as they are now.

    A workspace's cellbox.toml or [tool.cellbox] may tighten the sandbox
    freely; settings that loosen it (network, user, capabilities, limits
    raised, ...) apply only once you approve the file's exact content here.
    A later change to the file, by you or by code in the sandbox, needs a new
    approval.
    """
    from cellbox.errors import CellboxError
    from cellbox.settings import trust as approvals
    from cellbox.settings.sources import resolve_config, trust_workspace

    folder = path.parent if path is not None and path.is_file() else path
    workspace = _project(folder.resolve() if folder is not None else None)
    try:
        if revoke:
            files = resolve_config(workspace).files
            for file in files:
                approvals.revoke(file.path)
            click.echo(f"cellbox: approval withdrawn for {workspace}" if files else f"cellbox: {workspace} has no settings file")
            return
        files = trust_workspace(workspace)
    except CellboxError as exc:
        click.echo(f"cellbox: {exc}", err=True)
        sys.exit(1)
    if not files:
        click.echo(f"cellbox: {workspace} has no cellbox.toml or [tool.cellbox]: nothing to approve")
        return
    for file in files:
        loosening = ", ".join(file.loosening) or "nothing that loosens the sandbox"
        click.echo(f"cellbox: approved {file.path} (sha256 {file.digest[:12]}): {loosening}")
    click.echo("Any change to these files needs a new `cellbox trust`.")


# ------------------------------------------------------------ completion


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: `eval "$(cellbox completion bash)"`."""
    from click.shell_completion import get_completion_class

    completer_class = get_completion_class(shell)
    assert completer_class is not None, "click.Choice admits only the shells click knows"
    completer = completer_class(main, {}, "cellbox", "_CELLBOX_COMPLETE")
    click.echo(completer.source())
