"""The daemon's end of a sandbox's warm runner (see runner.py for the other end).

One RunnerClient per connection to a container's runner, over the Unix socket
the runner keeps in the workspace. A reader task turns the runner's JSON lines
into events; `run` sends a request and waits for the run's "started" and
"exit" events, feeding its output in between, in the order the runner wrote
it. Pure asyncio: no docker, no threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

STARTED_TIMEOUT_SECONDS = 5.0
"""How long a healthy runner takes at most to start a process; past it, the runner is wedged."""
PING_TIMEOUT_SECONDS = 5.0
STREAM_LIMIT = 16 * 1024 * 1024
"""Longest line the runner may send: a 64 KiB output chunk is ~88 KiB of base64."""
STREAMS = {b"1": "stdout", b"2": "stderr"}


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


class OutputSink(Protocol):
    def feed(self, stream: str, data: bytes) -> object: ...
    def cut(self) -> None: ...


class _RunState:
    def __init__(self, loop: asyncio.AbstractEventLoop, sink: OutputSink) -> None:
        self.sink = sink
        self.started: asyncio.Future[None] = loop.create_future()
        self.exit: asyncio.Future[int] = loop.create_future()


async def connect_unix(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a Unix socket whatever the length of its path.

    sun_path holds 108 bytes and workspaces can be deeper than that, so we go
    through /proc/self/fd of the socket's folder, a short path to the same place.
    """
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{folder}/{path.name}", limit=STREAM_LIMIT)
    finally:
        os.close(folder)


class RunnerClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name
        self._runs: dict[str, _RunState] = {}
        self._pings: dict[str, asyncio.Future[int]] = {}
        self.alive = True
        """False once the connection ended: the runner died, or we closed it."""
        self.pid: int | None = None
        """The runner's pid inside the container, from its answer to a ping."""
        self._reading = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, socket_path: Path, name: str) -> RunnerClient:
        """Connect and check the runner answers; OSError or RunnerLost if not."""
        reader, writer = await connect_unix(socket_path)
        client = cls(reader, writer, name)
        try:
            await client.ping()
        except BaseException:
            client.close()
            raise
        return client

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
        run = self._runs.get(key)
        if run is None:
            return
        if kind == b"out":
            run.sink.feed(STREAMS[fields[2]], base64.b64decode(fields[3]))
        elif kind == b"cut":
            run.sink.cut()
        elif kind == b"started" and not run.started.done():
            run.started.set_result(None)
        elif kind == b"exit":
            self._runs.pop(key, None)
            if not run.exit.done():
                run.exit.set_result(int(fields[2]))

    def _closed(self) -> None:
        self.alive = False
        runs, self._runs = self._runs, {}
        for run in runs.values():
            error = RunnerLost("the sandbox's runner stopped (container stopped or restarted?)", run.started.done())
            for future in (run.started, run.exit):
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: only one of the two is awaited
        for future in self._pings.values():
            if not future.done():
                future.set_exception(RunnerLost("the sandbox's runner stopped", started=False))
                future.exception()
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
            return await asyncio.wait_for(answer, PING_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RunnerLost("the sandbox's runner does not answer", started=False, wedged=True) from None

    async def run(self, run_id: str, argv: list[str], sink: OutputSink, limit: int) -> int:
        """Run `argv` in a fresh process; feed at most `limit` bytes of its output to `sink`; its exit code."""
        state = self._runs[run_id] = _RunState(asyncio.get_running_loop(), sink)
        try:
            packed = base64.b64encode("\0".join(argv).encode("utf-8", "surrogateescape")).decode()
            self._send("run", run_id, packed, str(limit))
            try:
                await asyncio.wait_for(asyncio.shield(state.started), STARTED_TIMEOUT_SECONDS)
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
