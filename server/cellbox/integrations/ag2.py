"""`CellboxCodeExecutor` for AG2 (`pip install 'cellbox[ag2]'`): AG2's
CodeExecutor protocol, with the constructor of its
DockerCommandLineCodeExecutor, so that switching is a one-line import change.

Each call is a request to a cellbox LSP server through the light JSON-RPC
client of the command line: the project's daemon when one runs (the agent's
blocks run in the editor's container, warm), else a `cellbox serve` of this
executor's own. The executor's arguments are that connection's settings
(initializationOptions: the client's own, so trusted, as an editor's are).
Nothing is started until the first block runs: creating an executor is free.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from autogen.coding.base import CodeBlock, CodeExtractor, CommandLineCodeResult
from autogen.coding.markdown_code_extractor import MarkdownCodeExtractor

from cellbox.cli.rpc_client import RpcError, Session
from cellbox.integrations.settings import executor_settings
from cellbox.languages import DEFAULT_EXECUTION_POLICIES, LANGUAGE_ALIASES
from cellbox.vocabulary import Command


class CellboxCodeExecutor:
    """(AG2's CodeExecutor) Runs code blocks in the work_dir's cellbox sandbox."""

    DEFAULT_EXECUTION_POLICY: dict[str, bool] = dict(DEFAULT_EXECUTION_POLICIES)
    LANGUAGE_ALIASES: dict[str, str] = dict(LANGUAGE_ALIASES)

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
        work_dir = Path(work_dir) if work_dir is not None else Path()
        work_dir.mkdir(exist_ok=True)
        self._work_dir = work_dir
        self._bind_dir = Path(bind_dir) if bind_dir is not None else work_dir
        self._timeout = timeout
        self._stop_container = stop_container
        self.execution_policies = self._settings["executionPolicies"]
        self._session: Session | None = None
        self._lock = threading.Lock()
        if stop_container:
            atexit.register(self.stop)

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    @property
    def bind_dir(self) -> Path:
        return self._bind_dir

    @property
    def code_extractor(self) -> CodeExtractor:
        return MarkdownCodeExtractor()

    def _ask(self, command: str, argument: dict[str, Any]) -> Any:
        with self._lock:
            if self._session is None:
                session = Session(self._work_dir.resolve(), lambda method, params: None, settings=self._settings)
                self._session = session.__enter__()
            try:
                return self._session.command(command, {**argument, "workspace": str(self._work_dir.resolve())})
            except RpcError as exc:
                raise ValueError(exc.message) from None

    def execute_code_blocks(self, code_blocks: list[CodeBlock]) -> CommandLineCodeResult:
        """Run the blocks in order, stopping at the first that fails."""
        if len(code_blocks) == 0:
            raise ValueError("No code blocks to execute.")
        blocks = [{"language": block.language, "code": block.code} for block in code_blocks]
        result = self._ask(Command.EXECUTE, {"blocks": blocks})
        return CommandLineCodeResult(
            exit_code=result["exitCode"], output=result["output"], code_file=result.get("codeFile")
        )

    def restart(self) -> None:
        """Restart the sandbox (the work_dir's files stay)."""
        self._ask(Command.RESTART, {})

    def stop(self) -> None:
        """Stop the sandbox (when stop_container) and let go of the server."""
        atexit.unregister(self.stop)
        with self._lock:
            session, self._session = self._session, None
        if session is None:
            return
        try:
            if self._stop_container:
                session.command(Command.STOP, {"workspace": str(self._work_dir.resolve())})
        except (RpcError, OSError, ConnectionError):
            pass
        finally:
            session.__exit__(None, None, None)

    def __enter__(self) -> CellboxCodeExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
