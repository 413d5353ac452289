"""All the pygls glue: LSP lifecycle and the `cellbox.*` commands.

Handlers only unpack arguments, call the domain (SandboxManager / Sandbox) and
convert the result; every CellboxError becomes a JSON-RPC error here, in one
place, and the daemon keeps serving after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import uuid
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.workspace import TextDocument

from cellbox import __version__, safe_files
from cellbox.engine.docker import DockerBackend
from cellbox.settings.config import trust_workspace, validate_overrides
from cellbox.errors import CellboxError, ConfigError, EngineUnavailable, ImageUnavailable, InvalidParams
from cellbox.project import uri_path
from cellbox.sandbox.manager import SandboxManager, SandboxPool, workspace_path
from cellbox.documents.diagnostics import python_error, shell_error
from cellbox.documents.results import DocumentResults, outcome_label
from cellbox.documents.finder import DocumentBlock, document_kind, find_blocks, selection_block
from cellbox.sandbox.core import BlockToRun, RunListener, SettingsGate
from cellbox.wire import (
    CancelParams,
    BlockStartedNotification,
    CancelResult,
    ExecuteParams,
    ExecuteResult,
    OutputNotification,
    Position,
    Range,
    StatusParams,
    StatusResult,
    TrustResult,
    WorkspaceParams,
    parse,
    to_json,
)
from cellbox.vocabulary import Command, Notification, Status

log = logging.getLogger(__name__)

EXECUTE = Command.EXECUTE
RESTART = Command.RESTART
STOP = Command.STOP
STATUS = Command.STATUS
CANCEL = Command.CANCEL
TRUST = Command.TRUST
ALLOW = "Allow"
NOT_NOW = "Not now"
APPROVAL_WAIT_SECONDS = 120.0
"""How long a run waits for the user's answer to the approval prompt; an editor
may hide it (VS Code's Do Not Disturb), and the run then goes on without."""
OUTPUT_NOTIFICATION = Notification.OUTPUT
BLOCK_STARTED_NOTIFICATION = Notification.BLOCK_STARTED
PROGRESS_TICK_SECONDS = 1.0


# The workDoneToken a client may put on its workspace/executeCommand request.
# pygls hands a command handler only the arguments, so the protocol below
# passes the token through a context variable, which the handler's task
# inherits from the request that started it.
REQUEST_WORK_DONE_TOKEN: contextvars.ContextVar[types.ProgressToken | None] = contextvars.ContextVar(
    "cellbox_work_done_token", default=None
)


class CellboxProtocol(LanguageServerProtocol):
    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams):
        REQUEST_WORK_DONE_TOKEN.set(params.work_done_token)
        return (yield from super().lsp_workspace__execute_command(params))

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any):
        server: CellboxServer = self._server  # type: ignore[assignment]
        if server.hang_up is None:
            # A stdio daemon: pygls ends the process.
            return (yield from super().lsp_exit(*args))
        # One client of a shared daemon leaves; pygls's own exit would end
        # the process, and with it every other client's runs.
        server.hang_up()


@functools.cache
def _shared_converter():
    """One lsprotocol converter for every client of a daemon. cattrs builds
    and caches a (un)structuring function per type on first use; a converter
    per connection paid that again each time, ~12 ms of every CLI call's
    initialize."""
    from pygls.protocol import default_converter

    return default_converter()


class CellboxServer(LanguageServer):
    def __init__(self, pool: SandboxPool | None = None, hang_up: Callable[[], None] | None = None) -> None:
        """pool: the sandboxes, when a daemon shares them among clients (else
        this server owns its own and stops them at shutdown); hang_up: closes
        this client's connection to a shared daemon."""
        super().__init__("cellbox", __version__, protocol_cls=CellboxProtocol, converter_factory=_shared_converter)
        self.owns_pool = pool is None
        self.manager = SandboxManager(pool or SandboxPool(DockerBackend()))
        self.hang_up = hang_up
        self.results = DocumentResults()
        self.gate = ClientGate(self)
        self._shut_down = False

    async def shutdown_sandboxes(self) -> None:
        """The client is done: stop its sandboxes, or, on a shared daemon, its runs."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.owns_pool:
            await self.manager.pool.shutdown()
        else:
            self.manager.cancel_all()

    # ------------------------------------------------------------ documents

    @staticmethod
    def check_selector(params: ExecuteParams) -> None:
        """InvalidParams unless an execute names blocks, or a uri with exactly one way to pick from it."""
        ways = [name for name in ("position", "range", "block", "all") if getattr(params, name) not in (None, False)]
        if params.blocks is not None:
            if params.uri is not None or ways:
                raise InvalidParams(f"Invalid {EXECUTE} arguments: give either blocks, or uri with one of position, range, block, all")
            if not params.blocks:
                raise InvalidParams(f"Invalid {EXECUTE} arguments: blocks: give at least one block")
            return
        if params.uri is None:
            raise InvalidParams(f"Invalid {EXECUTE} arguments: blocks: give blocks, or uri with position, range, block or all")
        if len(ways) != 1:
            raise InvalidParams(f"Invalid {EXECUTE} arguments: with uri, give exactly one of position, range, block, all")

    async def chosen_blocks(self, params: ExecuteParams) -> tuple[Any, list[DocumentBlock]]:
        """The document and its blocks an execute asks for; (None, []) for blocks
        given as text. The request passed check_selector already."""
        if params.blocks is not None:
            return None, []
        assert params.uri is not None
        document = await self._document(params.uri)
        text = document.source
        blocks = find_blocks(document.uri, text, document.language_id)
        if params.all:
            if not blocks:
                raise InvalidParams(f"uri: {params.uri} has no runnable block")
            return document, blocks
        if params.block is not None:
            if not 1 <= params.block <= len(blocks):
                have = f"blocks 1 to {len(blocks)}" if blocks else "no runnable block"
                raise InvalidParams(f"block: {params.uri} has {have}; got {params.block}")
            return document, [blocks[params.block - 1]]
        if params.position is not None:
            line = params.position.line
            for block in blocks:
                if block.contains(line):
                    return document, [block]
            raise InvalidParams(f"position: line {line + 1} of {params.uri} is not in a runnable block")
        start, end = params.range.start, params.range.end
        line_count = len(text.splitlines()) or 1
        if start.line < 0 or end.line < start.line or start.character < 0 or end.character < 0:
            raise InvalidParams(
                f"range: must go forward from line 1 (got lines {start.line + 1} to {end.line + 1})"
            )
        if end.line > line_count or (end.line == line_count and end.character > 0):
            raise InvalidParams(f"range: ends at line {end.line + 1}, past the end of {params.uri} ({line_count} lines)")
        last = end.line - 1 if end.character == 0 and end.line > start.line else end.line
        return document, [selection_block(document.uri, text, start.line, last, document.language_id)]

    async def _document(self, uri: str) -> Any:
        """The document at `uri`: as the client has it open, else read from
        disk here. pygls would read it on the event loop, where a FIFO planted
        at that path would freeze every client of this daemon."""
        if uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri)
        if not uri.startswith("file:") and "://" in uri:
            raise InvalidParams(f"uri: {uri!r} is not a file:// URI or a path")
        text = await asyncio.to_thread(_read_document, uri)
        return TextDocument(uri, source=text)

    def after_document_run(
        self, document: Any, chosen: list[DocumentBlock], result: ExecuteResult, listener: StreamingListener,
        workspace: Path,
    ) -> None:
        """Lens outcomes and diagnostics for the blocks of a document that ran."""
        for index, (block, outcome) in enumerate(zip(chosen, result.blocks, strict=False)):
            error = None
            if outcome.status == Status.ERROR and outcome.code_file is not None:
                if block.language == "python":
                    # A named file runs by its path in the workspace; others
                    # from the daemon's folder, by their own name.
                    code_file = Path(outcome.code_file)
                    shown = str(code_file.relative_to(workspace)) if workspace in code_file.parents else code_file.name
                    error = python_error(outcome.output, shown, block.start_line, block.end_line - block.start_line)
                else:
                    error = shell_error(listener.stderr(index), outcome.exit_code, block.start_line)
            self.results.record(document.uri, block, outcome_label(outcome.status, outcome.exit_code, outcome.duration_ms), error)
        self.publish_errors(document.uri)
        lens = self.client_capabilities.workspace and self.client_capabilities.workspace.code_lens
        if lens is not None and lens.refresh_support:
            self.workspace_code_lens_refresh(None)

    def publish_errors(self, uri: str) -> None:
        diagnostics = [
            types.Diagnostic(
                range=types.Range(types.Position(error.line, 0), types.Position(error.line + 1, 0)),
                message=error.message,
                severity=types.DiagnosticSeverity.Error,
                source="cellbox",
            )
            for error in self.results.errors(uri)
        ]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    # ------------------------------------------------------------- running

    def cancel_with_request(self, cancelled: asyncio.Event) -> None:
        """Make `$/cancelRequest` on this execute request cancel its run.

        pygls cancels only the future it answers the request from, not the
        task running our handler; so listen on that future."""
        future = self.protocol._request_futures.get(self.protocol.msg_id)
        if future is not None:
            future.add_done_callback(lambda f: f.cancelled() and cancelled.set())

    @contextlib.asynccontextmanager
    async def run_progress(self, listener: StreamingListener, cancelled: asyncio.Event):
        """A cancellable work-done progress for the run, ticking the elapsed time:
        on the token the client gave with its request, or on one the server
        creates when the client supports that."""
        # A client may reuse a runId, hence the suffix.
        token = REQUEST_WORK_DONE_TOKEN.get() or await self._new_progress_token(
            f"cellbox-run-{listener.run_id}-{uuid.uuid4().hex[:8]}"
        )
        if token is None:
            yield
            return
        started = time.monotonic()
        self.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title="cellbox", message=listener.describe(0.0), cancellable=True)
        )
        self.work_done_progress.tokens[token].add_done_callback(lambda f: f.cancelled() and cancelled.set())

        async def tick() -> None:
            while True:
                await asyncio.sleep(PROGRESS_TICK_SECONDS)
                message = listener.describe(time.monotonic() - started)
                self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

        listener.on_block = lambda: self.work_done_progress.report(
            token, types.WorkDoneProgressReport(message=listener.describe(time.monotonic() - started))
        )
        ticker = asyncio.ensure_future(tick())
        try:
            yield
        finally:
            ticker.cancel()
            self.work_done_progress.end(token, types.WorkDoneProgressEnd())
            self.work_done_progress.tokens.pop(token, None)

    def show_error(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=message))

    @contextlib.asynccontextmanager
    async def progress(self, title: str):
        """Server-initiated work-done progress (pulling an image), when the client supports it."""
        token = await self._new_progress_token(f"cellbox-{uuid.uuid4().hex[:8]}")
        if token is None:
            yield
            return
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))
        try:
            yield
        finally:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd())
            self.work_done_progress.tokens.pop(token, None)

    async def _new_progress_token(self, token: str) -> str | None:
        """Ask the client to create a progress token; None when it cannot."""
        capabilities = self.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return None
        await self.work_done_progress.create_async(token)
        return token


class ClientGate(SettingsGate):
    """This client's user, for a workspace file's settings that loosen the
    sandbox: asked with window/showMessageRequest when the client can show
    one, told with window/showMessage which settings were left out. Each
    question and each notice once per connection, not at every run."""

    def __init__(self, ls: CellboxServer) -> None:
        self.ls = ls
        self._asked: set[str] = set()
        self._told: set[str] = set()

    async def approve(self, question: str) -> bool:
        window = self.ls.client_capabilities.window
        if question in self._asked or window is None or window.show_message is None:
            return False
        self._asked.add(question)
        request = types.ShowMessageRequestParams(
            type=types.MessageType.Warning, message=question,
            actions=[types.MessageActionItem(title=ALLOW), types.MessageActionItem(title=NOT_NOW)],
        )
        try:
            answer = await asyncio.wait_for(self.ls.window_show_message_request_async(request), APPROVAL_WAIT_SECONDS)
        except TimeoutError:
            log.info("no answer to the approval request within %.0f s: the settings stay ignored", APPROVAL_WAIT_SECONDS)
            return False
        except Exception as exc:  # the client cannot answer: the settings stay ignored
            log.info("the client did not answer the approval request: %s", exc)
            return False
        return answer is not None and answer.title == ALLOW

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        if message not in self._told:
            self._told.add(message)
            self.ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))


class StreamingListener(RunListener):
    """Sends a run's output to the client as `cellbox/output` notifications.

    They are written to stdout as the output arrives, on the one event loop
    that later writes the response: every notification of a run reaches the
    client before the run's response, and in the order the block wrote it.
    """

    def __init__(self, ls: CellboxServer, run_id: str, count: int) -> None:
        self.ls = ls
        self.run_id = run_id
        self.count = count
        self.current = 0
        self.on_block: Callable[[], None] | None = None
        self._stderr: dict[int, list[str]] = {}

    def block_started(self, index: int, block: BlockToRun) -> None:
        self.current = index
        notice = BlockStartedNotification(self.run_id, index, block.language, block.range, block.extent)
        self.ls.protocol.notify(BLOCK_STARTED_NOTIFICATION, to_json(notice))
        if self.on_block is not None:
            self.on_block()

    def output(self, index: int, stream: str, text: str) -> None:
        if stream == "stderr":
            self._stderr.setdefault(index, []).append(text)
        self.ls.protocol.notify(OUTPUT_NOTIFICATION, to_json(OutputNotification(self.run_id, index, stream, text)))

    def stderr(self, index: int) -> str:
        return "".join(self._stderr.get(index, []))

    def describe(self, elapsed: float) -> str:
        return f"block {self.current + 1}/{self.count} · {elapsed:.1f} s"


DOCUMENT_SIZE_LIMIT = 16 << 20
"""Largest document read from disk for a run."""


def _read_document(uri: str) -> str:
    try:
        data = safe_files.read_named(uri_path(uri), DOCUMENT_SIZE_LIMIT)
    except safe_files.RefusedFile as exc:
        raise InvalidParams(f"uri: {exc}; give a Markdown, Python or shell file") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "the path holds a NUL byte or invalid text"
        raise InvalidParams(f"uri: cannot read {uri}: {why}") from None
    return data.decode("utf-8", "replace")


def _block_range(block: DocumentBlock) -> Range:
    return Range(Position(block.start_line, 0), Position(block.end_line, 0))


def _block_extent(block: DocumentBlock) -> Range:
    return Range(Position(block.header_line, 0), Position(block.extent_end_line, 0))


def _lens(line: int, title: str, argument: dict[str, Any]) -> types.CodeLens:
    return types.CodeLens(
        range=types.Range(types.Position(line, 0), types.Position(line, 0)),
        command=types.Command(title=title, command=EXECUTE, arguments=[argument]),
    )


def _one_argument(command: str, args: tuple[Any, ...]) -> Any:
    if len(args) != 1:
        raise InvalidParams(f"{command} takes exactly one argument object, got {len(args)} arguments")
    return args[0]


def command_handler(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn CellboxErrors into JSON-RPC errors with their code and message."""

    @functools.wraps(fn)
    async def handler(ls: CellboxServer, *args: Any) -> Any:
        try:
            return to_json(await fn(ls, *args))
        except CellboxError as exc:
            log.info("%s failed: %s", fn.__name__, exc)
            if isinstance(exc, (EngineUnavailable, ImageUnavailable, ConfigError)):
                # Not the caller's fault and not visible in a reply an editor may
                # only log: tell the person too.
                ls.show_error(f"cellbox: {exc}")
            raise JsonRpcException(code=exc.code, message=exc.message) from None

    return handler


def build_server(pool: SandboxPool | None = None, hang_up: Callable[[], None] | None = None) -> CellboxServer:
    server = CellboxServer(pool, hang_up)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CellboxServer, params: types.InitializeParams) -> None:
        folders = [f.uri for f in params.workspace_folders or []]
        roots = folders or [params.root_uri or params.root_path]
        for root in roots:
            if not root:
                continue
            try:
                ls.manager.default_workspaces.append(workspace_path(root))
            except InvalidParams as exc:
                log.warning("ignoring workspace %s: %s", root, exc)
        options = params.initialization_options
        try:
            if isinstance(options, dict) and "workspaceSettings" in options:
                options = dict(options)
                from_workspace = options.pop("workspaceSettings")
                # Checked now for a clear message; weighed like a workspace file at each run.
                ls.manager.workspace_settings = validate_overrides(from_workspace, "initializationOptions.workspaceSettings")
            ls.manager.overrides.update(validate_overrides(options, "initializationOptions"))
        except ConfigError as exc:
            # Carry on with the workspace's own settings rather than refuse to start.
            ls.show_error(f"cellbox: {exc}; using the workspace's settings instead")

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CellboxServer, *_: Any) -> None:
        await ls.shutdown_sandboxes()

    @server.command(EXECUTE)
    @command_handler
    async def execute(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(EXECUTE, args), ExecuteParams, EXECUTE)
        if params.timeout is not None and not params.timeout >= 1:  # also refuses NaN
            raise InvalidParams(f"Invalid {EXECUTE} arguments: timeout: must be at least 1 second (got {params.timeout:g})")
        run_id = params.run_id or uuid.uuid4().hex
        ls.check_selector(params)
        if params.uri is not None and params.workspace is None:
            try:
                sandbox = ls.manager.sandbox_for_file(uri_path(params.uri))
            except (OSError, ValueError, RuntimeError):
                raise InvalidParams(f"uri: {params.uri!r} is not a path that can be read") from None
        else:
            sandbox = ls.manager.sandbox(params.workspace)
        # Its place among the workspace's runs is taken now, before reading the
        # document: requests run in the order they arrived.
        place = sandbox.take_place()
        try:
            document, chosen = await ls.chosen_blocks(params)
            to_run = [BlockToRun(b.language, b.code, _block_range(b), _block_extent(b)) for b in chosen] if document else [
                BlockToRun(b.language, b.code) for b in params.blocks or []
            ]
            listener = StreamingListener(ls, run_id, len(to_run))
            with ls.manager.cancellable(params.run_id) as cancelled:
                ls.cancel_with_request(cancelled)
                async with ls.run_progress(listener, cancelled):
                    result = await sandbox.execute(
                        to_run, params.timeout, ls.progress, cancelled, listener, run_id, gate=ls.gate, place=place
                    )
        finally:
            place.leave()
        if document is not None:
            ls.after_document_run(document, chosen, result, listener, sandbox.workspace)
        return result

    @server.command(CANCEL)
    @command_handler
    async def cancel(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(CANCEL, args), CancelParams, CANCEL)
        return CancelResult(params.run_id, ls.manager.cancel(params.run_id))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CellboxServer, params: types.DidOpenTextDocumentParams) -> None:
        pass  # pygls keeps the text; lenses are asked for by the client

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CellboxServer, params: types.DidChangeTextDocumentParams) -> None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        blocks = find_blocks(document.uri, document.source, document.language_id)
        if ls.results.reanchor(document.uri, blocks):
            ls.publish_errors(document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CellboxServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.results.forget(params.text_document.uri)
        ls.publish_errors(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    def code_lens(ls: CellboxServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        document = ls.workspace.get_text_document(params.text_document.uri)
        blocks = find_blocks(document.uri, document.source, document.language_id)
        lenses = []
        if document_kind(document.uri, document.language_id) == "markdown" and len(blocks) > 1:
            lenses.append(_lens(0, "▶ Run all", {"uri": document.uri, "all": True}))
        for block in blocks:
            argument = {"uri": document.uri, "position": {"line": block.start_line, "character": 0}}
            lenses.append(_lens(block.header_line, "▶ Run", argument))
            label = ls.results.outcome(document.uri, block)
            if label is not None:
                lenses.append(_lens(block.header_line, label, argument))
        return lenses

    @server.command(RESTART)
    @command_handler
    async def restart(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(RESTART, args), WorkspaceParams, RESTART)
        return await ls.manager.sandbox(params.workspace).restart(ls.progress, gate=ls.gate)

    @server.command(STOP)
    @command_handler
    async def stop(ls: CellboxServer, *args: Any):
        params = parse(_one_argument(STOP, args), WorkspaceParams, STOP)
        return await ls.manager.sandbox(params.workspace).stop(gate=ls.gate)

    @server.command(TRUST)
    @command_handler
    async def trust(ls: CellboxServer, *args: Any):
        """Approve the workspace's settings files as they are now (an editor's command)."""
        params = parse(_one_argument(TRUST, args), WorkspaceParams, TRUST)
        workspace = ls.manager.resolve(params.workspace)
        files = await asyncio.to_thread(trust_workspace, workspace)
        return TrustResult(
            str(workspace), [str(f.path) for f in files], [line for f in files for line in f.loosening]
        )

    @server.command(STATUS)
    @command_handler
    async def status(ls: CellboxServer, *args: Any):
        # `{}` is the documented argument; no argument at all is accepted too.
        if args:
            parse(_one_argument(STATUS, args), StatusParams, STATUS)
        return StatusResult(await ls.manager.status())

    return server
