"""Drive a real `cellbox serve` over stdio on a workspace and print what it answers.

Usage: python examples/run_demo.py WORKSPACE

Starts the daemon as an editor would, finds the fenced code blocks of the
workspace's README.md, sends them in one `cellbox.execute`, then asks for
`cellbox.status`, printing each structured result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from lsprotocol import types
from markdown_it import MarkdownIt
from pygls.lsp.client import LanguageClient


def fenced_blocks(markdown: str) -> list[dict[str, str]]:
    blocks = []
    for token in MarkdownIt("commonmark").parse(markdown):
        language = token.info.split(maxsplit=1)[0] if token.info.strip() else ""
        if token.type == "fence" and language:
            blocks.append({"language": language, "code": token.content})
    return blocks


async def main(workspace: Path) -> int:
    client = LanguageClient("cellbox-demo", "0.1.0")
    messages: list[str] = []

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
        blocks = fenced_blocks((workspace / "README.md").read_text())
        result = await command("cellbox.execute", {"blocks": blocks})
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
