"""`cellbox serve --connect`: stdin/stdout bridged to the project's daemon.

An editor that can only start a command keeps its configuration and shares
the daemon (and the container) with every other client. The project is the
first workspace folder the editor names in `initialize` (else rootUri,
rootPath, and last the current folder), so the bridge reads that first
message before it connects; after that it only copies bytes.

Light on purpose: no asyncio, no attrs, and daemon_control only when no
daemon answers. With the daemon running, the editor's first result is this
process's start-up plus the daemon's answers (the target is 100 ms in all);
asyncio's import alone took ~50 ms of it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from cellbox.project import DaemonError, DaemonPaths, uri_path

CHUNK = 1 << 16
LAST_ANSWERS_SECONDS = 5.0
"""How long the daemon's last answers may take once the editor closed stdin."""


def _read_message(fd: int) -> tuple[bytes, bytes]:
    """One whole LSP message from `fd`, headers included, exactly as it came,
    and whatever came after it in the same reads. Read from the descriptor
    itself, not sys.stdin's buffer: a thread blocked in a buffered read holds
    its lock, and the interpreter's exit then aborts on it."""
    data = b""
    while True:
        head, blank, _ = data.partition(b"\r\n\r\n")
        if blank:
            length = None
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length is None:
                raise EOFError("the client's first message has no Content-Length")
            end = len(head) + len(blank) + length
            if len(data) >= end:
                return data[:end], data[end:]
        chunk = os.read(fd, CHUNK)
        if not chunk:
            raise EOFError("the client closed stdin before initialize")
        data += chunk


def _project_of(message: bytes) -> Path:
    try:
        body = json.loads(message.split(b"\r\n\r\n", 1)[1])
        params = body.get("params") or {}
        folders = params.get("workspaceFolders") or []
        root = (folders[0]["uri"] if folders else None) or params.get("rootUri") or params.get("rootPath")
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        root = None
    path = uri_path(root) if root else Path.cwd()
    return path if path.is_dir() else Path.cwd()


def _connect(workspace: Path, idle_timeout: float) -> socket.socket:
    """A connection to the project's daemon, started first if none answers."""
    paths = DaemonPaths.of(workspace)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(paths.socket))
        return connection
    except OSError:
        pass  # none answers (or a socket left by a killed one): start it
    from cellbox import daemon_control

    found, _started = daemon_control.start(workspace, idle_timeout)
    connection.close()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(found.socket)
    return connection


def _editor_to_daemon(fd: int, connection: socket.socket) -> None:
    """Copy the editor's messages to the daemon; at the end of stdin, say so
    to the daemon (its answer is to close) and leave the rest to the other way."""
    try:
        while chunk := os.read(fd, CHUNK):
            connection.sendall(chunk)
        connection.shutdown(socket.SHUT_WR)
        time.sleep(LAST_ANSWERS_SECONDS)  # the last answers may still come; then end the other way too
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def bridge(idle_timeout: float) -> int:
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        first, more = _read_message(stdin_fd)
    except (EOFError, ValueError):
        return 0
    connection = _connect(_project_of(first), idle_timeout)
    connection.sendall(first + more)
    # Either side hanging up ends the bridge: the editor closing stdin is its
    # exit; the daemon closing is its answer to `exit`, or its end.
    threading.Thread(target=_editor_to_daemon, args=(stdin_fd, connection), daemon=True).start()
    try:
        while chunk := connection.recv(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(stdout_fd, view):]
    except OSError:
        pass
    finally:
        connection.close()
    return 0


def run_bridge(idle_timeout: float) -> int:
    try:
        return bridge(idle_timeout)
    except DaemonError as exc:
        print(f"cellbox: {exc}", file=sys.stderr)
        return 1
    except (BrokenPipeError, ConnectionError):
        return 0
