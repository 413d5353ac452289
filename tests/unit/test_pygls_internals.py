"""Each place cellbox reaches past pygls's public API (lsp/pygls_internals.py),
checked against the installed pygls by what it is for, so an upgrade that
moves one fails here rather than in a user's editor."""

from __future__ import annotations

import asyncio
import threading
from importlib.metadata import version
from typing import Any

from cellbox.lsp import pygls_internals
from cellbox.lsp.features import build_server
from cellbox.sandbox.pool import SandboxPool
from fake_engine import FakeEngine


def _server(hang_up: Any = None) -> Any:
    return build_server(SandboxPool(FakeEngine()), hang_up)


def _initialize(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": capabilities or {}}}


def test_the_installed_pygls_is_the_one_these_were_checked_with() -> None:
    major, minor = (int(part) for part in version("pygls").split(".")[:2])
    checked_major, checked_minor = (int(part) for part in pygls_internals.CHECKED_WITH.split("."))
    assert major == checked_major and minor >= checked_minor


def test_a_message_answered_into_the_void_reaches_the_server() -> None:
    server = _server()
    pygls_internals.answer_into_the_void(server, _initialize({"window": {"workDoneProgress": True}}))
    assert server.client_capabilities.window.work_done_progress is True


def test_exit_hangs_up_one_client_instead_of_ending_the_process() -> None:
    hung_up = threading.Event()
    server = _server(hung_up.set)
    pygls_internals.answer_into_the_void(server, _initialize())
    pygls_internals.answer_into_the_void(server, {"jsonrpc": "2.0", "method": "exit"})  # pygls's own would sys.exit
    assert hung_up.is_set()


def test_the_stop_event_given_is_the_one_shutdown_sets() -> None:
    server = _server()
    event = threading.Event()
    pygls_internals.set_stop_event(server, event)
    server.shutdown()
    assert event.is_set() and pygls_internals.stop_event(server) is event


async def test_a_command_sees_its_request_future_and_work_done_token() -> None:
    server = _server()
    seen: dict[str, Any] = {}

    @server.command("test.probe")
    def probe(ls: Any, *args: Any) -> None:
        seen["token"] = pygls_internals.REQUEST_WORK_DONE_TOKEN.get()
        seen["future"] = pygls_internals.request_future(ls.protocol)

    pygls_internals.answer_into_the_void(server, _initialize())
    pygls_internals.answer_into_the_void(server, {
        "jsonrpc": "2.0", "id": 7, "method": "workspace/executeCommand",
        "params": {"command": "test.probe", "arguments": [], "workDoneToken": "token-7"},
    })
    await asyncio.sleep(0.05)
    assert seen["token"] == "token-7"
    assert seen["future"] is not None and hasattr(seen["future"], "add_done_callback")
