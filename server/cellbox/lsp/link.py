"""The client end of a cellbox LSP server, for front ends other than the
editors (the MCP server): the project's daemon when one runs, else a
`cellbox serve` of this process's own, which lives as long as the link.
pygls glue, as the rest of lsp/; its users see plain JSON values."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

from cellbox import __version__, project, timeouts
from cellbox.errors import CellboxError
from cellbox.vocabulary import Command, Notification

OnOutput = Callable[[str, str], None]
"""Called with (stream, text) for each piece of a run's output, as it comes."""


class ServerRefused(CellboxError):
    """The server answered a request with an error; the message is its own."""


class ServerLink:
    """One workspace's cellbox server, reached over LSP; started on first use."""

    def __init__(self, workspace: Path, name: str, settings: dict[str, Any] | None = None) -> None:
        self.workspace = workspace
        self._name = name
        self._settings = settings
        """initializationOptions: this client's own settings (an executor's arguments)."""
        self._client: LanguageClient | None = None
        self._starting = asyncio.Lock()
        self._outputs: dict[str, OnOutput] = {}
        """runId -> who hears that run's output."""

    async def _ready(self) -> LanguageClient:
        async with self._starting:
            if self._client is None:
                self._client = await self._start()
            return self._client

    async def _start(self) -> LanguageClient:
        client = LanguageClient(self._name, __version__)

        @client.feature(Notification.OUTPUT)
        def on_output(params: Any) -> None:
            heard = self._outputs.get(str(getattr(params, "runId", "")))
            if heard is not None:
                heard(str(getattr(params, "stream", "stdout")), str(getattr(params, "text", "")))

        # What else the server tells every client: nothing for us to do (and
        # pygls warns of a notification nobody takes).
        for method in (Notification.BLOCK_STARTED, Notification.DISPLAY, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
                       types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE):
            client.feature(method)(_ignore)

        # The project's daemon when one runs: the editor's container is ours too.
        shared = project.answers(project.DaemonPaths.of(self.workspace).socket)
        command = [sys.executable, "-m", "cellbox", "serve", "--log-level", "WARNING"]
        await client.start_io(*(command + ["--connect"] if shared else command))
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                client_info=types.ClientInfo(name=self._name, version=__version__),
                workspace_folders=[types.WorkspaceFolder(uri=self.workspace.as_uri(), name=self.workspace.name)],
                initialization_options=self._settings,
            )
        )
        client.initialized(types.InitializedParams())
        return client

    async def command(self, name: str, argument: dict[str, Any]) -> Any:
        """workspace/executeCommand; the answer as plain JSON values. ServerRefused on an error answer."""
        client = await self._ready()
        try:
            answer = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=name, arguments=[argument])
            )
        except JsonRpcException as exc:
            raise ServerRefused(str(getattr(exc, "message", None) or exc)) from None
        return plain(answer)

    async def execute(self, argument: dict[str, Any], run_id: str, on_output: OnOutput) -> dict[str, Any]:
        """cellbox.execute as run `run_id`, its output heard as it comes; a
        cancelled call cancels the run in the sandbox too."""
        self._outputs[run_id] = on_output
        try:
            return await self.command(Command.EXECUTE, {**argument, "runId": run_id})
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.command(Command.CANCEL, {"runId": run_id}))
            raise
        finally:
            self._outputs.pop(run_id, None)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await timeouts.wait_for(client.shutdown_async(None), 30)
            client.exit(None)
        with contextlib.suppress(Exception):
            await client.stop()


def _ignore(params: Any) -> None:
    pass


def plain(value: Any) -> Any:
    """An answer (pygls hands back attribute objects for unknown shapes) as plain JSON values."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "_asdict"):
        return {str(k): plain(v) for k, v in value._asdict().items()}
    if hasattr(value, "__dict__"):
        return {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)
