"""The `cellbox` command line: `cellbox serve` speaks LSP over stdio."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

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

    from cellbox.server import build_server

    server = build_server()
    try:
        server.start_io()
    finally:
        # The client may close stdin without `shutdown`: still stop what we started.
        asyncio.run(server.shutdown_sandboxes())
        server.manager.backend.close()
