"""The LSP features and `cellbox.*` commands: each handler unpacks its
arguments, calls the domain (documents/, the client's view of the sandboxes) and converts
the result. Every CellboxError becomes a JSON-RPC error here, in one place,
and the daemon keeps serving after it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from cellbox.documents.finder import DocumentBlock, document_kind, find_blocks
from cellbox.documents.selection import check_selector, document_name, select_blocks
from cellbox.errors import CellboxError, ConfigError, EngineUnavailable, ImageUnavailable, InvalidParams
from cellbox.lsp.client_side import StreamingListener
from cellbox.lsp.opening import client_settings
from cellbox.lsp.server import CellboxServer
from cellbox.project import uri_path
from cellbox.sandbox.pool import SandboxPool
from cellbox.sandbox.request import BlockToRun
from cellbox.settings.sources import trust_workspace
from cellbox.vocabulary import MIN_TIMEOUT_SECONDS, Command
from cellbox.wire import (
    CancelParams,
    CancelResult,
    ExecuteParams,
    Position,
    Range,
    StatusParams,
    StatusResult,
    TrustResult,
    WorkspaceParams,
    parse,
    to_json,
)

log = logging.getLogger(__name__)

EXECUTE, RESTART, STOP, STATUS, CANCEL, TRUST = (
    Command.EXECUTE, Command.RESTART, Command.STOP, Command.STATUS, Command.CANCEL, Command.TRUST
)


def command_handler(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn CellboxErrors into JSON-RPC errors with their code and message."""

    @functools.wraps(fn)
    async def handler(ls: CellboxServer, *args: Any) -> Any:
        try:
            return to_json(await fn(ls, *args))
        except CellboxError as exc:
            log.info("%s failed: %s", fn.__name__, exc)
            message = exc.message
            if isinstance(exc, EngineUnavailable) and not ls.owns_pool:
                message += _shared_daemon_note()
            if isinstance(exc, (EngineUnavailable, ImageUnavailable, ConfigError)):
                # Not the caller's fault and not visible in a reply an editor may
                # only log: tell the person too.
                ls.show_error(f"cellbox: {message}")
            raise JsonRpcException(code=exc.code, message=message) from None

    return handler


def build_server(
    pool: SandboxPool | None = None, hang_up: Callable[[], None] | None = None, owns_pool: bool | None = None
) -> CellboxServer:
    """A server for one client: of a daemon's shared `pool`, else with its own
    sandboxes (`owns_pool`: the pool given is this server's alone, and it
    stops them at shutdown)."""
    if pool is None:
        from cellbox.engine.docker import DockerBackend

        server = CellboxServer(SandboxPool(DockerBackend()), owns_pool=True, hang_up=hang_up)
    else:
        server = CellboxServer(pool, owns_pool=bool(owns_pool), hang_up=hang_up)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CellboxServer, params: types.InitializeParams) -> None:
        folders = [f.uri for f in params.workspace_folders or []]
        found = client_settings(folders, params.root_uri or params.root_path, params.initialization_options)
        ls.sandboxes.default_workspaces.extend(found.workspaces)
        ls.sandboxes.workspace_settings = found.workspace_settings
        ls.sandboxes.overrides.update(found.overrides)
        if found.error is not None:
            # Carry on with the workspace's own settings rather than refuse to start.
            ls.show_error(f"cellbox: {found.error}; using the workspace's settings instead")

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CellboxServer, *_: Any) -> None:
        await ls.shutdown_sandboxes()

    @server.command(EXECUTE)
    @command_handler
    async def execute(ls: CellboxServer, *args: Any) -> Any:
        params = parse(_one_argument(EXECUTE, args), ExecuteParams, EXECUTE)
        if params.timeout is not None and not params.timeout >= MIN_TIMEOUT_SECONDS:  # also refuses NaN
            raise InvalidParams(
                f"Invalid {EXECUTE} arguments: timeout: must be at least {MIN_TIMEOUT_SECONDS} second (got {params.timeout:g})"
            )
        run_id = params.run_id or uuid.uuid4().hex
        check_selector(params)
        if params.uri is not None and params.workspace is None:
            try:
                sandbox = ls.sandboxes.sandbox_for_file(uri_path(params.uri))
            except (OSError, ValueError, RuntimeError):
                raise InvalidParams(f"uri: {params.uri!r} is not a path that can be read") from None
        else:
            sandbox = ls.sandboxes.sandbox(params.workspace)
        # Its place among the workspace's runs is taken now, before reading the
        # document: requests run in the order they arrived.
        place = sandbox.take_place()
        try:
            chosen: list[DocumentBlock] = []
            if params.uri is not None:
                document = await ls.document(params.uri)
                name = document_name(document.uri, sandbox.workspace)
                chosen = select_blocks(params, document.uri, document.source, document.language_id, name)
                path = uri_path(document.uri)
                to_run = [
                    BlockToRun(b.language, b.code, _block_range(b), _block_extent(b), b.number, path) for b in chosen
                ]
            else:
                to_run = [BlockToRun(b.language, b.code) for b in params.blocks or []]
            listener = StreamingListener(ls, run_id, to_run)
            with ls.sandboxes.cancellable(params.run_id) as cancelled:
                ls.cancel_with_request(cancelled)
                async with ls.run_progress(listener, cancelled):
                    result = await sandbox.execute(
                        to_run, params.timeout, ls.step_progress, cancelled, listener, run_id, gate=ls.gate, place=place,
                        session=params.session,
                    )
        finally:
            place.leave()
        if params.uri is not None:
            ls.hints_changed(document.uri, document)  # a document run from disk: `cellbox run` shows them
            ls.after_document_run(document.uri, chosen, result, listener, sandbox.workspace)
        return result

    @server.command(CANCEL)
    @command_handler
    async def cancel(ls: CellboxServer, *args: Any) -> Any:
        params = parse(_one_argument(CANCEL, args), CancelParams, CANCEL)
        return CancelResult(params.run_id, ls.sandboxes.cancel(params.run_id))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CellboxServer, params: types.DidOpenTextDocumentParams) -> None:
        if ls.hints_changed(params.text_document.uri):
            ls.publish_errors(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CellboxServer, params: types.DidChangeTextDocumentParams) -> None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        blocks = find_blocks(document.uri, document.source, document.language_id)
        moved = ls.results.reanchor(document.uri, blocks)
        if ls.hints_changed(document.uri) or moved:
            ls.publish_errors(document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CellboxServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.results.forget(params.text_document.uri)
        ls.hints_changed(params.text_document.uri)
        ls.publish_errors(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: CellboxServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        document = ls.workspace.get_text_document(params.text_document.uri)
        blocks = find_blocks(document.uri, document.source, document.language_id)
        lenses = []
        if document_kind(document.uri, document.language_id) == "markdown" and len(blocks) > 1:
            lenses.append(_lens(0, "▶ Run all", {"uri": document.uri, "all": True}))
        policies = await ls.execution_policies(document.uri) if blocks else {}
        for block in blocks:
            argument = {"uri": document.uri, "position": {"line": block.start_line, "character": 0}}
            # The Run lens spans the whole block (its end exclusive), so that a
            # client knows where each block is without finding blocks itself.
            lenses.append(_lens(block.header_line, "▶ Run", argument, end_line=block.extent_end_line))
            if not policies.get(block.language, False):
                # The Run lens only saves such a block: say so where it is clicked.
                lenses.append(_lens(block.header_line, f"{block.language}: saved only, not run (execution_policies)", argument))
            label = ls.results.outcome(document.uri, block)
            if label is not None:
                lenses.append(_lens(block.header_line, label, argument))
        return lenses

    @server.command(RESTART)
    @command_handler
    async def restart(ls: CellboxServer, *args: Any) -> Any:
        params = parse(_one_argument(RESTART, args), WorkspaceParams, RESTART)
        return await ls.sandboxes.sandbox(params.workspace).restart(ls.step_progress, gate=ls.gate, session=params.session)

    @server.command(STOP)
    @command_handler
    async def stop(ls: CellboxServer, *args: Any) -> Any:
        params = parse(_one_argument(STOP, args), WorkspaceParams, STOP)
        return await ls.sandboxes.sandbox(params.workspace).stop(gate=ls.gate)

    @server.command(TRUST)
    @command_handler
    async def trust(ls: CellboxServer, *args: Any) -> Any:
        """Approve the workspace's settings files as they are now (an editor's command)."""
        params = parse(_one_argument(TRUST, args), WorkspaceParams, TRUST)
        workspace = ls.sandboxes.resolve(params.workspace)
        files = await asyncio.to_thread(trust_workspace, workspace)
        return TrustResult(
            str(workspace), [str(f.path) for f in files], [line for f in files for line in f.loosening]
        )

    @server.command(STATUS)
    @command_handler
    async def status(ls: CellboxServer, *args: Any) -> Any:
        # `{}` is the documented argument; no argument at all is accepted too.
        if args:
            parse(_one_argument(STATUS, args), StatusParams, STATUS)
        return StatusResult(await ls.sandboxes.status())

    return server


def _shared_daemon_note() -> str:
    """For an engine that cannot be reached from the project's daemon: the
    daemon looks where the environment it was started with says, not where the
    shell asking it now would (a DOCKER_HOST set or unset since)."""
    held = [f"{name}={os.environ[name]}" for name in ("DOCKER_HOST", "DOCKER_CONTEXT") if os.environ.get(name)]
    started_with = " and ".join(held) if held else "no DOCKER_HOST or DOCKER_CONTEXT"
    return (
        f" This is the project's daemon (pid {os.getpid()}), shared by the editor and `cellbox run`: it was started "
        f"with {started_with} and keeps that setting, whatever your shell has now. To start it again with your "
        "shell's settings: `cellbox daemon stop`, then run again."
    )


def _block_range(block: DocumentBlock) -> Range:
    return Range(Position(block.start_line, 0), Position(block.end_line, 0))


def _block_extent(block: DocumentBlock) -> Range:
    return Range(Position(block.header_line, 0), Position(block.extent_end_line, 0))


def _lens(line: int, title: str, argument: dict[str, Any], end_line: int | None = None) -> types.CodeLens:
    return types.CodeLens(
        range=types.Range(types.Position(line, 0), types.Position(line if end_line is None else end_line, 0)),
        command=types.Command(title=title, command=EXECUTE, arguments=[argument]),
    )


def _one_argument(command: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 1:
        raise InvalidParams(f"{command} takes exactly one argument object, got {len(args)} arguments")
    return args[0]
