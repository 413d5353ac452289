"""The `cellbox` command line: `cellbox serve` speaks LSP over stdio."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading

from cellbox import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cellbox",
        description="Run code blocks in one Docker sandbox per workspace, over the Language Server Protocol.",
    )
    parser.add_argument("--version", action="version", version=f"cellbox {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="speak LSP over stdio (the default)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    serve_stdio(getattr(args, "log_level", "INFO"))


def serve_stdio(log_level: str = "INFO") -> None:
    # stdout carries the protocol; every log line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=log_level, format="cellbox %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    if sys.stdin.isatty():
        print("cellbox: speaking LSP on stdin/stdout; an editor starts this. See `cellbox --help`.", file=sys.stderr)

    from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async

    from cellbox.server import build_server

    server = build_server()
    # pygls's own start_io, but with our clean-up inside its event loop: the
    # client may close stdin without `shutdown`, and we must still stop the
    # containers we started and hang up on their runners.
    server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    reader = StdinAsyncReader(sys.stdin.buffer, server.thread_pool)

    async def serve() -> None:
        try:
            await run_async(
                stop_event=server._stop_event,
                reader=reader,
                protocol=server.protocol,
                logger=logging.getLogger("pygls.io"),
                error_handler=server.report_server_error,
            )
        finally:
            await server.shutdown_sandboxes()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.manager.backend.close()
