"""`cellbox mcp` (issue 16): the Model Context Protocol over stdio, driven by
the official MCP client (ClientSession over stdio_client); real daemon, real
engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys

import pytest

pytest.importorskip("mcp", reason="cellbox[mcp] is part of the test extra")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from tests.conftest import TEST_IMAGE  # noqa: E402


@contextlib.asynccontextmanager
async def mcp_session(workspace):
    # The test's own XDG folders and engine: the server inherits them, as an agent host passes its env.
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "cellbox", "mcp", str(workspace)], env=dict(os.environ), cwd=workspace,
    )
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.fixture
def mcp_workspace(make_workspace):
    return make_workspace("agent", f'image = "{TEST_IMAGE}"\n')


async def test_tools_are_listed_with_their_input_schemas(mcp_workspace):
    async with mcp_session(mcp_workspace) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"run_code", "run_document", "restart", "stop", "status"}
    schema = tools["run_code"].input_schema
    assert schema["required"] == ["code"]
    assert set(schema["properties"]) == {"code", "language", "timeout", "session"}
    assert "ctx" not in schema["properties"]
    assert {"path", "block", "line"} <= set(tools["run_document"].input_schema["properties"])


async def test_run_code_gives_cellbox_executes_result_and_a_text_rendering(mcp_workspace):
    async with mcp_session(mcp_workspace) as session:
        result = await session.call_tool("run_code", {"code": "print(6 * 7)"})
        assert result.is_error is False
        structured = result.structured_content
        assert (structured["exitCode"], structured["output"], structured["status"]) == (0, "42\n", "ok")
        assert structured["blocks"][0]["language"] == "python"
        assert "42\n[block 1 · python · ok · exit 0]" in result.content[0].text
        failed = await session.call_tool("run_code", {"code": "echo oops >&2; exit 3", "language": "bash"})
        assert failed.is_error is False  # the code failed, not the tool
        assert (failed.structured_content["exitCode"], failed.structured_content["status"]) == (3, "error")
        await session.call_tool("stop", {})


async def test_output_streams_as_progress_while_the_run_goes(mcp_workspace):
    heard: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append(message or "")

    async with mcp_session(mcp_workspace) as session:
        code = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
        result = await session.call_tool("run_code", {"code": code}, progress_callback=on_progress)
        assert result.structured_content["output"] == "tick 0\ntick 1\ntick 2\n"
        assert "".join(heard) == "tick 0\ntick 1\ntick 2\n"
        await session.call_tool("stop", {})


async def test_cancelling_the_call_stops_the_run_in_the_sandbox(mcp_workspace, engine):
    from tests.e2e.test_execution import surviving

    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if "waiting" in (message or ""):
            started.set()

    async with mcp_session(mcp_workspace) as session:
        call = asyncio.ensure_future(session.call_tool(
            "run_code", {"code": "echo waiting; sleep 381", "language": "bash"}, progress_callback=on_progress
        ))
        await asyncio.wait_for(started.wait(), 60)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(100):
            if not surviving(engine, mcp_workspace, "sleep 381"):
                break
            await asyncio.sleep(0.1)
        assert surviving(engine, mcp_workspace, "sleep 381") == []
        # The server keeps serving.
        after = await session.call_tool("run_code", {"code": "print('still here')"})
        assert after.structured_content["output"] == "still here\n"
        await session.call_tool("stop", {})


async def test_errors_are_tool_errors_with_the_servers_words(mcp_workspace):
    async with mcp_session(mcp_workspace) as session:
        too_short = await session.call_tool("run_code", {"code": "print(1)", "timeout": 0})
        assert too_short.is_error is True and "timeout" in too_short.content[0].text
        outside = await session.call_tool("run_document", {"path": "../../etc/passwd"})
        assert outside.is_error is True and "only files of the workspace" in outside.content[0].text
        missing = await session.call_tool("restart", {"session": "nope"})
        assert missing.is_error is True and "no session named 'nope'" in missing.content[0].text
        assert (await session.call_tool("run_code", {"code": "print(1)"})).structured_content["output"] == "1\n"
        await session.call_tool("stop", {})


async def test_run_document_runs_a_markdown_files_blocks(mcp_workspace):
    (mcp_workspace / "notes.md").write_text("# Notes\n\n```python\nx = 2\nprint(x)\n```\n\n```bash\necho two\n```\n")
    async with mcp_session(mcp_workspace) as session:
        every = await session.call_tool("run_document", {"path": "notes.md"})
        assert [b["output"] for b in every.structured_content["blocks"]] == ["2\n", "two\n"]
        second = await session.call_tool("run_document", {"path": "notes.md", "block": 2})
        assert second.structured_content["output"] == "two\n"
        by_line = await session.call_tool("run_document", {"path": "notes.md", "line": 4})
        assert by_line.structured_content["output"] == "2\n"
        await session.call_tool("stop", {})


async def test_the_agent_shares_the_projects_daemon_and_its_container(mcp_workspace, runtime_dir):
    cli = [sys.executable, "-m", "cellbox"]
    subprocess.run([*cli, "daemon", "start", str(mcp_workspace)], check=True, capture_output=True)
    try:
        # A block run through the daemon (as the editor's) leaves a mark in the container's /tmp.
        marked = subprocess.run([*cli, "exec", "-L", "sh", "-c", "echo from-the-editor > /tmp/mark"],
                                cwd=mcp_workspace, capture_output=True, text=True)
        assert marked.returncode == 0, marked.stderr
        # A session kernel lives in the daemon that started it: only the same daemon sees its state.
        kept = subprocess.run([*cli, "exec", "-L", "python", "-s", "shared", "-c", "x = 41"],
                              cwd=mcp_workspace, capture_output=True, text=True)
        assert kept.returncode == 0, kept.stderr
        async with mcp_session(mcp_workspace) as session:
            seen = await session.call_tool("run_code", {"code": "cat /tmp/mark", "language": "sh"})
            assert seen.structured_content["output"] == "from-the-editor\n"
            state = await session.call_tool("run_code", {"code": "print(x + 1)", "session": "shared"})
            assert state.structured_content["output"] == "42\n"
            status = await session.call_tool("status", {})
            assert status.structured_content["sandboxes"][0]["state"] == "running"
    finally:
        subprocess.run([*cli, "stop"], cwd=mcp_workspace, capture_output=True)
        subprocess.run([*cli, "daemon", "stop", str(mcp_workspace)], capture_output=True)
