"""The per-project daemon process (`cellbox daemon run`): one long-running
cellbox per workspace, reached over a Unix socket, so that an editor, a CLI
run and a git hook share the project's one sandbox container. Starting and
stopping it from outside is daemon_control.py.

Each connection is a full LSP session with its own pygls server (documents,
lenses, runs, notifications go to that client only); the sandboxes are one
SandboxPool for all of them. When a client hangs up its runs are cancelled.
With no client and no run for ``idle_timeout`` seconds the daemon stops its
containers and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import logging.handlers
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from cellbox import timeouts
from cellbox.lsp import pygls_internals
from cellbox.project import DaemonError, DaemonPaths, answers, read_pid

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the daemon


def run(workspace: Path, idle_timeout: float) -> None:
    """The daemon process itself (`cellbox daemon run`, started by `start`)."""
    paths = DaemonPaths.of(workspace)
    handler = logging.handlers.RotatingFileHandler(paths.log, maxBytes=1 << 20, backupCount=1)
    handler.setFormatter(logging.Formatter("%(asctime)s cellbox %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("pygls").setLevel(logging.WARNING)
    # Anything printed from here on belongs in the log, not on a terminal.
    sys.stdout.flush()
    try:
        asyncio.run(_serve(paths, idle_timeout))
    except DaemonError as exc:
        log.error("%s", exc)
        sys.exit(1)


async def _serve(paths: DaemonPaths, idle_timeout: float) -> None:
    from pygls.io_ import run_async

    from cellbox.engine.docker import DockerBackend
    from cellbox.lsp.features import build_server
    from cellbox.lsp.stdio import StreamReaderAdapter
    from cellbox.sandbox.pool import SandboxPool

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # outlive the terminal that started it

    pool = SandboxPool(DockerBackend())
    clients: set[asyncio.StreamWriter] = set()
    sessions: set = set()

    async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_uid = _peer_uid(writer)
        if peer_uid not in (os.getuid(), 0):
            log.warning("refused a connection from uid %s", peer_uid)
            writer.close()
            return
        # A connection that closes before its first line is a probe (`daemon
        # status`, a client checking for a daemon): not a client, no activity.
        first_line = await reader.readline()
        if not first_line:
            writer.close()
            return
        stop_reading = threading.Event()

        def hang_up() -> None:
            stop_reading.set()
            writer.close()

        server = build_server(pool, hang_up)
        pygls_internals.set_stop_event(server, stop_reading)
        server.protocol.set_writer(writer)
        clients.add(writer)
        sessions.add(server)
        log.debug("client connected (%d now)", len(clients))
        try:
            await run_async(
                stop_event=stop_reading,
                reader=StreamReaderAdapter(reader, first_line),
                protocol=server.protocol,
                logger=logging.getLogger("pygls.io"),
                error_handler=server.report_server_error,
            )
        except (ConnectionError, OSError) as exc:
            log.info("client connection lost: %s", exc)
        finally:
            await server.shutdown_sandboxes()  # cancels this client's runs only
            clients.discard(writer)
            sessions.discard(server)
            pool.last_activity = time.monotonic()
            with contextlib.suppress(Exception):
                writer.close()
            log.debug("client left (%d now)", len(clients))

    # The pid file first: a `start` waiting for the socket to answer then
    # finds the pid too.
    _claim_socket(paths)
    _write_pid(paths.pid)
    listener = await _listen(paths, serve_client)
    _warm_up(build_server, pool)
    log.info("serving %s on %s (pid %d, idle shutdown %s)", paths.workspace, paths.socket, os.getpid(),
             f"after {idle_timeout:g} s" if idle_timeout > 0 else "off")
    try:
        await _wait_until_stopped(stopping, idle_timeout, pool, clients)
    finally:
        listener.close()
        # Take the name off first, so a `start` racing with this exit starts a new daemon.
        with contextlib.suppress(OSError):
            if read_pid(paths.pid) == os.getpid():
                paths.socket.unlink(missing_ok=True)
                paths.pid.unlink(missing_ok=True)
        for server in list(sessions):
            server.sandboxes.cancel_all()
        for writer in list(clients):
            writer.close()
        await pool.shutdown()
        pool.backend.close()
        log.info("stopped")


async def _wait_until_stopped(stopping: asyncio.Event, idle_timeout: float, pool, clients: set) -> None:
    tick = max(0.2, min(idle_timeout / 4, 30.0)) if idle_timeout > 0 else None
    while True:
        try:
            await timeouts.wait_for(stopping.wait(), timeout=tick)
            log.info("asked to stop")
            return
        except TimeoutError:
            pass
        idle_for = time.monotonic() - pool.last_activity
        if not clients and pool.active_runs == 0 and idle_for >= idle_timeout:
            log.info("idle for %.0f s with no client and no run: stopping", idle_for)
            return


def _claim_socket(paths: DaemonPaths) -> None:
    """Refuse to start beside a live daemon; remove the socket of a dead one."""
    if paths.socket.exists() or paths.socket.is_symlink():
        if answers(paths.socket):
            raise DaemonError(f"a daemon already serves {paths.workspace} on {paths.socket}")
        log.info("removing the stale socket %s (its daemon is gone)", paths.socket)
        paths.socket.unlink()


async def _listen(paths: DaemonPaths, serve_client) -> asyncio.AbstractServer:
    # Bind under a umask that makes the socket 0600 from its first moment;
    # connecting to a Unix socket needs write permission on it.
    old_umask = os.umask(0o177)
    try:
        listener = await asyncio.start_unix_server(serve_client, path=str(paths.socket), limit=1 << 20)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DaemonError(f"{paths.socket} is in use by another process") from None
        raise
    finally:
        os.umask(old_umask)
    os.chmod(paths.socket, 0o600)
    return listener


def _warm_up(build_server, pool) -> None:
    """Answer one initialize into the void, so that the first real client does
    not pay for cattrs building its (un)structuring functions (~25 ms)."""
    message = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"processId": None, "rootUri": None, "capabilities": {}}}
    pygls_internals.answer_into_the_void(build_server(pool, lambda: None), message)


def _write_pid(path: Path) -> None:
    partial = path.with_suffix(".pid.partial")
    partial.write_text(f"{os.getpid()}\n")
    partial.replace(path)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED): the socket's
    mode already keeps other users out; this is the second lock."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid
