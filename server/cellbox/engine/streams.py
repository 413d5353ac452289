"""A hijacked engine connection carrying a process's multiplexed stdout and
stderr (the OutputStream of protocol.py, for Docker)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from docker.utils.socket import frames_iter

from cellbox import timeouts

log = logging.getLogger(__name__)


class StreamConnection:
    """A hijacked engine connection carrying a process's multiplexed
    stdout/stderr. Reading blocks: `next_line` does it in a thread."""

    def __init__(self, sock: Any, pool: ThreadPoolExecutor | None = None) -> None:
        self._pool = pool
        """Where its blocking reads wait: the engine's stream pool, not the
        loop's default executor, which the daemon's file work shares (a
        read waits as long as the main process is silent)."""
        self._io = sock
        self._raw = getattr(sock, "_sock", sock)  # the real socket
        self._frames = self.frames()
        self._pending = b""

    def frames(self) -> Iterator[tuple[str, bytes]]:
        """("stdout" | "stderr", bytes) as the process writes them, until it ends."""
        try:
            for stream_id, data in frames_iter(self._io, tty=False):
                yield ("stderr" if stream_id == 2 else "stdout"), data
        except (OSError, ValueError):
            return  # closed under us: the same as the end of the stream

    def _next_line(self) -> bytes | None:
        while b"\n" not in self._pending:
            frame = next(self._frames, None)
            if frame is None:
                return None
            stream, data = frame
            if stream == "stdout":
                self._pending += data
            else:
                log.warning("container main process: %s", data.decode("utf-8", "replace").rstrip())
        line, self._pending = self._pending.split(b"\n", 1)
        return line

    async def next_line(self, timeout: float) -> bytes | None:
        """The next line the process writes on stdout; None at its end or after `timeout`."""
        loop = asyncio.get_running_loop()
        try:
            return await timeouts.wait_for(loop.run_in_executor(self._pool, self._next_line), timeout)
        except TimeoutError:
            self.close()  # unblocks the reading thread
            return None

    def close(self) -> None:
        for closer in (lambda: self._raw.shutdown(socket.SHUT_RDWR), self._raw.close, self._io.close):
            try:
                closer()
            except OSError:
                pass
