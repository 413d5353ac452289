"""`CellboxCodeExecutor` for AutoGen (`pip install 'cellbox[autogen]'`):
autogen-core's async CodeExecutor, with the constructor of autogen-ext's
DockerCommandLineCodeExecutor for what both have, and serialisable as a
component (`dump_component()` / `load_component()`).

Each run is a request to a cellbox LSP server (lsp/link.py): the project's
daemon when one runs, else a `cellbox serve` of this executor's own, started
by `start()` (or the first run) and ended by `stop()`. The executor's
arguments are that connection's settings (the client's own: trusted). A
CancellationToken cancels the run in the sandbox, and the call raises
asyncio.CancelledError, as the protocol says.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, Self

from autogen_core import CancellationToken, Component
from autogen_core.code_executor import CodeBlock, CodeExecutor
from autogen_ext.code_executors._common import CommandLineCodeResult
from pydantic import BaseModel

from cellbox.integrations.settings import executor_settings
from cellbox.lsp.link import ServerLink, ServerRefused
from cellbox.vocabulary import Command


class CellboxCodeExecutorConfig(BaseModel):
    """CellboxCodeExecutor's arguments, as a component's config."""

    image: str = "python:3-slim"
    container_name: str | None = None
    timeout: int = 60
    work_dir: str | None = None
    bind_dir: str | None = None
    auto_remove: bool = True
    stop_container: bool = True
    execution_policies: dict[str, bool] | None = None


class CellboxCodeExecutor(CodeExecutor, Component[CellboxCodeExecutorConfig]):
    """Runs code blocks in the work_dir's cellbox sandbox."""

    component_config_schema = CellboxCodeExecutorConfig
    component_provider_override = "cellbox.integrations.autogen.CellboxCodeExecutor"

    def __init__(
        self,
        image: str = "python:3-slim",
        container_name: str | None = None,
        timeout: int = 60,
        work_dir: Path | str | None = None,
        bind_dir: Path | str | None = None,
        auto_remove: bool = True,
        stop_container: bool = True,
        execution_policies: dict[str, bool] | None = None,
    ) -> None:
        self._settings = executor_settings(
            image, container_name, timeout, bind_dir, auto_remove, stop_container, execution_policies
        )
        self._image = image
        self._container_name = container_name
        self._timeout = timeout
        self._work_dir = Path(work_dir) if work_dir is not None else Path()
        self._work_dir.mkdir(exist_ok=True, parents=True)  # as autogen-ext's executor does
        self._bind_dir = Path(bind_dir) if bind_dir is not None else None
        self._auto_remove = auto_remove
        self._stop_container = stop_container
        self._execution_policies = execution_policies
        self._link: ServerLink | None = None

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    async def start(self) -> None:
        if self._link is None:
            self._link = ServerLink(self._work_dir.resolve(), "cellbox-autogen", settings=self._settings)

    async def _ask(self, command: str, argument: dict[str, Any]) -> Any:
        await self.start()
        assert self._link is not None
        try:
            return await self._link.command(command, {**argument, "workspace": str(self._link.workspace)})
        except ServerRefused as exc:
            raise ValueError(str(exc)) from None

    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CommandLineCodeResult:
        """Run the blocks in order, stopping at the first that fails; the token cancels the run in the sandbox."""
        if not code_blocks:
            raise ValueError("No code blocks to execute.")
        await self.start()
        assert self._link is not None
        blocks = [{"language": block.language, "code": block.code} for block in code_blocks]
        argument = {"blocks": blocks, "workspace": str(self._link.workspace)}
        run = asyncio.ensure_future(self._link.execute(argument, f"autogen-{uuid.uuid4().hex[:12]}", _ignore))
        cancellation_token.link_future(run)
        try:
            result = await run
        except ServerRefused as exc:
            raise ValueError(str(exc)) from None
        return CommandLineCodeResult(exit_code=result["exitCode"], output=result["output"],
                                     code_file=result.get("codeFile"))

    async def restart(self) -> None:
        """Restart the sandbox (the work_dir's files stay)."""
        await self._ask(Command.RESTART, {})

    async def stop(self) -> None:
        """Stop the sandbox (when stop_container) and let go of the server."""
        link, self._link = self._link, None
        if link is None:
            return
        try:
            if self._stop_container:
                await link.command(Command.STOP, {"workspace": str(link.workspace)})
        except ServerRefused:
            pass
        finally:
            await link.close()

    def _to_config(self) -> CellboxCodeExecutorConfig:
        return CellboxCodeExecutorConfig(
            image=self._image, container_name=self._container_name, timeout=self._timeout,
            work_dir=str(self._work_dir), bind_dir=str(self._bind_dir) if self._bind_dir else None,
            auto_remove=self._auto_remove, stop_container=self._stop_container,
            execution_policies=self._execution_policies,
        )

    @classmethod
    def _from_config(cls, config: CellboxCodeExecutorConfig) -> Self:
        return cls(
            image=config.image, container_name=config.container_name, timeout=config.timeout,
            work_dir=config.work_dir, bind_dir=config.bind_dir, auto_remove=config.auto_remove,
            stop_container=config.stop_container, execution_policies=config.execution_policies,
        )


def _ignore(stream: str, text: str) -> None:
    """A run's streamed output: AutoGen's executor returns it whole, at the end."""
