"""`cellbox serve`: one client's daemon over stdin/stdout, pygls's LSP loop
with stdin read on the event loop and the clean-up inside it, whether stdin
ends or SIGTERM or SIGHUP come."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end `cellbox serve` as stdin closing does, containers stopped:
an editor shutting down (code-server sends SIGTERM), a terminal closed."""


def serve_stdio(log_level: str = "INFO", lazy: bool = False) -> None:
    # stdout carries the protocol; every log line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=log_level, format="cellbox %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    if sys.stdin.isatty():
        print("cellbox: speaking LSP on stdin/stdout; an editor starts this. See `cellbox --help`.", file=sys.stderr)

    from pygls.io_ import StdoutWriter, run_async

    from cellbox.lsp import pygls_internals
    from cellbox.lsp.features import build_server

    server = build_server()
    # pygls's own start_io, but with our clean-up inside its event loop: the
    # client may close stdin without `shutdown`, and we must still stop the
    # containers we started and hang up on their runners.
    stop_event = threading.Event()
    pygls_internals.set_stop_event(server, stop_event)
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))

    async def serve() -> None:
        reader = await _stdin_reader(server.thread_pool)
        reading = asyncio.ensure_future(
            run_async(
                stop_event=stop_event,
                reader=reader,
                protocol=server.protocol,
                logger=logging.getLogger("pygls.io"),
                error_handler=server.report_server_error,
            )
        )
        loop = asyncio.get_running_loop()
        signalled: list[int] = []

        def stop_reading(signum: int) -> None:
            logging.getLogger(__name__).info("%s: stopping as at the end of stdin", signal.Signals(signum).name)
            signalled.append(signum)
            reading.cancel()

        for signum in ENDING_SIGNALS:
            # Without a handler the signal ends the process at once, and the
            # containers it started keep running with no daemon to stop them.
            loop.add_signal_handler(signum, stop_reading, signum)
        try:
            await reading
        except asyncio.CancelledError:
            if not signalled:
                raise  # Ctrl-C: asyncio.run is ending the loop
        finally:
            for signum in ENDING_SIGNALS:
                loop.remove_signal_handler(signum)
            await server.shutdown_sandboxes()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.sandboxes.pool.backend.close()


class StreamReaderAdapter:
    """An asyncio stream as pygls's run_async reads it (b"" at the end).

    For stdin this reads on the event loop itself: pygls's own reader hands
    every header line and body to a thread, three thread hops per message,
    which showed as a good part of a warm run's few milliseconds."""

    def __init__(self, stream: asyncio.StreamReader, first_line: bytes = b"") -> None:
        self._stream = stream
        self._first_line = first_line
        """A line the caller already read, given back first."""

    async def readline(self) -> bytes:
        if self._first_line:
            line, self._first_line = self._first_line, b""
            return line
        return await self._stream.readline()

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""  # the client went away mid-message: same as the end


async def _stdin_reader(thread_pool):
    from pygls.io_ import StdinAsyncReader

    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=1 << 20, loop=loop)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), sys.stdin.buffer)
    except (ValueError, OSError):
        # Not a pipe, socket or terminal (a regular file, say): fall back.
        return StdinAsyncReader(sys.stdin.buffer, thread_pool)
    return StreamReaderAdapter(stream)
