"""The daemon's end of a sandbox's warm runner (container/runner.py is the other end).

RunnerListener is the daemon's socket for one sandbox, in the daemon's own
folder (state.py), mounted read-only into the container: the runner connects
to it with a one-shot token. One RunnerClient per connected runner: a reader
task turns the runner's lines into events; `run` sends a request and waits
for the run's "started" and "exit" events, feeding its output in between, in
the order the runner wrote it. Pure asyncio: no docker, no threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import os
import secrets
import socket
import uuid
from pathlib import Path
from typing import NamedTuple, Protocol

from cellbox import safe_files, timeouts
from cellbox.sandbox import state

log = logging.getLogger(__name__)

STARTED_TIMEOUT_SECONDS = 5.0
"""How long a healthy runner takes at most to start a process; past it, the runner is wedged."""
PING_TIMEOUT_SECONDS = 5.0
STREAM_LIMIT = 16 * 1024 * 1024
"""Longest line the runner may send: a 64 KiB output chunk is ~88 KiB of base64."""
STREAMS = {b"1": "stdout", b"2": "stderr"}
_HOW = {"fork": "forked from the warm Python interpreter", "spawn": "spawned as a new process"}


class RunnerLost(Exception):
    """The runner died or is wedged.

    `started` says whether the run had begun: a run that had not can be sent
    again; one that had may have left processes behind for the caller to kill.
    """

    def __init__(self, message: str, started: bool, wedged: bool = False) -> None:
        super().__init__(message)
        self.started = started
        self.wedged = wedged
        """The runner is alive but does not answer: it must be killed to be replaced."""


class RunEnd(NamedTuple):
    """How a run's process ended."""

    code: int
    oom_kills: int | None
    """Processes the memory limit killed during the run, from the container's
    cgroup counter; None when the path that ran it cannot tell."""


class OutputSink(Protocol):
    def feed(self, stream: str, data: bytes) -> object: ...
    def cut(self) -> None: ...


class _RunState:
    def __init__(self, loop: asyncio.AbstractEventLoop, sink: OutputSink) -> None:
        self.sink = sink
        self.started: asyncio.Future[None] = loop.create_future()
        self.exit: asyncio.Future[RunEnd] = loop.create_future()


HELLO_TIMEOUT_SECONDS = 5.0
"""How long a connection may take to present its token before it is dropped."""
MOST_PENDING_HELLOS = 8
"""Connections waiting to present a token at once; more are dropped at once, so
that a block opening thousands cannot use up the daemon's file descriptors."""


class RunnerListener:
    """The daemon's socket for one sandbox's runner, in the daemon's own folder.

    The folder is mounted read-only into the container, so no block can
    replace, link or FIFO the socket or the token, and a block cannot send the
    daemon to another workspace's runner. A block could still connect (it runs
    as the runner's user), so a connection counts only with the token the
    daemon wrote for the runner it expects next; the token is deleted as soon
    as it has been used.
    """

    def __init__(self, run_dir: Path, name: str) -> None:
        self._dir = run_dir
        self._name = name
        self._server: asyncio.base_events.Server | None = None
        self._token: bytes | None = None
        self._arrived: asyncio.Future[RunnerClient] | None = None
        self._taken = False
        """Whether runner() has handed the arrived runner out."""
        self._pending_hellos = 0
        self._bound = ""
        """The socket's device:inode, to tell when its folder was removed."""

    @property
    def socket_path(self) -> Path:
        return self._dir / "runner.sock"

    @property
    def token_path(self) -> Path:
        return self._dir / "token"

    async def open(self) -> bool:
        """Listen, unless another live daemon does already (then False: that
        one has the runner, and this daemon runs its blocks with docker exec)."""
        if self._server is not None:
            if state.identity(self.socket_path, follow=False) == self._bound:
                return True
            # Its folder was removed (and maybe made again): no runner reaches it.
            self.abandon()
        folder = os.open(self._dir, os.O_PATH | os.O_DIRECTORY)
        try:
            # sun_path holds 108 bytes: go through /proc/self/fd, a short path to the folder.
            short = f"/proc/self/fd/{folder}/runner.sock"
            if await _answers(short):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink("runner.sock", dir_fd=folder)  # left by a daemon that died
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(short)
            # The container's user connects; the 0700 folder above keeps
            # the host's other users out.
            os.chmod("runner.sock", 0o666, dir_fd=folder)
        finally:
            os.close(folder)
        self._bound = state.identity(self.socket_path, follow=False)
        self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=STREAM_LIMIT)
        return True

    def expect(self, owner: tuple[int, int]) -> None:
        """Write a fresh token for the next runner to connect with, unless one
        is still awaited, or has arrived and not been handed out yet: a restart
        expects the new runner, which may connect before the next run asks
        for it; a second token then would leave it connected and unheard, and
        that run waiting for one that never comes."""
        if self._arrived is not None and not self._arrived.done():
            return
        if self._arrived is not None and not self._taken and self._still_there(self._arrived):
            return
        self._token = secrets.token_hex(32).encode()
        self._arrived = asyncio.get_running_loop().create_future()
        self._taken = False
        temporary = self._dir / f".token-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        try:
            os.write(fd, self._token)
            if not safe_files.hand_over(fd, owner):
                os.fchmod(fd, 0o444)  # we cannot give it to another user: let it read it
        finally:
            os.close(fd)
        os.replace(temporary, self.token_path)

    async def runner(self, timeout: float) -> RunnerClient:
        """The runner that connects with the expected token; TimeoutError if none does in time."""
        assert self._arrived is not None, "expect() first"
        runner = await timeouts.wait_for(asyncio.shield(self._arrived), timeout)
        self._taken = True
        return runner

    @staticmethod
    def _still_there(arrived: asyncio.Future[RunnerClient]) -> bool:
        return not arrived.cancelled() and arrived.exception() is None and arrived.result().alive

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._token is None or self._pending_hellos >= MOST_PENDING_HELLOS:
            writer.close()  # no runner expected now (or a flood): nothing to wait for
            return
        self._pending_hellos += 1
        try:
            line = await timeouts.wait_for(_short_line(reader), HELLO_TIMEOUT_SECONDS)
        except (TimeoutError, OSError, ValueError, asyncio.LimitOverrunError):
            writer.close()
            return
        finally:
            self._pending_hellos -= 1
        fields = line.split()
        expected, arrived = self._token, self._arrived
        if (
            len(fields) != 3 or fields[0] != b"hello" or expected is None or arrived is None or arrived.done()
            or not hmac.compare_digest(fields[1], expected) or not fields[2].isdigit()
        ):
            log.warning("%s: a connection to the runner's socket without the expected token was refused", self._name)
            writer.close()
            return
        self._token = None
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()
        arrived.set_result(RunnerClient(reader, writer, self._name, int(fields[2])))

    def abandon(self) -> None:
        """Stop listening and forget the token, leaving the folder alone: when
        it was removed, what its path names now is not ours to remove."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._arrived is not None and not self._arrived.done():
            self._arrived.cancel()
        self._token, self._arrived, self._taken = None, None, False

    def close(self) -> None:
        if self._server is not None:
            self.abandon()
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        with contextlib.suppress(OSError):
            self.token_path.unlink()
        if self._arrived is not None and not self._arrived.done():
            self._arrived.cancel()
        self._token = self._arrived = None


async def _short_line(reader: asyncio.StreamReader, most: int = 256) -> bytes:
    """A first line of at most `most` bytes (a hello is ~90): ValueError past it,
    rather than buffering whatever a block sends."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = await reader.read(most + 1 - len(line)) if len(line) <= most else b""
        if not chunk:
            raise ValueError("no hello line")
        line += chunk
        if b"\n" in line[:-1]:
            raise ValueError("more than a hello")  # the runner sends nothing before our first request
    return line


async def _answers(path: str) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    return True


class RunnerClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str, pid: int) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name
        self._runs: dict[str, _RunState] = {}
        self._pings: dict[str, asyncio.Future[int]] = {}
        self.alive = True
        """False once the connection ended: the runner died, or we closed it."""
        self.pid: int | None = pid
        """The runner's pid inside the container, as it said when it connected."""
        self._forked = False
        self._reading = asyncio.ensure_future(self._read())

    # ------------------------------------------------------------ reading

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                self._dispatch(line.split())
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            log.warning("connection to the runner of %s broke: %s", self._name, exc)
        finally:
            self._closed()

    def _dispatch(self, fields: list[bytes]) -> None:
        """One line from the runner: EVENT ID [more fields] (see runner.py)."""
        if len(fields) < 2:
            return
        kind, key = fields[0], fields[1].decode()
        if kind == b"pong":
            self.pid = int(fields[2])
            future = self._pings.pop(key, None)
            if future is not None and not future.done():
                future.set_result(self.pid)
            return
        if kind in (b"tidied", b"settled", b"memory"):
            future = self._pings.pop(key, None)
            if future is not None and not future.done():
                future.set_result(int(fields[2]) if kind == b"memory" and len(fields) > 2 else 0)
            return
        run = self._runs.get(key)
        if run is None:
            return
        if kind == b"out":
            run.sink.feed(STREAMS[fields[2]], base64.b64decode(fields[3]))
        elif kind == b"display" and len(fields) > 2:
            shown = getattr(run.sink, "display", None)
            if shown is not None:
                shown(base64.b64decode(fields[2]))
        elif kind == b"cut":
            run.sink.cut()
        elif kind == b"started" and not run.started.done():
            # Which way the runner started it, for the log only: a result is
            # the same either way.
            how = fields[2].decode() if len(fields) > 2 else "spawn"
            log.debug("run %s: %s", key, _HOW.get(how, how))
            if how == "fork" and not self._forked:
                self._forked = True
                log.info("%s: Python blocks now fork from its warm interpreter", self._name)
            run.started.set_result(None)
        elif kind == b"exit":
            self._runs.pop(key, None)
            oom = int(fields[3]) if len(fields) > 3 else -1
            if not run.exit.done():
                run.exit.set_result(RunEnd(int(fields[2]), None if oom < 0 else oom))

    def _closed(self) -> None:
        self.alive = False
        runs, self._runs = self._runs, {}
        for run in runs.values():
            error = RunnerLost("the sandbox's runner stopped (container stopped or restarted?)", run.started.done())
            for future in (run.started, run.exit):
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: only one of the two is awaited
        for ping in self._pings.values():
            if not ping.done():
                ping.set_exception(RunnerLost("the sandbox's runner stopped", started=False))
                ping.exception()
        self._pings.clear()

    # ------------------------------------------------------------ writing

    def _send(self, *fields: str) -> None:
        if not self.alive:
            raise RunnerLost("the connection to the sandbox's runner is closed", started=False)
        self._writer.write(" ".join(fields).encode() + b"\n")

    async def ping(self) -> int:
        """Check the runner answers; its pid."""
        ping_id = uuid.uuid4().hex
        answer = self._pings[ping_id] = asyncio.get_running_loop().create_future()
        self._send("ping", ping_id)
        try:
            return await timeouts.wait_for(answer, PING_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RunnerLost("the sandbox's runner does not answer", started=False, wedged=True) from None

    async def tidy(self) -> None:
        """Have the runner kill every leftover but the kernels themselves; done when it has."""
        await self._answered("tidy", uuid.uuid4().hex)

    async def settle(self, run_id: str) -> None:
        """Tell the runner the kept run is ready: the processes it has now
        (a bash kernel's shell) are spared by leftover sweeps, as it is."""
        await self._answered("settle", run_id)

    async def _answered(self, request: str, request_id: str) -> None:
        answer = self._pings[request_id] = asyncio.get_running_loop().create_future()
        self._send(request, request_id)
        try:
            await timeouts.wait_for(answer, PING_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RunnerLost("the sandbox's runner does not answer", started=False, wedged=True) from None

    async def memory(self, run_id: str) -> int | None:
        """The resident memory of a run's process, in bytes; None when it is gone."""
        request = uuid.uuid4().hex
        answer = self._pings[request] = asyncio.get_running_loop().create_future()
        self._send("memory", request, run_id)
        try:
            found = await timeouts.wait_for(answer, PING_TIMEOUT_SECONDS)
        except TimeoutError:
            return None
        return found if found >= 0 else None

    def signal(self, run_id: str, signum: int) -> None:
        """Send `signum` to the run's own process (not what it started)."""
        with contextlib.suppress(RunnerLost):
            self._send("signal", run_id, str(signum))

    async def run(
        self, run_id: str, argv: list[str], sink: OutputSink, limit: int, may_fork: bool = True, keep: bool = False,
    ) -> RunEnd:
        """Run `argv` in a fresh process; feed at most `limit` bytes of its output to `sink`; how it ended.
        A `python FILE` may be forked from the runner's warm interpreter unless `may_fork` is false.
        With `keep`, the process (a kernel) outlives other runs' leftover sweeps."""
        state = self._runs[run_id] = _RunState(asyncio.get_running_loop(), sink)
        try:
            packed = base64.b64encode("\0".join(argv).encode("utf-8", "surrogateescape")).decode()
            how = ["keep"] if keep else [] if may_fork else ["spawn"]
            self._send("run", run_id, packed, str(limit), *how)
            try:
                await timeouts.wait_for(asyncio.shield(state.started), STARTED_TIMEOUT_SECONDS)
            except TimeoutError:
                raise RunnerLost(
                    f"the sandbox's runner did not start the block within {STARTED_TIMEOUT_SECONDS:.0f} s",
                    started=False,
                    wedged=True,
                ) from None
            return await state.exit
        finally:
            self._runs.pop(run_id, None)

    async def kill(self, run_id: str) -> None:
        """Ask the runner to kill the run and everything it started."""
        with contextlib.suppress(RunnerLost):
            self._send("kill", run_id)

    def close(self) -> None:
        """Hang up; the runner kills whatever runs of ours are still going."""
        self.alive = False
        self._writer.close()
