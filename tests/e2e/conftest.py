"""Drive the real daemon over stdio with pytest-lsp's client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

# Fixtures other modules define, for every test here: the per-project daemon's
# private runtime folder, and the other engines (loopback remote, Podman).
from tests.e2e.daemon_support import runtime_dir  # noqa: E402, F401
from tests.e2e.engines import make_engine_workspace, podman_engine, remote_engine  # noqa: E402, F401

SERVER_COMMAND = [sys.executable, "-m", "cellbox", "serve"]

pytestmark = pytest.mark.e2e


class Daemon:
    """One running `cellbox serve` process and the client talking to it."""

    def __init__(self, client: LanguageClient, workspace: Path | None, initialize_result) -> None:
        self.client = client
        self.workspace = workspace
        self.initialize_result: types.InitializeResult = initialize_result

    async def command(self, name: str, *arguments):
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(arguments))
        )

    async def execute(self, *blocks: tuple[str, str], **params):
        payload = {"blocks": [{"language": lang, "code": code} for lang, code in blocks], **params}
        return await self.command("cellbox.execute", payload)


@pytest.fixture
async def start_daemon():
    """Start daemons: start_daemon(workspace, init_options=..., env=..., capabilities=..., command=...)."""
    started: list[LanguageClient] = []

    async def start(
        workspace: Path | None,
        init_options=None,
        env: dict[str, str] | None = None,
        capabilities: str = "visual_studio_code",
        root: str = "folders",
        command: list[str] | None = None,
    ) -> Daemon:
        client = make_test_lsp_client()
        client.cellbox_output = []  # every cellbox/output notification, in arrival order

        @client.feature("cellbox/output")
        def on_output(params) -> None:
            client.cellbox_output.append(params)

        client.cellbox_displays = []  # every cellbox/display notification

        @client.feature("cellbox/display")
        def on_display(params) -> None:
            client.cellbox_displays.append(params)

        @client.feature("cellbox/blockStarted")
        def on_block_started(params) -> None:
            client.cellbox_output.append(params)  # in the same list, to check their order

        client.message_requests = []  # every window/showMessageRequest
        client.message_answer = None  # what the person picks: by default, they close the prompt

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def on_message_request(params: types.ShowMessageRequestParams):
            client.message_requests.append(params)
            return client.message_answer

        await client.start_io(*(command or SERVER_COMMAND), env={**os.environ, **(env or {})})
        started.append(client)
        uri = workspace.as_uri() if workspace else None
        params = types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities(capabilities),
            initialization_options=init_options,
        )
        if workspace is not None and root == "folders":
            params.workspace_folders = [types.WorkspaceFolder(uri=uri, name=workspace.name)]
        elif workspace is not None and root == "rootUri":
            params.root_uri = uri
        elif workspace is not None and root == "rootPath":
            params.root_path = str(workspace)
        result = await client.initialize_session(params)
        return Daemon(client, workspace, result)

    yield start
    for client in started:
        if client.stopped:  # the test shut it down itself
            continue
        try:
            await client.shutdown_session()
        finally:
            await client.stop()
