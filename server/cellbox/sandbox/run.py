"""Running one block in an attached container: saving its file, running it
until it ends, its timeout or a cancel, killing whatever of it is left, and
telling why it ended (the status the user sees)."""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from cellbox import safe_files, timeouts
from cellbox.engine.protocol import Engine
from cellbox.errors import SandboxFailed
from cellbox.languages import normalize_language
from cellbox.sandbox.attach import Attached
from cellbox.sandbox.displays import bundle_from_json, keep_display
from cellbox.sandbox.exec_path import ExecPath
from cellbox.sandbox.output import OutputCollector
from cellbox.sandbox.prepare import VCS_FOLDERS, PreparedBlock
from cellbox.sandbox.request import BlockToRun
from cellbox.sandbox.runner_client import RunEnd, RunnerClient, RunnerLost
from cellbox.sandbox.tracebacks import BlockPlaces, PlaceRewriter
from cellbox.sandbox.workspace_sync import WorkspaceSync
from cellbox.vocabulary import (
    CANCELLED_EXIT_CODE,
    KILLED_EXIT_CODE,
    OUTPUT_LIMIT_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
    Status,
)
from cellbox.wire import DisplayOutput, SkippedBlock

log = logging.getLogger(__name__)

TIMEOUT_MESSAGE = "Timeout"
CANCELLED_MESSAGE = "Cancelled"
KILL_WAIT_SECONDS = 5.0
OOM_EVENT_WAIT_SECONDS = 2.0
"""Without the cgroup's counter (docker-exec runs), how long the engine's oom
event may take to show after a SIGKILL: under load it trails the exit."""

OnOutput = Callable[[str, str], None]
OnDisplay = Callable[[DisplayOutput], None]


@attrs.frozen
class RunOutcome:
    """How one block's process ended, before it is told as a BlockResult."""

    exit_code: int
    output: str
    truncated: bool
    started_at: float
    """Unix time the run began (to ask the engine what happened since)."""
    timed_out: bool = False
    cancelled: bool = False
    interrupted: bool = False
    """The container stopped or restarted under it."""
    oom_kills: int | None = None
    """Processes the memory limit killed during the run; None when unknown."""
    original_output: str | None = None
    """The output as the block wrote it, when `output` names its places otherwise (tracebacks.py)."""
    displays: tuple[DisplayOutput, ...] = ()
    """Rich outputs it showed (matplotlib figures), in order."""

    def with_note(self, note: str) -> RunOutcome:
        """The outcome with `note` at the end of its output."""
        original = None if self.original_output is None else self.original_output + note
        return attrs.evolve(self, output=self.output + note, original_output=original)


class BlockNotSaved(Exception):
    """The block's file could not be written; the message is for the user."""


async def save_block(prepared: PreparedBlock, folder: Path, owner: tuple[int, int] | None) -> tuple[Path, bytes]:
    """Write the block's file under `folder`, where nothing planted there can
    send the write elsewhere; its path and content."""
    data = prepared.code.encode("utf-8", "replace")  # lone surrogates can arrive in JSON strings
    assert prepared.relative_path is not None
    try:
        forbidden = () if prepared.generated else VCS_FOLDERS
        await asyncio.to_thread(safe_files.write_regular, folder, prepared.relative_path, data, owner, forbidden)
    except safe_files.RefusedFile as exc:
        log.info("refused to write %s in %s: %s", prepared.relative_path, folder, exc)
        # The seed's words for a path that leads out of the workspace.
        raise BlockNotSaved("Filename is not in the workspace" if exc.outside else f"Filename is not valid: {exc}") from None
    except OSError as exc:
        raise BlockNotSaved(f"Filename is not valid: {prepared.relative_path}: {exc.strerror}\n") from None
    return folder / prepared.relative_path, data


class _Sink:
    """Where a run's output goes: its text to the collector, its rich outputs
    (matplotlib figures, from the runner) kept and heard as they come."""

    def __init__(self, collector: OutputCollector, outputs: Path | None, name: str, on_display: OnDisplay) -> None:
        self.collector = collector
        self.feed = collector.feed
        self.cut = collector.cut
        self._outputs = outputs
        self._name = name
        self._on_display = on_display
        self.displays: list[DisplayOutput] = []

    def display(self, line: bytes) -> None:
        bundle = bundle_from_json(line)
        if bundle is None or self._outputs is None:
            return
        shown = keep_display(self._outputs, f"{self._name}-{len(self.displays)}", bundle)
        self.displays.append(shown)
        self._on_display(shown)


async def run_command(
    attached: Attached, command: list[str], timeout: float, limit: int, cancelled: asyncio.Event, on_output: OnOutput,
    places: BlockPlaces, outputs: Path | None = None, on_display: OnDisplay = lambda shown: None,
    may_fork: bool = True,
) -> RunOutcome:
    """Run one command until it ends, the timeout, or `cancelled`; keep at most
    `limit` bytes of output, where the block's file is named as `places` says.
    Its rich outputs are saved under `outputs` and heard by `on_display`. A
    Python block may be forked from the warm interpreter unless `may_fork` is false."""
    run_id = uuid.uuid4().hex
    rewriter = PlaceRewriter(places, on_output)
    collector = OutputCollector(limit, rewriter.feed)
    sink = _Sink(collector, outputs, f"script-{run_id[:8]}", on_display)
    runner = attached.block_runner
    started_at = time.time()
    execution = asyncio.ensure_future(runner.run(run_id, command, sink, limit, may_fork))
    cancel_wait = asyncio.ensure_future(cancelled.wait())

    def outcome(exit_code: int, **how: Any) -> RunOutcome:
        output, original = rewriter.finish(collector.text())
        return RunOutcome(
            exit_code, output, collector.truncated, started_at, original_output=original,
            displays=tuple(sink.displays), **how,
        )

    try:
        done, _ = await asyncio.wait({execution, cancel_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if execution in done:
            end: RunEnd = execution.result()
            return outcome(end.code, oom_kills=end.oom_kills)
        await _kill(attached, runner, run_id, execution)
        if cancel_wait in done:
            return outcome(CANCELLED_EXIT_CODE, cancelled=True).with_note("\n" + CANCELLED_MESSAGE)
        return outcome(TIMEOUT_EXIT_CODE, timed_out=True).with_note("\n" + TIMEOUT_MESSAGE)
    except RunnerLost as lost:
        if not lost.started:
            raise
        # The runner went away mid-run: make sure nothing of the run is left.
        await attached.exec_path.kill(run_id)
        return outcome(KILLED_EXIT_CODE, interrupted=True)
    except asyncio.CancelledError:
        # The request's task was cancelled (the daemon is shutting down):
        # the block must not keep running in the container.
        await asyncio.shield(_kill(attached, runner, run_id, execution))
        raise
    finally:
        cancel_wait.cancel()


async def _kill(
    attached: Attached, runner: RunnerClient | ExecPath, run_id: str, execution: asyncio.Future[RunEnd]
) -> None:
    """Kill every process of a run and wait for its output to end."""
    await runner.kill(run_id)
    try:
        await timeouts.wait_for(execution, KILL_WAIT_SECONDS)
        return
    except TimeoutError:
        log.warning("run %s still going %.0f s after it was killed", run_id, KILL_WAIT_SECONDS)
    except Exception as exc:  # the runner died meanwhile
        log.info("run %s ended badly after it was killed: %s", run_id, exc)
    if runner is not attached.exec_path:
        await attached.exec_path.kill(run_id)  # by marker, without the runner


def status_of(outcome: RunOutcome) -> Status | None:
    """Why a run ended, as the user should hear it; None for a SIGKILL nobody
    explains, which only the engine's oom events can tell (status_from_engine)."""
    if outcome.timed_out:
        return Status.TIMEOUT
    if outcome.cancelled:
        return Status.CANCELLED
    if outcome.exit_code == 0:
        return Status.OK
    if outcome.exit_code == OUTPUT_LIMIT_EXIT_CODE:
        return Status.OUTPUT_LIMIT  # the file size limit ended it
    if outcome.oom_kills is not None:
        # The container's own cgroup counted the memory limit's kills
        # during the run (the runner reads it): no race with the engine.
        return Status.OOM if outcome.oom_kills > 0 else Status.ERROR
    if outcome.exit_code == KILLED_EXIT_CODE and not outcome.interrupted:
        return None
    return Status.ERROR


def killed(outcome: RunOutcome) -> bool:
    """Whether something outside the block ended it: a signal, or its runner
    going away; not the block's own exit, its timeout or a cancel."""
    if outcome.timed_out or outcome.cancelled:
        return False
    return outcome.interrupted or outcome.exit_code > 128


def interrupted_note(what: str) -> str:
    """The line that ends the output of a block the sandbox's restart or stop ended."""
    return f"\ncellbox: the sandbox was {what} while this block ran, which ended it\n"


async def status_from_engine(engine: Engine, container_id: str, outcome: RunOutcome) -> Status:
    """Killed, not by us: the memory limit is the usual killer. The engine's
    event can trail the exit under load: wait a little for it."""
    deadline = time.monotonic() + OOM_EVENT_WAIT_SECONDS
    while True:
        if await engine.oom_killed_since(container_id, outcome.started_at - 1):
            return Status.OOM
        if time.monotonic() > deadline:
            return Status.ERROR
        await asyncio.sleep(0.2)


async def copy_back(sync: WorkspaceSync, outcome: RunOutcome, on_output: OnOutput) -> RunOutcome:
    """Copy mode: bring what the run made back into the workspace. A
    failure here is told in the block's output, not lost with its result."""
    try:
        note = await sync.pull()
    except SandboxFailed as exc:
        log.warning("copying back from container %.12s failed: %s", sync.container_id, exc)
        note = f"\ncellbox: the files this run made could not be copied back: {exc}\n"
    if not note:
        return outcome
    on_output("stderr", note)
    return outcome.with_note(note)


def one_file_tar(name: str, data: bytes) -> bytes:
    """A tar holding one file readable by everyone (copy mode's block files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, time.time()
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def skipped_blocks(blocks: Sequence[BlockToRun], ran: int) -> list[SkippedBlock]:
    """The blocks of a request that never started: a failure stopped the run before them."""
    return [
        SkippedBlock(index, block.number, normalize_language(block.language), block.range, block.extent)
        for index, block in enumerate(blocks) if index >= ran
    ]
