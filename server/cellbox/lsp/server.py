"""The language server object: one per client connection. It owns the
client's view of the sandboxes (ClientView), the per-document results,
and how the server speaks to the client (diagnostics, lenses, progress,
messages). The handlers are features.py's; pygls internals pygls_internals.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from cellbox import __version__, safe_files
from cellbox.documents.diagnostics import block_error
from cellbox.documents.finder import DocumentBlock, MistypedFence, find_blocks, mistyped_fences
from cellbox.documents.results import DocumentResults, outcome_label
from cellbox.errors import CellboxError, InvalidParams
from cellbox.languages import DEFAULT_EXECUTION_POLICIES
from cellbox.lsp import pygls_internals
from cellbox.lsp.client_side import ClientGate, StreamingListener
from cellbox.project import uri_path
from cellbox.sandbox.pool import ClientView, SandboxPool
from cellbox.settings.sources import resolve_config
from cellbox.wire import ExecuteResult

log = logging.getLogger(__name__)

PROGRESS_TICK_SECONDS = 1.0
DOCUMENT_SIZE_LIMIT = 16 << 20
"""Largest document read from disk for a run."""


@functools.cache
def _shared_converter() -> Any:
    """One lsprotocol converter for every client of a daemon. cattrs builds
    and caches a (un)structuring function per type on first use; a converter
    per connection paid that again each time, ~12 ms of every CLI call's
    initialize."""
    from pygls.protocol import default_converter

    return default_converter()


class CellboxServer(LanguageServer):
    def __init__(self, pool: SandboxPool, owns_pool: bool, hang_up: Callable[[], None] | None = None) -> None:
        """pool: the sandboxes, shared among a daemon's clients or this
        server's own (owns_pool: it stops them at shutdown); hang_up: closes
        this client's connection to a shared daemon."""
        super().__init__(
            "cellbox", __version__, protocol_cls=pygls_internals.CellboxProtocol, converter_factory=_shared_converter
        )
        assert isinstance(self.protocol, pygls_internals.CellboxProtocol)
        self.protocol.hang_up = hang_up
        self.owns_pool = owns_pool
        self.sandboxes = ClientView(pool)
        self.results = DocumentResults()
        self.gate = ClientGate(self)
        self._shut_down = False
        self._hints: dict[str, list[MistypedFence]] = {}
        """The mistyped fences last published per document."""

    async def shutdown_sandboxes(self) -> None:
        """The client is done: stop its sandboxes, or, on a shared daemon, its runs."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.owns_pool:
            await self.sandboxes.pool.shutdown()
        else:
            self.sandboxes.cancel_all()

    # ------------------------------------------------------------ documents

    async def document(self, uri: str) -> TextDocument:
        """The document at `uri`: as the client has it open, else read from
        disk here. pygls would read it on the event loop, where a FIFO planted
        at that path would freeze every client of this daemon."""
        if uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri)
        if not uri.startswith("file:") and "://" in uri:
            raise InvalidParams(f"{uri} is not a file on this machine: give a file:// URI or a path")
        text = await asyncio.to_thread(_read_document, uri)
        return TextDocument(uri, source=text)

    def after_document_run(
        self, uri: str, chosen: list[DocumentBlock], result: ExecuteResult, listener: StreamingListener,
        workspace: Path,
    ) -> None:
        """Lens outcomes and diagnostics for the blocks of a document that ran."""
        for index, (block, outcome) in enumerate(zip(chosen, result.blocks, strict=False)):
            error = block_error(block, outcome, listener.stderr(index), workspace)
            self.results.record(uri, block, outcome_label(outcome.status, outcome.exit_code, outcome.duration_ms), error)
        if (document := self.workspace.text_documents.get(uri)) is not None:
            # The marks were made where the blocks were when the run was
            # asked; lines typed above them meanwhile moved them.
            self.results.reanchor(uri, find_blocks(uri, document.source, document.language_id))
        self.publish_errors(uri)
        workspace_capabilities = self.client_capabilities.workspace
        lens = workspace_capabilities.code_lens if workspace_capabilities is not None else None
        if lens is not None and lens.refresh_support:
            self.workspace_code_lens_refresh(None)

    def hints_changed(self, uri: str, document: TextDocument | None = None) -> bool:
        """Find the mistyped fences of the document again (the open one, else
        `document`, as read from disk for a run); whether they changed."""
        document = self.workspace.text_documents.get(uri) or document
        if document is None:  # closed
            return self._hints.pop(uri, None) is not None
        hints = mistyped_fences(uri, document.source, document.language_id)
        changed = hints != self._hints.get(uri, [])
        self._hints[uri] = hints
        return changed

    def publish_errors(self, uri: str) -> None:
        """The document's diagnostics: its blocks' errors, and a warning on each
        fence whose language looks mistyped (it is no block, so nothing else says)."""
        warnings = [
            types.Diagnostic(
                range=types.Range(types.Position(hint.line, 0), types.Position(hint.line + 1, 0)),
                message=hint.message,
                severity=types.DiagnosticSeverity.Warning,
                source="cellbox",
            )
            for hint in self._hints.get(uri, [])
        ]
        diagnostics = warnings + [
            types.Diagnostic(
                range=types.Range(types.Position(error.line, 0), types.Position(error.line + 1, 0)),
                message=error.message,
                severity=types.DiagnosticSeverity.Error,
                source="cellbox",
            )
            for error in self.results.errors(uri)
        ]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    async def execution_policies(self, uri: str) -> Mapping[str, bool]:
        """Which languages run in the workspace of the document at `uri` (the
        others are only saved): as its last run found them, else read now."""
        try:
            workspace = self.sandboxes.workspace_for_file(uri_path(uri))
        except (OSError, ValueError, RuntimeError):
            return DEFAULT_EXECUTION_POLICIES
        known = self.sandboxes.pool.known(workspace)
        if known is not None and known.last_config is not None:
            return known.last_config.execution_policies
        resolve = functools.partial(
            resolve_config, workspace, self.sandboxes.overrides, self.sandboxes.workspace_settings
        )
        try:
            return (await asyncio.to_thread(resolve)).config.execution_policies
        except CellboxError:  # a bad configuration is reported when the block runs
            return DEFAULT_EXECUTION_POLICIES

    # ------------------------------------------------------------- running

    def cancel_with_request(self, cancelled: asyncio.Event) -> None:
        """Make `$/cancelRequest` on this execute request cancel its run."""
        future = pygls_internals.request_future(self.protocol)
        if future is not None:
            future.add_done_callback(_set_when_cancelled(cancelled))

    @contextlib.asynccontextmanager
    async def run_progress(self, listener: StreamingListener, cancelled: asyncio.Event) -> AsyncIterator[None]:
        """A cancellable work-done progress for the run, ticking the elapsed time:
        on the token the client gave with its request, or on one the server
        creates when the client supports that."""
        # A client may reuse a runId, hence the suffix.
        token = pygls_internals.REQUEST_WORK_DONE_TOKEN.get() or await self._new_progress_token(
            f"cellbox-run-{listener.run_id}-{uuid.uuid4().hex[:8]}"
        )
        if token is None:
            yield
            return
        started = time.monotonic()
        self.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title="cellbox", message=listener.describe(0.0), cancellable=True)
        )
        self.work_done_progress.tokens[token].add_done_callback(_set_when_cancelled(cancelled))

        def report() -> None:
            message = listener.describe(time.monotonic() - started)
            self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

        async def tick() -> None:
            while True:
                await asyncio.sleep(PROGRESS_TICK_SECONDS)
                report()

        listener.on_block = report
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
    async def step_progress(self, title: str) -> AsyncIterator[Callable[[str], None] | None]:
        """Server-initiated work-done progress for a slow step (pulling an
        image, building an environment), when the client supports it; yields
        a function that reports how far it is. Not named `progress`: pygls's
        LanguageServer has one, with another meaning."""
        token = await self._new_progress_token(f"cellbox-{uuid.uuid4().hex[:8]}")
        if token is None:
            yield None
            return
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))

        def report(message: str) -> None:
            self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

        failed = True
        try:
            yield report
            failed = False
        finally:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="failed" if failed else "done"))
            self.work_done_progress.tokens.pop(token, None)

    async def _new_progress_token(self, token: str) -> str | None:
        """Ask the client to create a progress token; None when it cannot."""
        capabilities = self.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return None
        await self.work_done_progress.create_async(token)
        return token


def _set_when_cancelled(event: asyncio.Event) -> Callable[[Any], None]:
    """A done-callback for a future: `event` is set if the future was cancelled."""

    def callback(future: Any) -> None:
        if future.cancelled():
            event.set()

    return callback


def _read_document(uri: str) -> str:
    try:
        data = safe_files.read_named(uri_path(uri), DOCUMENT_SIZE_LIMIT)
    except safe_files.RefusedFile as exc:
        raise InvalidParams(f"{exc}; give a Markdown, Python or shell file") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "the path holds a NUL byte or invalid text"
        raise InvalidParams(f"cannot read {uri_path(uri)}: {why}") from None
    return data.decode("utf-8", "replace")
