"""One workspace's sandbox: its container and the runs of its blocks.

Runs are serialised per workspace (asyncio.Lock is FIFO, so they go in arrival
order and never interleave in the container's files); container lifecycle
changes take a second, short lock so a restart need not wait for a long run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from cellbox import container_scripts
from cellbox.backend import ContainerGone, ContainerInfo, ContainerSpec, DockerBackend
from cellbox.blocks import interpreter_for, prepare_block
from cellbox.config import SandboxConfig, load_config
from cellbox.output import OutputCollector
from cellbox.wire import BlockParams, BlockResult, ExecuteResult, SandboxInfo, SandboxState

log = logging.getLogger(__name__)

LABEL_WORKSPACE = "org.cellbox.workspace"
LABEL_SPEC = "org.cellbox.spec"
TIMEOUT_MESSAGE = "Timeout"
TIMEOUT_EXIT_CODE = 124
KILL_WAIT_SECONDS = 5.0

ProgressFactory = Callable[[str], AbstractAsyncContextManager[Any]]
"""Opens a progress indicator with a title for the duration of a slow step."""


@contextlib.asynccontextmanager
async def no_progress(_title: str):
    yield


def container_name_for(workspace: Path) -> str:
    """A readable, deterministic name: the folder's name plus a hash of its full path."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", workspace.name.lower()).strip("-.")[:30] or "workspace"
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:10]
    return f"cellbox-{slug}-{digest}"


class Sandbox:
    def __init__(self, workspace: Path, backend: DockerBackend, overrides: dict[str, Any]) -> None:
        self.workspace = workspace
        self._backend = backend
        self._overrides = overrides
        self._run_lock = asyncio.Lock()
        self._lifecycle_lock = asyncio.Lock()
        self.started_here = False
        """Whether this daemon created or started the container (and so stops it on shutdown)."""
        self.last_config: SandboxConfig | None = None

    # ------------------------------------------------------------ config

    def config(self) -> SandboxConfig:
        """Read afresh on each request, so edits to cellbox.toml apply without a restart."""
        self.last_config = load_config(self.workspace, self._overrides)
        return self.last_config

    def container_name(self, config: SandboxConfig) -> str:
        return config.container_name or container_name_for(self.workspace)

    def _spec(self, config: SandboxConfig) -> ContainerSpec:
        bind_source = config.bind_dir or str(self.workspace)
        fingerprint = f"{config.image}\0{bind_source}\0{config.network}\0{config.auto_remove}"
        return ContainerSpec(
            name=self.container_name(config),
            image=config.image,
            bind_source=bind_source,
            network=config.network,
            auto_remove=config.auto_remove,
            labels={
                LABEL_WORKSPACE: str(self.workspace),
                LABEL_SPEC: hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
            },
        )

    # --------------------------------------------------------- container

    async def _ensure_container(self, config: SandboxConfig, progress: ProgressFactory) -> ContainerInfo:
        """The running container for this workspace: reused, started, or created."""
        spec = self._spec(config)
        async with self._lifecycle_lock:
            info = await self._backend.find_container(spec.name)
            if info is not None and info.labels.get(LABEL_SPEC) != spec.labels[LABEL_SPEC]:
                # Image, mount or network changed in the config: the old container is stale.
                log.info("replacing %s: its settings changed", spec.name)
                await self._backend.remove_container(spec.name)
                info = None
            if info is None:
                if not await self._backend.has_image(spec.image):
                    async with progress(f"Pulling image {spec.image}"):
                        await self._backend.pull_image(spec.image)
                info = await self._backend.create_container(spec)
                self.started_here = True
            elif info.state != "running":
                info = await self._backend.start_container(spec.name)
                self.started_here = True
            return info

    async def restart(self, progress: ProgressFactory = no_progress) -> SandboxState:
        """Restart the container (files in the workspace stay); create it if there is none."""
        config = self.config()
        name = self.container_name(config)
        async with self._lifecycle_lock:
            info = await self._backend.find_container(name)
            if info is not None and info.state == "running":
                await self._backend.restart_container(name)
                self.started_here = True
                return SandboxState(str(self.workspace), name, "running")
        await self._ensure_container(config, progress)
        return SandboxState(str(self.workspace), name, "running")

    async def stop(self) -> SandboxState:
        config = self.config()
        name = self.container_name(config)
        async with self._lifecycle_lock:
            await self._backend.stop_container(name, removed=config.auto_remove)
        return SandboxState(str(self.workspace), name, "stopped")

    async def info(self) -> SandboxInfo:
        try:
            config = self.config()
        except Exception:
            config = self.last_config or SandboxConfig()
        name = self.container_name(config)
        found = await self._backend.find_container(name)
        state = found.state if found is not None else "absent"
        return SandboxInfo(str(self.workspace), name, state, found.image if found else config.image)

    # -------------------------------------------------------------- runs

    async def execute(
        self,
        blocks: Sequence[BlockParams],
        timeout: float | None = None,
        progress: ProgressFactory = no_progress,
    ) -> ExecuteResult:
        """Save and run `blocks` in order, stopping at the first non-zero exit."""
        started = time.perf_counter()
        config = self.config()
        timeout = config.timeout if timeout is None else timeout
        async with self._run_lock:
            container = await self._ensure_container(config, progress)
            results: list[BlockResult] = []
            files: list[str] = []
            for block in blocks:
                result = await self._execute_block(block, config, container, timeout, progress)
                results.append(result)
                if result.code_file is not None:
                    files.append(result.code_file)
                if result.exit_code != 0:
                    break
        return ExecuteResult(
            exit_code=results[-1].exit_code if results else 0,
            output="".join(r.output for r in results),
            code_file=files[0] if files else None,
            timed_out=any(r.timed_out for r in results),
            duration_ms=_ms_since(started),
            workspace=str(self.workspace),
            container=container.name,
            blocks=results,
        )

    async def _execute_block(
        self,
        block: BlockParams,
        config: SandboxConfig,
        container: ContainerInfo,
        timeout: float,
        progress: ProgressFactory,
    ) -> BlockResult:
        started = time.perf_counter()
        prepared = prepare_block(block.language, block.code, self.workspace, config.execution_policies)
        if prepared.relative_path is None:
            return BlockResult(prepared.language, 1, prepared.refusal or "", None, False, False, _ms_since(started))

        path = self.workspace / prepared.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Lone surrogates can arrive in JSON strings; never let them fail the write.
        path.write_bytes(prepared.code.encode("utf-8", "replace"))
        if not prepared.runs:
            return BlockResult(
                prepared.language, 0, f"Code saved to {path}\n", str(path), False, False, _ms_since(started)
            )

        command = [interpreter_for(prepared.language), prepared.relative_path]
        try:
            exit_code, output, timed_out = await self._run(container, command, timeout)
        except ContainerGone:
            # Stopped or removed from outside since we checked: bring it back once.
            container = await self._ensure_container(config, progress)
            exit_code, output, timed_out = await self._run(container, command, timeout)
        return BlockResult(prepared.language, exit_code, output, str(path), True, timed_out, _ms_since(started))

    async def _run(self, container: ContainerInfo, command: list[str], timeout: float) -> tuple[int, str, bool]:
        """Run one command in the container under the timeout; (exit code, output, timed out)."""
        run_id = uuid.uuid4().hex
        collector = OutputCollector()
        loop = asyncio.get_running_loop()

        def on_output(stream: str, data: bytes) -> None:
            # Called in the exec thread; hop onto the loop so output stays ordered
            # before the exec's own completion, which arrives the same way.
            loop.call_soon_threadsafe(collector.feed, stream, data)

        argv = container_scripts.run_argv(run_id, command)
        execution = asyncio.ensure_future(self._backend.exec_stream(container.id, argv, on_output))
        try:
            exit_code = await asyncio.wait_for(asyncio.shield(execution), timeout)
            return exit_code, collector.text(), False
        except TimeoutError:
            await self._kill(container, run_id, execution)
            return TIMEOUT_EXIT_CODE, collector.text() + "\n" + TIMEOUT_MESSAGE, True
        except asyncio.CancelledError:
            # The request was cancelled (or the daemon is shutting down): the
            # block must not keep running in the container.
            await asyncio.shield(self._kill(container, run_id, execution))
            raise

    async def _kill(self, container: ContainerInfo, run_id: str, execution: asyncio.Future[int]) -> None:
        """Kill every process of a run and wait for its output stream to end."""
        await self._backend.exec_quick(container.id, container_scripts.kill_argv(run_id))
        try:
            await asyncio.wait_for(execution, KILL_WAIT_SECONDS)
        except TimeoutError:
            log.warning("run %s still streaming %.0f s after it was killed", run_id, KILL_WAIT_SECONDS)
        except Exception:
            log.exception("run %s failed after it was killed", run_id)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
