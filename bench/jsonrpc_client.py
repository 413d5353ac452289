"""The bench's client of `cellbox serve`: JSON-RPC over the server's stdio,
framed as LSP frames it, and nothing more, as an editor's client is (VS Code
and Neovim parse the answer with their own JSON parser).

Why not pygls' LanguageClient: it (un)structures every message through
lsprotocol's cattrs converters, in the timed process. Measured on 2026-12-03,
interleaved in the same minutes, each client with its own server and sandbox:
a warm `print(i)` block took 11.5 ms through it and 9.9 ms through this
client, and a block that is only saved (`html`, no container) 3.6 and 2.4 ms;
in other runs the python block differed by as little as 0.1 ms. What the
measuring client costs is not cellbox's, so it is kept small; the bench still
times the python row through pygls too (warm_python_pygls_client), so that
the difference stays in sight.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


class RequestFailed(Exception):
    """The server answered a request with an error."""


class JsonRpcDaemon:
    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = iter(range(1, 1 << 62))
        self._reading: asyncio.Task[None] | None = None

    async def start(self, workspace: Path, argv: list[str] | None = None, env: dict[str, str] | None = None,
                    initialization_options: dict[str, Any] | None = None) -> None:
        """Spawns the server (`cellbox serve`, or `argv`) and initializes it with `workspace` as its folder."""
        argv = argv or [sys.executable, "-m", "cellbox", "serve", "--log-level", "WARNING"]
        self._process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=1 << 24
        )
        self._reading = asyncio.ensure_future(self._read())
        await self.request("initialize", {
            "processId": None, "capabilities": {},
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
            "initializationOptions": initialization_options or {},
        })
        self._send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def command(self, name: str, argument: dict) -> tuple[float, Any]:
        """(milliseconds from sending to having parsed the answer, the answer)."""
        started = time.perf_counter()
        result = await self.request("workspace/executeCommand", {"command": name, "arguments": [argument]})
        return (time.perf_counter() - started) * 1000, result

    async def request(self, method: str, params: Any) -> Any:
        number = next(self._ids)
        answer = self._pending[number] = asyncio.get_running_loop().create_future()
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        return await answer

    async def stop(self) -> None:
        assert self._process is not None
        await asyncio.wait_for(self.request("shutdown", None), 60)
        self._send({"jsonrpc": "2.0", "method": "exit", "params": None})
        try:
            await asyncio.wait_for(self._process.wait(), 15)
        except TimeoutError:
            print(f"bench: cellbox serve (pid {self.pid}) did not exit within 15 s of `exit`; killed it",
                  file=sys.stderr, flush=True)
            self._process.kill()
            await self._process.wait()
        if self._reading is not None:
            self._reading.cancel()

    def _send(self, message: dict) -> None:
        assert self._process is not None and self._process.stdin is not None
        body = json.dumps(message).encode()
        self._process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        while True:
            length = None
            while (line := await stream.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    for waiting in self._pending.values():
                        if not waiting.done():
                            waiting.set_exception(ConnectionError("cellbox serve closed its stdout"))
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            assert length is not None, "a message without Content-Length"
            message = json.loads(await stream.readexactly(length))
            if "method" in message:
                if "id" in message:  # the server asks (progress, a message box): say yes, as a quiet editor would
                    self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                continue  # notifications (output, blockStarted, diagnostics): received, not kept
            waiting = self._pending.pop(message.get("id"), None)
            if waiting is None or waiting.done():
                continue
            if "error" in message:
                waiting.set_exception(RequestFailed(message["error"].get("message", message["error"])))
            else:
                waiting.set_result(message.get("result"))
