"""Drive a real `cellbox serve` over stdio on a workspace and print what it answers.

Usage: python examples/run_demo.py WORKSPACE

Starts the daemon as an editor would and asks it to run every block of the
workspace's README.md (`cellbox.execute` with `uri` and `all`: the server finds
the fenced blocks itself). The output streams to stderr as `cellbox/output`
notifications arrive; then each structured result is printed as JSON, and
`cellbox.status` after it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient


async def main(workspace: Path) -> int:
    client = LanguageClient("cellbox-demo", "0.1.0")
    messages: list[str] = []

    @client.feature("cellbox/output")
    def streamed(params) -> None:
        # Output as it arrives, before the structured result.
        print(f"[block {params.blockIndex} {params.stream}] {params.text}", end="", file=sys.stderr)

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: types.PublishDiagnosticsParams) -> None:
        for diagnostic in params.diagnostics:
            print(f"(diagnostic, line {diagnostic.range.start.line + 1}) {diagnostic.message}", file=sys.stderr)

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

    async def command(name: str, argument: dict) -> dict:
        print(f"\n>>> {name} {json.dumps(argument)[:200]}")
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=[argument])
        )
        print(json.dumps(result, indent=2))
        return result

    try:
        result = await command("cellbox.execute", {"uri": (workspace / "README.md").as_uri(), "all": True})
        await command("cellbox.status", {})
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    for message in messages:
        print(f"(server message) {message}", file=sys.stderr)
    return 0 if result["exitCode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]).resolve())))
