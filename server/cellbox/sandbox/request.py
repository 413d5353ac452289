"""What a request hands the sandbox: its blocks, its place in the workspace's
queue, who hears the run as it goes, who approves settings, and how slow steps
show progress. Plain types: the LSP server and the CLI's future front ends
fill them in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs

from cellbox.wire import DisplayOutput, Range

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str], AbstractAsyncContextManager[Any]]
"""Opens a progress indicator with a title for the duration of a slow step;
it yields a function that reports how far the step is ("step 3/5: ..."), or None."""


@contextlib.asynccontextmanager
async def no_progress(_title: str) -> AsyncIterator[None]:
    yield None


@attrs.frozen
class BlockToRun:
    """A block as the sandbox runs it: given as text, or found in a document."""

    language: str
    code: str
    range: Range | None = None
    """Where its code is in its document, when it comes from one."""
    extent: Range | None = None
    """The whole block in its document, fence lines or cell marker included."""
    number: int | None = None
    """Its number among its document's runnable blocks, from 1; None for a
    block given as text or a selection."""
    document: Path | None = None
    """The document it comes from, when it comes from one: its output names
    the document and its lines instead of the file the sandbox ran."""


class RunListener:
    """Hears a run as it goes; the server streams what it hears to the client."""

    def block_started(self, index: int, block: BlockToRun) -> None:
        pass

    def output(self, index: int, stream: str, text: str) -> None:
        pass

    def display(self, index: int, output: DisplayOutput) -> None:
        """A rich output (a plot, a table) of the block at `index`, as it comes."""


class Place:
    """A request's place in its workspace's queue of runs, taken when it
    arrives: later awaits (reading a document, the settings) cannot let a later
    request overtake it. asyncio.Lock wakes its waiters in the order they began
    to wait, and a task begins in the order it was made."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._acquiring = asyncio.ensure_future(lock.acquire())
        self._left = False

    async def wait(self) -> None:
        await asyncio.shield(self._acquiring)

    def leave(self) -> None:
        """Give the place up, whether its turn came or not (idempotent)."""
        if self._left:
            return
        self._left = True
        if not self._acquiring.done():
            self._acquiring.cancel()  # the lock forgets a cancelled waiter
        elif not self._acquiring.cancelled() and self._acquiring.exception() is None:
            self._lock.release()


class SettingsGate:
    """The person behind a request: asked to approve a workspace file's
    settings that loosen the sandbox, and told which were left out. The
    default approves nothing and tells no one."""

    async def approve(self, question: str) -> bool:
        return False

    def warn(self, message: str) -> None:
        log.warning("%s", message)
