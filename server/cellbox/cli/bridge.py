"""`cellbox serve --connect`: stdin/stdout bridged to the project's daemon.

An editor that can only start a command keeps its configuration and shares
the daemon (and the container) with every other client. The project is the
first workspace folder the editor names in `initialize` (else rootUri,
rootPath, and last the current folder), so the bridge reads that first
message before it connects; after that it only copies bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from cellbox import daemon_control
from cellbox.project import DaemonError, uri_path


async def _read_message(stdin: asyncio.StreamReader) -> bytes:
    """One whole LSP message, headers included, exactly as it came."""
    raw = b""
    length = None
    while True:
        line = await stdin.readline()
        if not line:
            raise EOFError("the client closed stdin before initialize")
        raw += line
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        if line in (b"\r\n", b"\n") and length is not None:
            return raw + await stdin.readexactly(length)


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


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(1 << 16):
        sink.write(chunk)
        await sink.drain()


async def bridge(idle_timeout: float) -> int:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)
    out_transport, out_protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(), os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    )
    stdout = asyncio.StreamWriter(out_transport, out_protocol, None, loop)
    try:
        first = await _read_message(stdin)
    except (EOFError, asyncio.IncompleteReadError):
        return 0
    workspace = _project_of(first)
    found, _started = await loop.run_in_executor(None, daemon_control.start, workspace, idle_timeout)
    reader, writer = await asyncio.open_unix_connection(found.socket, limit=1 << 20)
    writer.write(first)
    to_daemon = asyncio.ensure_future(_pump(stdin, writer))
    to_editor = asyncio.ensure_future(_pump(reader, stdout))
    # Either side hanging up ends the bridge: the editor closing stdin is its
    # exit; the daemon closing is its answer to `exit`, or its end.
    await asyncio.wait({to_daemon, to_editor}, return_when=asyncio.FIRST_COMPLETED)
    if to_daemon.done() and not to_editor.done():
        if writer.can_write_eof():
            writer.write_eof()
        try:
            await asyncio.wait_for(to_editor, timeout=5.0)  # let the last answers through
        except (TimeoutError, ConnectionError):
            pass
    for task in (to_daemon, to_editor):
        task.cancel()
    writer.close()
    return 0


def run_bridge(idle_timeout: float) -> int:
    try:
        return asyncio.run(bridge(idle_timeout))
    except DaemonError as exc:
        print(f"cellbox: {exc}", file=sys.stderr)
        return 1
    except (BrokenPipeError, ConnectionError):
        return 0
