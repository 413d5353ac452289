"""Running a block with one `docker exec`: the fallback for images without
Python, and the way blocks run in copy mode (workspace_sync/), where the
runner's socket is out of the daemon's reach.

Slower than the warm runner (the exec round trip costs ~50 ms) but needs only
a POSIX shell and grep in the image. Same semantics: a fresh process per
block, the same marker for killing, output fed on the asyncio loop.
"""

from __future__ import annotations

import asyncio

from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import Engine
from cellbox.sandbox.runner_client import OutputSink, RunEnd


class ExecPath:
    def __init__(self, backend: Engine, container_id: str, stamp: str = "", sweep_strays: bool = True) -> None:
        self._backend = backend
        self._container_id = container_id
        self._stamp = stamp
        self._sweep_strays = sweep_strays
        """Kill every process but init and the main one after a run: only where no runner lives."""
        """In copy mode, the file touched before each block (container_scripts.COPY_STAMP)."""

    async def run(self, run_id: str, argv: list[str], sink: OutputSink, limit: int, may_fork: bool = False) -> RunEnd:
        """As RunnerClient.run; here the sink itself enforces `limit`, and every run is spawned."""
        loop = asyncio.get_running_loop()

        def from_thread(stream: str, data: bytes) -> None:
            # Output arrives on the exec's thread; hop onto the loop, where it
            # stays ordered before the exec's completion, which hops the same way.
            loop.call_soon_threadsafe(sink.feed, stream, data)

        argv = container_scripts.run_argv(run_id, argv, self._stamp, self._sweep_strays)
        code = await self._backend.exec_stream(self._container_id, argv, from_thread)
        return RunEnd(code, None)  # no cgroup counter here: the engine's events tell

    async def kill(self, run_id: str) -> None:
        await self._backend.exec_quick(self._container_id, container_scripts.kill_argv(run_id))
