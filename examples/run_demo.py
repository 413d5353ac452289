"""Drive a real `cellbox serve` over stdio on a workspace and show what it answers.

Usage: python examples/run_demo.py WORKSPACE [--json]

Starts the daemon as an editor would and asks it to run every block of the
workspace's README.md (`cellbox.execute` with `uri` and `all`: the server finds
the fenced blocks itself). What the server sends is shown as `cellbox run`
shows it on a terminal: a header as each block starts (`cellbox/blockStarted`),
its output as it streams (`cellbox/output`), a ✓/✗ line per block, then the
diagnostics and messages an editor would show, and the sandbox's status.
`--json` prints the protocol's results as JSON instead, for those writing a
client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from cellbox.cli.console import RunDisplay, status_lines
from cellbox.vocabulary import Command, Notification


def plain(value: Any) -> Any:
    """A notification's params as JSON values: pygls hands unknown methods'
    params over as nested namedtuples."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


async def main(workspace: Path, as_json: bool) -> int:
    client = LanguageClient("cellbox-demo", "0.1.0")
    # Everything on stdout, in the order it happened; no spinner.
    display = RunDisplay(out=sys.stdout, err=sys.stdout, live=False)
    messages: list[str] = []
    diagnostics: dict[str, list[types.Diagnostic]] = {}

    @client.feature(Notification.BLOCK_STARTED)
    def block_started(params: Any) -> None:
        if not as_json:
            display.block_started(plain(params))

    @client.feature(Notification.OUTPUT)
    def streamed(params: Any) -> None:
        if not as_json:
            display.output(plain(params))

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        diagnostics[params.uri] = list(params.diagnostics)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(params: types.ShowMessageParams) -> None:
        messages.append(params.message)

    await client.start_io(sys.executable, "-m", "cellbox", "serve")
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
        )
    )
    client.initialized(types.InitializedParams())

    async def command(name: str, argument: dict) -> Any:
        if as_json:
            print(f"\n>>> {name} {json.dumps(argument)[:200]}")
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=[argument])
        )
        if as_json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        return result

    readme = workspace / "README.md"
    try:
        if not as_json:
            print(f"Running every block of {readme} in the workspace's sandbox:\n")
        result = await command(Command.EXECUTE, {"uri": readme.as_uri(), "all": True})
        status = await command(Command.STATUS, {})
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    if not as_json:
        display.summary(result)
        for uri, found in diagnostics.items():
            for diagnostic in found:
                print(f"{Path(uri[len('file://'):]).name}:{diagnostic.range.start.line + 1}: {diagnostic.message}")
        print("\nsandbox: " + "\n         ".join(status_lines(status)))
    for message in messages:
        print(f"(server message) {message}", file=sys.stderr)
    return 0 if result["exitCode"] == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", type=Path, help="a folder holding README.md (e.g. examples/demo)")
    parser.add_argument("--json", action="store_true", help="print the protocol's results as JSON instead")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.workspace.resolve(), arguments.json)))
