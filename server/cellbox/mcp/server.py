"""`cellbox mcp`: the Model Context Protocol over stdio, for agent hosts,
built on the official `mcp` SDK (extra `cellbox[mcp]`).

Every tool is a request to a cellbox LSP server, the same one an editor
talks to: the project's daemon when one runs (so the agent's blocks run in
the editor's container, and the user sees them), else a `cellbox serve` of
this process's own, which lives as long as it does. So the settings, their
trust rule and every limit are the LSP server's, unchanged: an MCP client
can ask for nothing a workspace file could not (a tool takes no setting
but a timeout and a session name).

A run's output streams to the host as progress notifications (when it asked
for them with a progress token); cancelling the tool call cancels the run
in the sandbox. A failure is a tool error (`isError`) with the server's own
message. The structured result is `cellbox.execute`'s, with a text rendering
beside it for hosts that read text only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

from cellbox import __version__
from cellbox.lsp.link import ServerLink, ServerRefused
from cellbox.vocabulary import Command, document_run

INSTRUCTIONS = (
    "cellbox runs code in a Docker sandbox for one workspace: no network, a read-only root, limits on "
    "memory, processes and time. Files the code writes under the workspace stay; nothing else does. "
    "run_code runs a snippet (python, bash, sh); run_document runs the code blocks of a Markdown file or "
    "the `# %%` cells of a script. Results carry the exit code, the output and a status."
)


def rendered(result: dict[str, Any]) -> str:
    """The result as a host that reads only text sees it: each block's output, then how it ended."""
    parts = []
    for number, block in enumerate(result.get("blocks") or [], 1):
        output = str(block.get("output") or "")
        parts.append(output if output.endswith("\n") or not output else output + "\n")
        parts.append(f"[block {number} · {block.get('language')} · {block.get('status')} · exit {block.get('exitCode')}]\n")
    if result.get("skipped"):
        parts.append(f"[{len(result['skipped'])} later block(s) not run: a block failed]\n")
    return "".join(parts) or f"[exit {result.get('exitCode')}]\n"


async def _run(link: ServerLink, argument: dict[str, Any], ctx: Context) -> CallToolResult:
    """cellbox.execute for a tool call: its output streamed as progress (when
    the host gave a progress token), cancelled in the sandbox with the call."""
    run_id = f"mcp-{uuid.uuid4().hex[:12]}"
    sent: list[asyncio.Future[Any]] = []

    def on_output(stream: str, text: str) -> None:
        sent.append(asyncio.ensure_future(ctx.report_progress(len(sent) + 1, None, text)))

    try:
        result = await link.execute({**argument, "workspace": str(link.workspace)}, run_id, on_output)
    except ServerRefused as exc:
        raise ToolError(str(exc)) from None
    finally:
        if sent:
            await asyncio.gather(*sent, return_exceptions=True)
    return CallToolResult(content=[TextContent(type="text", text=rendered(result))], structured_content=result)


async def _ask(link: ServerLink, name: str, argument: dict[str, Any]) -> dict[str, Any]:
    try:
        return await link.command(name, argument)
    except ServerRefused as exc:
        raise ToolError(str(exc)) from None


def build(workspace: Path) -> tuple[MCPServer, ServerLink]:
    link = ServerLink(workspace, "cellbox-mcp")
    # WARNING: the SDK logs every request at INFO, and pygls every message it
    # sends; the host's log (our stderr) wants neither.
    server = MCPServer("cellbox", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(description="Run a code snippet in the workspace's sandbox and return its output and exit code.")
    async def run_code(
        code: str, ctx: Context, language: str = "python", timeout: float | None = None, session: str | None = None
    ) -> CallToolResult:
        """code: the program; language: python, bash or sh; timeout: seconds (default: the
        workspace's); session: run in this named session (a kernel that keeps state between calls)."""
        argument: dict[str, Any] = {"blocks": [{"language": language, "code": code}]}
        if timeout is not None:
            argument["timeout"] = timeout
        if session is not None:
            argument["session"] = session
        return await _run(link, argument, ctx)

    @server.tool(description="Run the code blocks of a Markdown file, or the `# %%` cells of a script, in the sandbox.")
    async def run_document(
        path: str, ctx: Context, block: int | None = None, line: int | None = None, timeout: float | None = None
    ) -> CallToolResult:
        """path: the file, relative to the workspace; block: the Nth runnable block (from 1);
        line: the block holding this line (from 1); neither: every block in order."""
        file = (workspace / path).resolve()
        if not file.is_relative_to(workspace):
            raise ToolError(f"{path}: only files of the workspace {workspace} can be run")
        if not file.is_file():
            raise ToolError(f"{path}: no such file in the workspace {workspace}")
        return await _run(link, document_run(file.as_uri(), block, line, timeout), ctx)

    @server.tool(description="Restart the sandbox (files in the workspace stay), or only a named session's kernel.")
    async def restart(session: str | None = None) -> dict[str, Any]:
        argument = {"workspace": str(workspace), **({"session": session} if session else {})}
        return await _ask(link, Command.RESTART, argument)

    @server.tool(description="Stop the sandbox's container; the next run starts it again.")
    async def stop() -> dict[str, Any]:
        return await _ask(link, Command.STOP, {"workspace": str(workspace)})

    @server.tool(description="The sandbox's state: its container, image and sessions.")
    async def status() -> dict[str, Any]:
        return await _ask(link, Command.STATUS, {})

    return server, link


def run(workspace: Path) -> None:
    logging.getLogger("pygls").setLevel(logging.WARNING)
    server, link = build(workspace)

    async def main() -> None:
        try:
            await server.run_stdio_async()
        finally:
            await link.close()

    asyncio.run(main())
