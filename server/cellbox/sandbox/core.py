"""One workspace's sandbox, as requests see it: its settings, its queue of
runs, and the runs of its blocks. The container itself is attach.py's, the
spec it is made from spec.py's, and one block's run run.py's.

Runs are serialised per workspace (asyncio.Lock is FIFO, so they go in arrival
order and never interleave in the container's files); container lifecycle
changes take a second, short lock (attach.py) so a restart need not wait for a
long run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import ContainerGone, Engine
from cellbox.errors import InvalidParams, SandboxFailed
from cellbox.languages import KNOWN_LANGUAGES, normalize_language
from cellbox.sandbox import environment, run, state
from cellbox.sandbox import spec as specs
from cellbox.sandbox.attach import Attacher
from cellbox.sandbox.environment import Environments, offline_pip_note
from cellbox.sandbox.places import block_places
from cellbox.sandbox.prepare import interpreter_for, prepare_block
from cellbox.sandbox.request import BlockToRun, Place, ProgressFactory, RunListener, SettingsGate, no_progress
from cellbox.sandbox.runner_client import RunnerLost
from cellbox.sandbox.sessions import Sessions, SessionUnavailable
from cellbox.settings import trust
from cellbox.settings.schema import SandboxConfig
from cellbox.settings.sources import ResolvedConfig, approval_question, resolve_config
from cellbox.vocabulary import CANCELLED_EXIT_CODE, ContainerState, Status
from cellbox.wire import BlockResult, ExecuteResult, SandboxInfo, SandboxState

log = logging.getLogger(__name__)

class Sandbox:
    def __init__(
        self, workspace: Path, backend: Engine, overrides: dict[str, Any],
        workspace_settings: dict[str, Any] | None = None,
    ) -> None:
        self.workspace = workspace
        self._engine = backend
        self._overrides = overrides
        self._workspace_settings = workspace_settings
        """Settings the client read from the workspace (e.g. .vscode/settings.json): untrusted."""
        self._run_lock = asyncio.Lock()
        self._container = Attacher(workspace, backend)
        self._sessions = Sessions()
        self._environments = Environments(backend)
        self._environment_noted = ""
        self._packages_owner: tuple[int, int] | None = None
        self.last_resolved: ResolvedConfig | None = None

    @property
    def started_here(self) -> bool:
        """Whether this daemon created or started the container (and so stops it on shutdown)."""
        return self._container.started_here

    @property
    def last_config(self) -> SandboxConfig | None:
        return self.last_resolved.config if self.last_resolved is not None else None

    async def config(self, gate: SettingsGate | None = None) -> SandboxConfig:
        """Read afresh on each request, so edits to cellbox.toml apply without a
        restart, and so that a file a block rewrote loses its approval at once.
        Loosening settings of an unapproved workspace file are put to `gate`."""
        resolve = functools.partial(resolve_config, self.workspace, self._overrides, self._workspace_settings)
        resolved = await asyncio.to_thread(resolve)
        if resolved.unapproved and gate is not None:
            if await gate.approve(approval_question(resolved, self.workspace)):
                # The content shown is what gets approved: if the file changed
                # meanwhile, its new content is not.
                for file in resolved.unapproved:
                    await asyncio.to_thread(trust.approve, file.path, file.digest)
                resolved = await asyncio.to_thread(resolve)
        if resolved.ignored:
            (gate or SettingsGate()).warn(resolved.ignored_message(self.workspace))
        self.last_resolved = resolved
        self._container.image_trusted = resolved.image_trusted
        return resolved.config

    def take_place(self) -> Place:
        """This request's place among the workspace's runs, in arrival order
        (call it before the request awaits anything)."""
        return Place(self._run_lock)

    async def state(self) -> state.WorkspaceState:
        """The daemon's own folder for this workspace (made on first use, and
        again when it was removed: a test wiping its temporary home)."""
        current = self._container.state
        if current is None or not current.intact:
            if current is not None:
                # Its kernels' folders went with it. The runner's socket is
                # made again by the next attach (RunnerListener.open), and the
                # container replaced: it binds the removed folders (spec.py).
                log.warning("%s: the daemon's folder for this workspace was removed; making it again", self.workspace)
                self._sessions.close_all()
                self._packages_owner = None
            current = self._container.state = await asyncio.to_thread(state.WorkspaceState.of, self.workspace)
        return current

    @property
    def container(self) -> Attacher:
        return self._container

    def close(self) -> None:
        """Let go of the container (it keeps running; its session kernels end with this daemon's runner)."""
        self._sessions.close_all()
        self._container.close()

    # --------------------------------------------------------- lifecycle

    async def prewarm(self) -> None:
        """Bring the container up before the first run asks for it (an editor
        just named this workspace), by the path an execute takes: the same
        settings, read and weighed the same way, with no one to approve a
        workspace file, so nothing unapproved loosens the sandbox; a run that
        approves one then finds the container stale and replaces it. No slow
        step without a client to show it: no pull, no environment build. Never
        raises: the first run meets any failure again and reports it."""
        try:
            config = await self.config()
            if config.environment is not None:
                return  # its build (or cache check) is the first run's, under progress
            await self.state()
            await self._give_packages(config)
            await self._container.ensure(config, _no_slow_steps)
        except _SlowStep as step:
            log.info("%s: not started before the first run: it needs a slow step (%s)", self.workspace, step)
        except Exception as exc:  # noqa: BLE001 - the first run reports it
            log.info("%s: not started before the first run: %s", self.workspace, exc)

    async def restart(
        self, progress: ProgressFactory = no_progress, gate: SettingsGate | None = None, session: str | None = None
    ) -> SandboxState:
        """Restart the container (files in the workspace stay); create it if
        there is none. With `session`, restart only that session's kernel."""
        config = await self.config(gate)
        await self.state()
        if session is not None:
            attached = self._container.current
            if not await self._sessions.restart(session, attached.runner if attached is not None else None):
                known = ", ".join(self._sessions.names()) or "none yet"
                raise InvalidParams(f"session: there is no session named {session!r} in this sandbox (sessions: {known})")
        else:
            self._environments.forget()  # the base image may have been rebuilt meanwhile
            config = await self._with_environment(config, progress)
            self._sessions.close_all()
            await self._container.restart(config, progress)
        return SandboxState(str(self.workspace), specs.container_name(self.workspace, config), ContainerState.RUNNING)

    async def stop(self, gate: SettingsGate | None = None) -> SandboxState:
        config = await self.config(gate)
        self._sessions.close_all()
        await self._container.stop(config)
        return SandboxState(str(self.workspace), specs.container_name(self.workspace, config), ContainerState.STOPPED)

    async def info(self) -> SandboxInfo:
        try:
            config = await self.config()
        except Exception:
            config = self.last_config or SandboxConfig()
        found = await self._container.info(config)
        found.sessions = await self._sessions.infos()
        return found

    async def _give_packages(self, config: SandboxConfig) -> None:
        """The user site (state.packages) belongs to the sandbox's user, who installs there."""
        owner = specs.owner_for(self.workspace, config)
        if owner != self._packages_owner:
            workspace_state = await self.state()
            await asyncio.to_thread(workspace_state.give_packages, owner)
            self._packages_owner = owner

    async def _with_environment(self, config: SandboxConfig, progress: ProgressFactory) -> SandboxConfig:
        """`config` with the image its declared environment builds to (built
        now if need be), or as it is when it declares none."""
        if config.environment is None:
            return config
        workspace_state = await self.state()
        image = await self._environments.image_for(
            self.workspace, config.environment, config.image, progress,
            functools.partial(self._container.pull, config.image, progress), workspace_state.environment_log,
        )
        if image != self._environment_noted:
            # What `cellbox env prune` keeps.
            await asyncio.to_thread(environment.record, workspace_state.root, self.workspace, image)
            self._environment_noted = image
        return attrs.evolve(config, image=image)

    # -------------------------------------------------------------- runs

    async def execute(
        self,
        blocks: Sequence[BlockToRun],
        timeout: float | None = None,
        progress: ProgressFactory = no_progress,
        cancelled: asyncio.Event | None = None,
        listener: RunListener | None = None,
        run_id: str = "",
        gate: SettingsGate | None = None,
        place: Place | None = None,
        session: str | None = None,
    ) -> ExecuteResult:
        """Save and run `blocks` in order, stopping at the first non-zero exit,
        or when `cancelled` is set (the block running then is killed). The
        listener hears each block start and its output as it comes."""
        cancelled = cancelled or asyncio.Event()
        listener = listener or RunListener()
        started = time.perf_counter()
        place = place or self.take_place()
        try:
            await place.wait()
            config = await self._with_environment(await self.config(gate), progress)
            await self._give_packages(config)
            timeout = config.timeout if timeout is None else timeout
            results: list[BlockResult] = []
            for index, block in enumerate(blocks):
                listener.block_started(index, block)
                on_output = functools.partial(listener.output, index)
                on_display = functools.partial(listener.display, index)
                if session_name := self._session_for(block, config, session):
                    result = await self._execute_in_session(
                        index, session_name, block, config, timeout, progress, cancelled, on_output, on_display
                    )
                else:
                    result = await self._execute_block(
                        index, block, config, timeout, progress, cancelled, on_output, on_display
                    )
                results.append(result)
                if result.exit_code != 0:
                    break
        finally:
            place.leave()
        files = [r.code_file for r in results if r.code_file is not None]
        return ExecuteResult(
            exit_code=results[-1].exit_code if results else 0,
            output="".join(r.output for r in results),
            code_file=files[0] if files else None,
            timed_out=any(r.timed_out for r in results),
            duration_ms=_ms_since(started),
            workspace=str(self.workspace),
            container=specs.container_name(self.workspace, config),
            blocks=results,
            skipped=run.skipped_blocks(blocks, len(results)),
            status=results[-1].status,
            truncated=any(r.truncated for r in results),
            run_id=run_id,
        )

    async def _execute_block(
        self, index: int, block: BlockToRun, config: SandboxConfig, timeout: float, progress: ProgressFactory,
        cancelled: asyncio.Event, on_output: run.OnOutput, on_display: run.OnDisplay = lambda shown: None,
    ) -> BlockResult:
        started = time.perf_counter()
        prepared = prepare_block(block.language, block.code, self.workspace, config.execution_policies)
        workspace_state = await self.state()

        def result(outcome: run.RunOutcome, code_file: str | None, status: str, executed: bool = True) -> BlockResult:
            return BlockResult(
                prepared.language, outcome.exit_code, outcome.output, code_file, executed=executed,
                timed_out=outcome.timed_out, duration_ms=_ms_since(started), status=status,
                truncated=outcome.truncated, range=block.range, extent=block.extent, block_number=block.number,
                original_output=outcome.original_output, displays=list(outcome.displays),
            )

        def not_run(exit_code: int, output: str, code_file: str | None = None, status: str = Status.NOT_EXECUTED) -> BlockResult:
            if status == Status.NOT_EXECUTED:  # why it did not run, shown where its output would be
                on_output("stdout" if exit_code == 0 else "stderr", output)
            return result(run.RunOutcome(exit_code, output, False, 0.0), code_file, status, executed=False)

        if cancelled.is_set():  # cancelled while waiting for its turn
            return not_run(CANCELLED_EXIT_CODE, run.CANCELLED_MESSAGE, status=Status.CANCELLED)
        if prepared.relative_path is None:
            return not_run(1, prepared.refusal or "")
        # A block the user did not name goes to the daemon's own folder, out of
        # the sandbox's reach (read-only inside); a named one into the workspace.
        folder = workspace_state.blocks if prepared.generated else self.workspace
        owner = None if prepared.generated else specs.owner_for(self.workspace, config)
        try:
            path, data = await run.save_block(prepared, folder, owner)
        except run.BlockNotSaved as refused:
            return not_run(1, str(refused))
        if not prepared.runs:
            return not_run(0, f"Code saved to {path}\n{prepared.saved_note}", str(path))

        # The container is made or checked only now: a request whose blocks are
        # all refused or only saved needs none.
        in_container = (
            f"{container_scripts.BLOCKS_DIR}/{prepared.relative_path}" if prepared.generated else prepared.relative_path
        )
        command = [interpreter_for(prepared.language), in_container]
        places = block_places(self.workspace, index, block, prepared.relative_path, prepared.generated)
        for attempt in (1, 2):
            attached = await self._container.ensure(config, progress)
            interruptions = self._container.interruptions
            try:
                if attached.sync is not None:  # copy mode: the block's file and what changed go in first
                    if prepared.generated:
                        tar = run.one_file_tar(prepared.relative_path, data)
                        await self._engine.put_archive(attached.container.id, container_scripts.BLOCKS_DIR, tar)
                        await attached.sync.push()
                    else:
                        await attached.sync.push(extra=[prepared.relative_path])
                outcome = await run.run_command(
                    attached, command, timeout, config.output_limit, cancelled, on_output, places,
                    workspace_state.outputs, on_display, config.warm_python,
                )
                break
            except (ContainerGone, RunnerLost) as lost:
                # The block never started: the container went away or the
                # runner died or wedged since we last looked. Bring it back once.
                log.warning("retrying a block in %s: %s", self.workspace, lost)
                await self._container.recover(attached, wedged=isinstance(lost, RunnerLost) and lost.wedged)
                if attempt == 2:
                    raise SandboxFailed(f"The sandbox could not run the block: {lost}") from None
        if attached.sync is not None:
            outcome = await run.copy_back(attached.sync, outcome, on_output)
        status = run.status_of(outcome)
        if self._container.interruptions != interruptions and run.killed(outcome):
            # The user restarted or stopped the sandbox under the block: say
            # so, where they read the output, rather than "exit 137".
            note = run.interrupted_note(self._container.last_interruption)
            on_output("stderr", note)
            outcome, status = outcome.with_note(note), Status.INTERRUPTED
        elif status is None:
            status = await run.status_from_engine(self._engine, attached.container.id, outcome)
        if outcome.exit_code != 0 and (note := offline_pip_note(block.code, outcome.output, config.network)):
            on_output("stderr", note)
            outcome = outcome.with_note(note)
        return result(outcome, str(path), status)

    # ----------------------------------------------------------- sessions

    def _session_for(self, block: BlockToRun, config: SandboxConfig, session: str | None) -> str:
        """The session a block runs in ("" to run it as a script): blocks of a
        language with a kernel (`kernels`), in session mode or when the request
        names a session; a language that only a kernel runs (r), always. A
        document's blocks share one session, named by the document's path."""
        language = normalize_language(block.language)
        if language not in config.kernels:
            return ""
        if language in KNOWN_LANGUAGES and (
            (session is None and config.mode != "session") or not config.execution_policies.get(language, False)
        ):
            return ""
        return session or (str(block.document) if block.document is not None else "default")

    async def _execute_in_session(
        self, index: int, name: str, block: BlockToRun, config: SandboxConfig, timeout: float,
        progress: ProgressFactory, cancelled: asyncio.Event, on_output: run.OnOutput, on_display: run.OnDisplay,
    ) -> BlockResult:
        started = time.perf_counter()
        language = normalize_language(block.language)
        code, code_file, named = block.code, None, None
        if language in KNOWN_LANGUAGES:
            prepared = prepare_block(block.language, block.code, self.workspace, config.execution_policies)
            if prepared.relative_path is None or not prepared.runs:
                # Refused (a name outside the workspace...): said as a script would say it.
                return await self._execute_block(index, block, config, timeout, progress, cancelled, on_output)
            code, named = prepared.code, (None if prepared.generated else prepared)
        if cancelled.is_set():
            return BlockResult(
                language, CANCELLED_EXIT_CODE, run.CANCELLED_MESSAGE, None, executed=False, timed_out=False,
                duration_ms=0.0, status=Status.CANCELLED, truncated=False, range=block.range, extent=block.extent,
                block_number=block.number, original_output=None, session=name,
            )
        workspace_state = await self.state()
        owner = specs.owner_for(self.workspace, config)
        if named is not None:
            # A block that names its file (`# filename: app.py`) still writes it, as in script mode.
            try:
                path, _ = await run.save_block(named, self.workspace, owner)
            except run.BlockNotSaved:  # said as a script would say it
                return await self._execute_block(index, block, config, timeout, progress, cancelled, on_output)
            code_file = str(path)
        attached = await self._container.ensure(config, progress)
        if attached.runner is None:
            raise SessionUnavailable(
                "Session mode needs the sandbox's warm runner, which this sandbox has not: its image has no "
                'Python, or the workspace reaches it by copy (a remote engine). Use mode = "script" here.'
            )
        interruptions = self._container.interruptions
        session = await self._sessions.ready(
            name, language, config.kernels[language], attached.runner, workspace_state.kernels, owner,
            workspace_state.outputs, progress,
        )
        # A traceback's "Cell In [3], line 12" names the document's line 12.
        first_line = block.range.start.line if block.range is not None else 0
        outcome = await session.execute(
            code, first_line, timeout, config.output_limit, cancelled, on_output, on_display
        )
        status = outcome.status
        output = outcome.output
        if self._container.interruptions != interruptions and outcome.state_lost:
            note = run.interrupted_note(self._container.last_interruption)
            on_output("stderr", note)
            output, status = output + note, Status.INTERRUPTED
        return BlockResult(
            language, outcome.exit_code, output, code_file, executed=True, timed_out=outcome.timed_out,
            duration_ms=_ms_since(started), status=status, truncated=outcome.truncated, range=block.range,
            extent=block.extent, block_number=block.number, original_output=None, state_lost=outcome.state_lost,
            displays=outcome.displays, session=name,
        )


class _SlowStep(Exception):
    """A prewarm reached a step that shows progress (a pull): left to the first run."""


@contextlib.asynccontextmanager
async def _no_slow_steps(title: str) -> AsyncIterator[None]:
    raise _SlowStep(title)
    yield None  # an async generator, as a progress factory is


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
