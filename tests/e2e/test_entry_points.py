"""The daemon starts from the console script and from `python -m cellbox`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp.client import make_test_lsp_client

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("cellbox"))


@pytest.mark.parametrize(
    "command",
    [[CONSOLE_SCRIPT, "serve"], [sys.executable, "-m", "cellbox"]],
    ids=["cellbox-serve", "python-m-cellbox"],
)
async def test_the_daemon_serves_lsp_on_stdio(workspace, command):
    client = make_test_lsp_client()
    await client.start_io(*command, env=dict(os.environ))
    try:
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            )
        )
        assert result.server_info.name == "cellbox"
        answer = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="cellbox.execute", arguments=[{"blocks": [{"language": "sh", "code": "echo up"}]}])
        )
        assert answer["output"] == "up\n"
        await client.shutdown_session()
    finally:
        await client.stop()


def test_help_and_version():
    version = subprocess.run([CONSOLE_SCRIPT, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("cellbox ")
    usage = subprocess.run([CONSOLE_SCRIPT, "--help"], capture_output=True, text=True, check=True)
    assert "serve" in usage.stdout
