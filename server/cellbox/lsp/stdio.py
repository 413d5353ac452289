"""`cellbox serve`: one client's daemon over stdin/stdout, pygls's LSP loop
with stdin read on the event loop and the clean-up inside it, whether stdin
ends or SIGTERM or SIGHUP come. The workspace's sandbox starts as soon as
`initialize` names it with --eager, before pygls is loaded (see serve_stdio)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from typing import Any

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end `cellbox serve` as stdin closing does, containers stopped:
an editor shutting down (code-server sends SIGTERM), a terminal closed."""


def serve_stdio(log_level: str = "INFO", eager: bool = False) -> None:
    """Serve one client on stdin/stdout. If `eager`, the sandbox of the
    workspace `initialize` names starts at once, in the background, while
    pygls and lsprotocol are still being imported (a thread): an editor's
    first result then waits for the slower of the two, not for their sum.
    Otherwise the container is made at the first execute, as it always was."""
    # stdout carries the protocol; every log line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=log_level, format="cellbox %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    if sys.stdin.isatty():
        print("cellbox: speaking LSP on stdin/stdout; an editor starts this. See `cellbox --help`.", file=sys.stderr)

    from cellbox.engine.docker import DockerBackend
    from cellbox.lsp.opening import read_message, settings_of_initialize
    from cellbox.sandbox.pool import SandboxPool

    pool = SandboxPool(DockerBackend())
    built: list[Any] = []  # the server, once its modules are imported

    async def serve_client() -> None:
        loop = asyncio.get_running_loop()
        stream = await _stdin_stream()
        first = b""
        if stream is not None and eager:
            first = await read_message(stream)
            found = settings_of_initialize(first)
            if found is not None and found.error is None and found.workspaces:
                pool.prewarm(found.workspaces[0], found.overrides, found.workspace_settings)
        server = await loop.run_in_executor(None, _build_server, pool)
        built.append(server)
        from pygls.io_ import StdinAsyncReader, run_async

        from cellbox.lsp import pygls_internals

        # pygls's own start_io, but with our clean-up inside its event loop: the
        # client may close stdin without `shutdown`, and we must still stop the
        # containers we started and hang up on their runners.
        stop_event = threading.Event()
        pygls_internals.set_stop_event(server, stop_event)
        reader = (
            StreamReaderAdapter(stream, first) if stream is not None
            else StdinAsyncReader(sys.stdin.buffer, server.thread_pool)
        )
        await run_async(
            stop_event=stop_event,
            reader=reader,
            protocol=server.protocol,
            logger=logging.getLogger("pygls.io"),
            error_handler=server.report_server_error,
        )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        serving = asyncio.ensure_future(serve_client())
        signalled: list[int] = []

        def stop_serving(signum: int) -> None:
            logging.getLogger(__name__).info("%s: stopping as at the end of stdin", signal.Signals(signum).name)
            signalled.append(signum)
            serving.cancel()

        for signum in ENDING_SIGNALS:
            # Without a handler the signal ends the process at once, and the
            # containers it started (or is starting) keep running with no
            # daemon to stop them.
            loop.add_signal_handler(signum, stop_serving, signum)
        try:
            await serving
        except asyncio.CancelledError:
            if not signalled:
                raise  # Ctrl-C: asyncio.run is ending the loop
        finally:
            for signum in ENDING_SIGNALS:
                loop.remove_signal_handler(signum)
            if built:
                await built[0].shutdown_sandboxes()
            else:
                await pool.shutdown()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        if built:
            built[0].shutdown()
        pool.backend.close()


def _build_server(pool: Any) -> Any:
    """The server, with pygls and lsprotocol imported (~0.7 s, in a thread)."""
    from pygls.io_ import StdoutWriter

    from cellbox.lsp.features import build_server

    server = build_server(pool, owns_pool=True)
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    return server


class StreamReaderAdapter:
    """An asyncio stream as pygls's run_async reads it (b"" at the end).

    For stdin this reads on the event loop itself: pygls's own reader hands
    every header line and body to a thread, three thread hops per message,
    which showed as a good part of a warm run's few milliseconds."""

    def __init__(self, stream: asyncio.StreamReader, already_read: bytes = b"") -> None:
        self._stream = stream
        self._already_read = already_read
        """What the caller read from the stream before (a first line, a whole
        first message), given back first."""

    async def readline(self) -> bytes:
        if self._already_read:
            line, newline, rest = self._already_read.partition(b"\n")
            if newline:
                self._already_read = rest
                return line + newline
            self._already_read = b""
            return line + await self._stream.readline()
        return await self._stream.readline()

    async def readexactly(self, n: int) -> bytes:
        given, self._already_read = self._already_read[:n], self._already_read[n:]
        if len(given) == n:
            return given
        try:
            return given + await self._stream.readexactly(n - len(given))
        except asyncio.IncompleteReadError:
            return b""  # the client went away mid-message: same as the end


async def _stdin_stream() -> asyncio.StreamReader | None:
    """stdin as an asyncio stream; None when it cannot be one (a regular file, say)."""
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=1 << 20, loop=loop)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), sys.stdin.buffer)
    except (ValueError, OSError):
        return None
    return stream
