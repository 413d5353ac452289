"""All the pygls glue: LSP lifecycle and the `cellbox.*` commands.

Handlers only unpack arguments, call the domain (SandboxManager / Sandbox) and
convert the result; every CellboxError becomes a JSON-RPC error here, in one
place, and the daemon keeps serving after it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from cellbox import __version__
from cellbox.backend import DockerBackend
from cellbox.config import validate_overrides
from cellbox.errors import CellboxError, ConfigError, EngineUnavailable, ImageUnavailable, InvalidParams
from cellbox.manager import SandboxManager, workspace_path
from cellbox.wire import (
    CancelParams,
    CancelResult,
    ExecuteParams,
    StatusParams,
    StatusResult,
    WorkspaceParams,
    parse,
    to_json,
)

log = logging.getLogger(__name__)

EXECUTE = "cellbox.execute"
RESTART = "cellbox.restart"
STOP = "cellbox.stop"
STATUS = "cellbox.status"
CANCEL = "cellbox.cancel"


class CellboxServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("cellbox", __version__)
        self.manager = SandboxManager(DockerBackend())
        self._shut_down = False

    async def shutdown_sandboxes(self) -> None:
        if not self._shut_down:
            self._shut_down = True
            await self.manager.shutdown()

    def show_error(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=message))

    @contextlib.asynccontextmanager
    async def progress(self, title: str):
        """Server-initiated work-done progress, when the client supports it."""
        capabilities = self.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            yield
            return
        token = str(uuid.uuid4())
        await self.work_done_progress.create_async(token)
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))
        try:
            yield
        finally:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd())


def _one_argument(command: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 1:
        raise InvalidParams(f"{command} takes exactly one argument object, got {len(args)} arguments")
    return args[0]


def command_handler(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn CellboxErrors into JSON-RPC errors with their code and message."""

    @functools.wraps(fn)
    async def handler(ls: CellboxServer, *args: Any) -> Any:
        try:
            return to_json(await fn(ls, *args))
        except CellboxError as exc:
            log.info("%s failed: %s", fn.__name__, exc)
            if isinstance(exc, (EngineUnavailable, ImageUnavailable, ConfigError)):
                # Not the caller's fault and not visible in a reply an editor may
                # only log: tell the person too.
                ls.show_error(f"cellbox: {exc}")
            raise JsonRpcException(code=exc.code, message=exc.message) from None

    return handler


def build_server() -> CellboxServer:
    server = CellboxServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: CellboxServer, params: types.InitializeParams) -> None:
        folders = [f.uri for f in params.workspace_folders or []]
        roots = folders or [params.root_uri or params.root_path]
        for root in roots:
            if not root:
                continue
            try:
                ls.manager.default_workspaces.append(workspace_path(root))
            except InvalidParams as exc:
                log.warning("ignoring workspace %s: %s", root, exc)
        try:
            ls.manager.overrides.update(validate_overrides(params.initialization_options, "initializationOptions"))
        except ConfigError as exc:
            # Carry on with the workspace's own settings rather than refuse to start.
            ls.show_error(f"cellbox: {exc}; using the workspace's settings instead")

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CellboxServer, *_: Any) -> None:
        await ls.shutdown_sandboxes()

    @server.command(EXECUTE)
    @command_handler
    async def execute(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(EXECUTE, args), ExecuteParams, EXECUTE)
        if not params.blocks:
            raise InvalidParams(f"Invalid {EXECUTE} arguments: blocks: give at least one block")
        if params.timeout is not None and not params.timeout >= 1:  # also refuses NaN
            raise InvalidParams(f"Invalid {EXECUTE} arguments: timeout: must be at least 1 second (got {params.timeout:g})")
        sandbox = ls.manager.sandbox(params.workspace)
        with ls.manager.cancellable(params.run_id) as cancelled:
            return await sandbox.execute(params.blocks, params.timeout, ls.progress, cancelled)

    @server.command(CANCEL)
    @command_handler
    async def cancel(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(CANCEL, args), CancelParams, CANCEL)
        return CancelResult(params.run_id, ls.manager.cancel(params.run_id))

    @server.command(RESTART)
    @command_handler
    async def restart(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(RESTART, args), WorkspaceParams, RESTART)
        return await ls.manager.sandbox(params.workspace).restart(ls.progress)

    @server.command(STOP)
    @command_handler
    async def stop(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(STOP, args), WorkspaceParams, STOP)
        return await ls.manager.sandbox(params.workspace).stop()

    @server.command(STATUS)
    @command_handler
    async def status(ls: CellboxServer, *args: Any):
        # `{}` is the documented argument; no argument at all is accepted too.
        if args:
            parse(_one_argument(STATUS, args), StatusParams, STATUS)
        return StatusResult(await ls.manager.status())

    return server
