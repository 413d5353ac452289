"""The command line's side of the protocol: a small, synchronous JSON-RPC
client over a stream, to the project's daemon (Unix socket) or to a `cellbox
serve` of its own (stdio), with the LSP handshake around it.

Synchronous and on light modules on purpose: `cellbox exec` starts as a new
process for every call (a git hook, a Makefile line), and asyncio's import
alone cost more than the daemon's whole answer.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cellbox.project import DaemonPaths, answers

NotificationHandler = Callable[[str, Any], None]
WAIT_TICK_SECONDS = 0.1


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RpcClient:
    def __init__(self, read_fd: int, write: Callable[[bytes], object], on_notification: NotificationHandler) -> None:
        self._read_fd = read_fd
        self._write = write
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._buffer = b""
        self._answers: dict[int, dict] = {}

    def send_request(self, method: str, params: Any) -> int:
        request_id = next(self._ids)
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id

    def request(self, method: str, params: Any, on_wait: Callable[[], None] | None = None) -> Any:
        """Send a request and wait for its answer, handling what comes meanwhile;
        `on_wait` runs every tenth of a second of waiting (a spinner, Ctrl-C)."""
        return self.wait_for(self.send_request(method, params), on_wait)

    def wait_for(self, request_id: int, on_wait: Callable[[], None] | None = None) -> Any:
        while request_id not in self._answers:
            message = self._next_message(on_wait)
            if message is None:
                raise ConnectionError("the cellbox server closed the connection")
            self._dispatch(message)
        answer = self._answers.pop(request_id)
        if "error" in answer:
            raise RpcError(answer["error"].get("code", 0), answer["error"].get("message", ""))
        return answer.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self._write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _next_message(self, on_wait: Callable[[], None] | None) -> dict | None:
        while True:
            header_end = self._buffer.find(b"\r\n\r\n")
            if header_end >= 0:
                length = _content_length(self._buffer[:header_end])
                body_start = header_end + 4
                if len(self._buffer) >= body_start + length:
                    body = self._buffer[body_start:body_start + length]
                    self._buffer = self._buffer[body_start + length:]
                    return json.loads(body)
            readable, _, _ = select.select([self._read_fd], [], [], WAIT_TICK_SECONDS)
            if not readable:
                if on_wait is not None:
                    on_wait()
                continue
            chunk = os.read(self._read_fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk

    def _dispatch(self, message: dict) -> None:
        if "method" not in message:
            if isinstance(message.get("id"), int):  # an error about no request in particular has none
                self._answers[message["id"]] = message
        elif "id" in message:
            # The server's own requests (progress tokens, lens refresh): a CLI
            # has nothing to do for them but must answer.
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        else:
            self._on_notification(message["method"], message.get("params"))


def _content_length(headers: bytes) -> int:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ConnectionError("the cellbox server sent a message without Content-Length")


class Session:
    """An initialized LSP session on a project, through its daemon if one
    runs, else through a `cellbox serve` started for this session."""

    def __init__(
        self, workspace: Path, on_notification: NotificationHandler, progress: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.workspace = workspace
        self._settings = settings
        """initializationOptions: this client's own settings (an executor's arguments)."""
        self._on_notification = on_notification
        self._progress = progress
        """Whether to say the client takes work-done progress (a terminal shows its steps)."""
        self._process: subprocess.Popen | None = None
        self._server_log: IO[bytes] | None = None
        """The own server's stderr: its log says why it failed, if it does; else noise for a CLI user."""
        self._socket: socket.socket | None = None
        self._client: RpcClient | None = None

    @property
    def client(self) -> RpcClient:
        if self._client is None:
            raise RuntimeError("a Session is used in a `with` block")
        return self._client

    def __enter__(self) -> Session:
        paths = DaemonPaths.of(self.workspace)
        if answers(paths.socket):
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket.connect(str(paths.socket))
            self._client = RpcClient(self._socket.fileno(), self._socket.sendall, self._on_notification)
        else:
            self._server_log = tempfile.TemporaryFile()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "cellbox", "serve", "--log-level", "WARNING"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._server_log, bufsize=0,
                # Its own session: Ctrl-C at the terminal is for us to turn
                # into a cancel, not for the server to die of.
                start_new_session=True,
            )
            assert self._process.stdout is not None and self._process.stdin is not None
            self._client = RpcClient(self._process.stdout.fileno(), self._process.stdin.write, self._on_notification)
        self.client.request("initialize", {
            "processId": os.getpid(),
            "clientInfo": {"name": "cellbox-cli"},
            "rootUri": self.workspace.as_uri(),
            "workspaceFolders": [{"uri": self.workspace.as_uri(), "name": self.workspace.name}],
            "capabilities": {"window": {"workDoneProgress": True}} if self._progress else {},
            **({"initializationOptions": self._settings} if self._settings else {}),
        })
        self.client.notify("initialized", {})
        return self

    def command(self, name: str, argument: dict, on_wait: Callable[[], None] | None = None) -> Any:
        try:
            return self.client.request("workspace/executeCommand", {"command": name, "arguments": [argument]}, on_wait)
        except ConnectionError as exc:
            raise ConnectionError(f"{exc}{self._server_log_tail()}") from None

    def _server_log_tail(self) -> str:
        if self._server_log is None:
            return " (see the daemon's log: cellbox daemon status)"
        self._server_log.seek(0)
        lines = self._server_log.read().decode(errors="replace").splitlines()[-10:]
        return ("; its log ends with:\n" + "\n".join(lines)) if lines else ""

    def send_command(self, name: str, argument: dict) -> int:
        """Send without waiting (a cancel while the run's own request waits)."""
        return self.client.send_request("workspace/executeCommand", {"command": name, "arguments": [argument]})

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.client.request("shutdown", None)
            self.client.notify("exit", None)
        except (RpcError, OSError):
            pass
        if self._socket is not None:
            self._socket.close()
        if self._process is not None:
            try:
                if self._process.stdin is not None:
                    self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout=30)  # it stops the containers it started
            except subprocess.TimeoutExpired:
                self._process.kill()
