"""The command line's side of the protocol: a small JSON-RPC client over a
stream, to the project's daemon (Unix socket) or to a `cellbox serve` of its
own (stdio), with the LSP handshake around it.

A few dozen lines rather than pygls's client: the CLI starts on every call,
and it needs only requests, notifications and polite answers to the server's
own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellbox import daemon

NotificationHandler = Callable[[str, Any], None]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RpcClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_notification: NotificationHandler) -> None:
        self._reader = reader
        self._writer = writer
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reading = asyncio.ensure_future(self._read_forever())

    async def request(self, method: str, params: Any) -> Any:
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await answer

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self._writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def _read_forever(self) -> None:
        try:
            while (message := await self._read_message()) is not None:
                self._dispatch(message)
        finally:
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("the cellbox daemon closed the connection"))

    async def _read_message(self) -> dict | None:
        length = None
        while True:
            line = await self._reader.readline()
            if not line:
                return None
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif line.strip() == b"" and length is not None:
                try:
                    return json.loads(await self._reader.readexactly(length))
                except asyncio.IncompleteReadError:
                    return None

    def _dispatch(self, message: dict) -> None:
        if "method" not in message:
            answer = self._pending.pop(message.get("id"), None)
            if answer is None or answer.done():
                return
            if "error" in message:
                error = message["error"]
                answer.set_exception(RpcError(error.get("code", 0), error.get("message", "")))
            else:
                answer.set_result(message.get("result"))
        elif "id" in message:
            # The server's own requests (progress tokens, lens refresh): a CLI
            # has nothing to do for them but must answer.
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        else:
            self._on_notification(message["method"], message.get("params"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._reading.cancel()


class Session:
    """An initialized LSP session on a project, through its daemon if one
    runs, else through a `cellbox serve` started for this session."""

    def __init__(self, workspace: Path, on_notification: NotificationHandler) -> None:
        self.workspace = workspace
        self._on_notification = on_notification
        self._process: asyncio.subprocess.Process | None = None
        self.client: RpcClient | None = None
        self.via_daemon = False

    async def __aenter__(self) -> Session:
        paths = daemon.DaemonPaths.of(self.workspace)
        if daemon.answers(paths.socket):
            reader, writer = await asyncio.open_unix_connection(paths.socket, limit=1 << 20)
            self.via_daemon = True
        else:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cellbox", "serve", "--log-level", "WARNING",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                # Its own session: Ctrl-C at the terminal is for us to turn
                # into a cancel, not for the server to die of.
                start_new_session=True, limit=1 << 20,
            )
            reader, writer = self._process.stdout, self._process.stdin
        self.client = RpcClient(reader, writer, self._on_notification)
        await self.client.request("initialize", {
            "processId": os.getpid(),
            "clientInfo": {"name": "cellbox-cli"},
            "rootUri": self.workspace.as_uri(),
            "workspaceFolders": [{"uri": self.workspace.as_uri(), "name": self.workspace.name}],
            "capabilities": {},
        })
        self.client.notify("initialized", {})
        return self

    async def command(self, name: str, argument: dict) -> Any:
        return await self.client.request("workspace/executeCommand", {"command": name, "arguments": [argument]})

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await asyncio.wait_for(self.client.request("shutdown", None), timeout=30)
            self.client.notify("exit", None)
        except (RpcError, ConnectionError, TimeoutError):
            pass
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), timeout=30)
            except TimeoutError:
                self._process.kill()
        await self.client.close()
