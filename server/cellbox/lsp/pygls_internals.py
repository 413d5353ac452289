"""Every place cellbox reaches past pygls's public API, in one module.

Each touch names why the public API does not do, and tests/unit/
test_pygls_internals.py checks each one against the installed pygls, so that
an upgrade that moves one fails there, not in a user's editor. The bound in
pyproject.toml (pygls>=2.1,<3) is what these were checked with.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

CHECKED_WITH = "2.1"
"""The pygls version (major.minor) these internals were checked with."""

REQUEST_WORK_DONE_TOKEN: contextvars.ContextVar[types.ProgressToken | None] = contextvars.ContextVar(
    "cellbox_work_done_token", default=None
)
"""The workDoneToken a client may put on its workspace/executeCommand request.
pygls hands a command handler only the arguments, so the protocol below
passes the token through a context variable, which the handler's task
inherits from the request that started it."""


class CellboxProtocol(LanguageServerProtocol):
    """pygls's protocol with two of its built-in handlers changed."""

    hang_up: Callable[[], None] | None = None
    """Closes this client's connection to a shared daemon; None for a stdio server."""

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams) -> Any:
        REQUEST_WORK_DONE_TOKEN.set(params.work_done_token)
        return (yield from super().lsp_workspace__execute_command(params))

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Any:
        if self.hang_up is None:
            # A stdio daemon: pygls ends the process.
            return (yield from super().lsp_exit(*args))
        # One client of a shared daemon leaves; pygls's own exit calls
        # sys.exit, which would end every other client's runs too.
        self.hang_up()
        return None


def request_future(protocol: LanguageServerProtocol) -> Future[Any] | None:
    """The future pygls answers the request being handled from. pygls cancels
    it on `$/cancelRequest` but not the task running our handler, so a
    handler that wants to hear of the cancel listens on it."""
    if protocol.msg_id is None:
        return None
    return protocol._request_futures.get(protocol.msg_id)


def set_stop_event(server: LanguageServer, event: threading.Event) -> None:
    """Give the server the event its own shutdown sets, for a loop we run
    ourselves (pygls's start_io would run its own, without our clean-up)."""
    server._stop_event = event


def stop_event(server: LanguageServer) -> threading.Event:
    event = server._stop_event
    assert event is not None, "set_stop_event first"
    return event


def answer_into_the_void(server: LanguageServer, message: dict[str, Any]) -> None:
    """Handle one message as if a client had sent it, its answer discarded:
    the daemon's warm-up, so that cattrs builds its (un)structuring functions
    before the first real client waits for them."""
    import json

    class Discard:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    server.protocol.set_writer(Discard())
    server.protocol.handle_message(json.loads(json.dumps(message), object_hook=server.protocol.structure_message))
