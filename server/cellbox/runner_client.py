"""The daemon's end of a sandbox's warm runner (see runner.py for the other end).

One RunnerClient per attached container. A reader thread turns the runner's
JSON lines into events on the asyncio loop; `run` sends a request and waits
for the run's "started" and "exit" events, feeding its output in between, in
the order the runner wrote it. Free of docker: it only needs a connection with
send(), frames() and close().
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 15.0
"""How long a runner may take to answer its first ping (Python start-up on a loaded machine)."""
STARTED_TIMEOUT_SECONDS = 5.0
"""How long a healthy runner takes at most to start a process; past it, the runner is wedged."""


class Connection(Protocol):
    def send(self, data: bytes) -> None: ...
    def frames(self): ...
    def close(self) -> None: ...


class RunnerLost(Exception):
    """The runner died, restarted or is wedged.

    `started` says whether the run had begun: a run that had not can be sent
    again; one that had may have left processes behind for the caller to kill.
    """

    def __init__(self, message: str, started: bool) -> None:
        super().__init__(message)
        self.started = started


class _RunState:
    def __init__(self, loop: asyncio.AbstractEventLoop, on_output: Callable[[str, bytes], None]) -> None:
        self.on_output = on_output
        self.started: asyncio.Future[None] = loop.create_future()
        self.exit: asyncio.Future[int] = loop.create_future()


class RunnerClient:
    def __init__(self, connection: Connection, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._connection = connection
        self._loop = loop
        self._name = name
        self._runs: dict[str, _RunState] = {}
        self._pings: dict[str, asyncio.Future[bool]] = {}
        self.alive = True
        """False once the connection ended: the container stopped, or we closed it."""
        self.available: bool | None = None
        """True when a runner answers, False when the image has no Python, None until known."""
        self.pid: int | None = None
        """The runner's pid inside the container."""
        self._reader = threading.Thread(target=self._read, name=f"runner-{name}", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------ reading

    def _read(self) -> None:
        pending = b""
        for stream, data in self._connection.frames():
            if stream == "stderr":  # the runner's own complaints, not a block's output
                log.warning("runner in %s: %s", self._name, data.decode("utf-8", "replace").rstrip())
                continue
            pending += data
            *lines, pending = pending.split(b"\n")
            events = [json.loads(line) for line in lines if line.strip()]
            if events:
                self._loop.call_soon_threadsafe(self._dispatch, events)
        try:
            self._loop.call_soon_threadsafe(self._closed)
        except RuntimeError:
            pass  # the loop is gone: the daemon is exiting

    def _dispatch(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("ev")
            run = self._runs.get(event.get("id", ""))
            if kind == "out" and run is not None:
                run.on_output(event["s"], base64.b64decode(event["b"]))
            elif kind == "started" and run is not None and not run.started.done():
                run.started.set_result(None)
            elif kind == "exit" and run is not None:
                self._runs.pop(event["id"], None)
                if not run.exit.done():
                    run.exit.set_result(event["code"])
            elif kind in ("ready", "pong"):
                if kind == "ready" and self.pid is not None and event.get("pid") != self.pid:
                    # A new runner replaced a dead one: what the old one had is lost.
                    self._fail_runs("the sandbox's runner restarted")
                self.pid = event.get("pid", self.pid)
                self._answer_pings(True)
            elif kind == "unavailable":
                self._answer_pings(False)

    def _answer_pings(self, available: bool) -> None:
        self.available = available
        for future in self._pings.values():
            if not future.done():
                future.set_result(available)
        self._pings.clear()

    def _closed(self) -> None:
        self.alive = False
        self._fail_runs("the sandbox's runner stopped (container stopped or restarted)")
        for future in self._pings.values():
            if not future.done():
                future.set_exception(RunnerLost("the sandbox's main process ended", started=False))
        self._pings.clear()

    def _fail_runs(self, why: str) -> None:
        runs, self._runs = self._runs, {}
        for run in runs.values():
            started = run.started.done()
            error = RunnerLost(why, started=started)
            for future in (run.started, run.exit):
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: only one of the two is awaited

    # ------------------------------------------------------------ writing

    def _send(self, request: dict[str, Any]) -> None:
        try:
            self._connection.send(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            self.alive = False
            raise RunnerLost(f"cannot reach the sandbox's runner: {exc}", started=False) from None

    async def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
        """Whether a runner serves this container (False: no Python in the image)."""
        ping_id = uuid.uuid4().hex
        answer = self._pings[ping_id] = self._loop.create_future()
        self._send({"op": "ping", "id": ping_id})
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise RunnerLost(f"the sandbox's runner did not answer within {timeout:.0f} s", started=False) from None

    async def run(self, run_id: str, argv: list[str], on_output: Callable[[str, bytes], None]) -> int:
        """Run `argv` in a fresh process; feed its output; return its exit code."""
        state = self._runs[run_id] = _RunState(self._loop, on_output)
        try:
            self._send({"op": "run", "id": run_id, "argv": argv})
            try:
                await asyncio.wait_for(asyncio.shield(state.started), STARTED_TIMEOUT_SECONDS)
            except TimeoutError:
                self.close()  # wedged: the sandbox starts a new runner for the next request
                raise RunnerLost("the sandbox's runner did not start the block", started=False) from None
            return await state.exit
        finally:
            self._runs.pop(run_id, None)

    async def kill(self, run_id: str) -> None:
        """Ask the runner to kill the run and everything it started."""
        try:
            self._send({"op": "kill", "id": run_id})
        except RunnerLost:
            pass  # the caller falls back to killing by marker with docker exec

    def close(self) -> None:
        self.alive = False
        self._connection.close()
