"""Document-aware execution over stdio: blocks found in Markdown and `# %%`
files, run by position, selection or all; lenses; streamed output; cancel;
progress; diagnostics. Run with VS Code's and Neovim 0.7's capabilities."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.test_execution import surviving

CLIENTS = ["visual-studio-code", "neovim@v0.7.0"]

MARKDOWN = textwrap.dedent(
    """\
    # Notes

    ```python title=first
    print("backticks")
    ```

    ~~~bash
    echo tildes
    ~~~

    ````sh
    echo 'longer fence with ``` inside'
    ````

    - a list item

      ```python
      print("indented in a list")
      ```

    ```
    no language: not runnable
    ```

    ```ruby
    puts "unknown language: not runnable"
    ```

    ```{python}
    print("quarto style")
    ```
    """
)

SCRIPT = textwrap.dedent(
    """\
    import sys
    # %% setup
    def helper(n):
        return 10 / n

    value = helper(5)
    print("value", value)
    # %% second cell
    print("second")
    {}["missing"]
    """
)


@pytest.fixture(params=CLIENTS)
def client_name(request) -> str:
    return request.param


async def a_cell_run_gets_its_diagnostic(daemon, workspace) -> None:
    """The editor-facing core on any engine: run a `# %%` file's cells, get
    the failing one's diagnostic on the line that raised."""
    text = "# %%\nprint('fine')\n# %%\nvalue = 1\n{}['missing']\n"
    uri = await open_document(daemon, workspace / "cells.py", text, "python")
    result = await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    assert [b["status"] for b in result["blocks"]] == ["ok", "error"]
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    assert diagnostic.range.start.line == 4 and diagnostic.message == "KeyError: 'missing'"


async def open_document(daemon, path, text: str, language_id: str) -> str:
    path.write_text(text)
    uri = path.as_uri()
    daemon.client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text))
    )
    return uri


async def lenses(daemon, uri: str) -> list[types.CodeLens]:
    return await daemon.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def test_every_fence_form_is_found_and_runs(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "notes.md", MARKDOWN, "markdown")
    found = await lenses(daemon, uri)
    assert [(lens.range.start.line, lens.command.title) for lens in found] == [
        (0, "▶ Run all"), (2, "▶ Run"), (6, "▶ Run"), (10, "▶ Run"), (16, "▶ Run"), (28, "▶ Run"),
    ]
    result = await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    assert [b["output"] for b in result["blocks"]] == [
        "backticks\n", "tildes\n", "longer fence with ``` inside\n", "indented in a list\n", "quarto style\n",
    ]
    assert [b["range"]["start"]["line"] for b in result["blocks"]] == [3, 7, 11, 17, 29]


async def test_a_run_lens_spans_its_block_so_clients_need_not_find_blocks(workspace, start_daemon):
    text = "# Notes\n\n```python\nprint(1)\nprint(2)\n```\n\nprose\n"
    daemon = await start_daemon(workspace)
    uri = await open_document(daemon, workspace / "span.md", text, "markdown")
    (run,) = [lens for lens in await lenses(daemon, uri) if lens.command.title == "▶ Run"]
    # From the opening fence (line 2) to the line after the closing fence (line 5), end exclusive.
    assert (run.range.start.line, run.range.end.line, run.range.end.character) == (2, 6, 0)


async def test_run_the_block_under_the_cursor(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "notes.md", MARKDOWN, "markdown")
    result = await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 7, "character": 3}})
    assert [b["output"] for b in result["blocks"]] == ["tildes\n"]
    assert result["blocks"][0]["range"] == {"start": {"line": 7, "character": 0}, "end": {"line": 8, "character": 0}}
    assert result["blocks"][0]["extent"] == {"start": {"line": 6, "character": 0}, "end": {"line": 9, "character": 0}}
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 0, "character": 0}})
    assert error.value.code == -32602 and "line 1" in error.value.message


async def test_run_a_selection_in_the_documents_language(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "cells.py", "x = 6\nprint(x * 7)\nprint('not selected')\n", "python")
    selection = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
    result = await daemon.command("cellbox.execute", {"uri": uri, "range": selection})
    assert (result["blocks"][0]["language"], result["output"]) == ("python", "42\n")


async def test_cells_and_a_file_without_markers(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "cells.py", SCRIPT, "python")
    assert [lens.range.start.line for lens in await lenses(daemon, uri)] == [0, 1, 7]
    plain = await open_document(daemon, workspace / "plain.sh", "echo one\necho two\n", "shellscript")
    assert [lens.range.start.line for lens in await lenses(daemon, plain)] == [0]
    result = await daemon.command("cellbox.execute", {"uri": plain, "all": True})
    assert result["output"] == "one\ntwo\n"
    # A cell's extent starts at its marker and ends where the next cell begins;
    # blockStarted carries it too, for a client to draw under the block at once.
    cell = await daemon.command("cellbox.execute", {"uri": uri, "block": 2, "runId": "cell-2"})
    assert cell["blocks"][0]["extent"] == {"start": {"line": 1, "character": 0}, "end": {"line": 7, "character": 0}}
    (started,) = [n for n in daemon.client.cellbox_output if n.runId == "cell-2" and not hasattr(n, "text")]
    assert (started.extent.start.line, started.extent.end.line) == (1, 7)


async def test_a_lens_command_sent_back_as_is_runs_its_block(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "notes.md", MARKDOWN, "markdown")
    run_lens = [lens for lens in await lenses(daemon, uri) if lens.range.start.line == 16][0]
    result = await daemon.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=run_lens.command.command, arguments=run_lens.command.arguments)
    )
    assert result["output"] == "indented in a list\n"
    # The lens of that block now shows its outcome.
    after = [lens.command.title for lens in await lenses(daemon, uri) if lens.range.start.line == 16]
    assert after[0] == "▶ Run" and after[1].startswith("✓ ") and after[1].endswith(" s")


async def test_output_streams_in_order_before_the_response(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    code = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.2)\n"
    result = await daemon.execute(("python", code), ("sh", "echo err >&2"), runId="stream-1")
    events = [n for n in daemon.client.cellbox_output if n.runId == "stream-1"]  # all arrived before the response
    notes = [n for n in events if hasattr(n, "text")]
    starts = [(i, n.blockIndex) for i, n in enumerate(events) if not hasattr(n, "text")]
    first_output = {n.blockIndex: i for i, n in reversed(list(enumerate(events))) if hasattr(n, "text")}
    assert [index for _, index in starts] == [0, 1]
    assert all(position < first_output[index] for position, index in starts)  # a block's start precedes its output
    assert len(notes) >= 5  # pieces, not one lump at the end
    assert "".join(n.text for n in notes if n.blockIndex == 0) == result["blocks"][0]["output"]
    assert [(n.blockIndex, n.stream, n.text) for n in notes if n.blockIndex == 1] == [(1, "stderr", "err\n")]
    assert result["runId"] == "stream-1"


async def test_a_plain_python_print_streams_when_printed(workspace, start_daemon):
    # No flush=True: a block's stdout is a pipe, where Python buffers by default.
    daemon = await start_daemon(workspace)
    code = "import time\nprint('before')\ntime.sleep(1)\nprint('after')\n"
    await daemon.execute(("python", code), runId="plain-print")
    texts = [n.text for n in daemon.client.cellbox_output if n.runId == "plain-print" and hasattr(n, "text")]
    # "before" came in pieces of its own, a second ahead of "after"; not in
    # one lump with it at the exit. (Unbuffered, print may write the text and
    # its newline separately.)
    first_after = next(i for i, text in enumerate(texts) if "after" in text)
    assert "".join(texts[:first_after]) == "before\n"
    assert "".join(texts) == "before\nafter\n"


async def test_cancel_request_stops_the_run(workspace, start_daemon, engine, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    await daemon.execute(("sh", "true"))
    params = types.ExecuteCommandParams(
        command="cellbox.execute", arguments=[{"blocks": [{"language": "sh", "code": "sleep 351"}], "runId": "c1"}]
    )
    pending = daemon.client.protocol.send_request("workspace/executeCommand", params, msg_id="cancel-me")
    await asyncio.sleep(1.0)
    assert surviving(engine, workspace, "sleep 351") != []
    daemon.client.protocol.notify("$/cancelRequest", types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(asyncio.wrap_future(pending), 5)
    assert error.value.code == -32800  # RequestCancelled
    assert surviving(engine, workspace, "sleep 351") == []  # gone within the second allowed


async def test_progress_begins_reports_and_ends(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    await daemon.execute(("sh", "sleep 2.5"), ("sh", "true"), runId="p1")
    (reports,) = [r for token, r in daemon.client.progress_reports.items() if token.startswith("cellbox-run-p1-")]
    kinds = [type(r).__name__ for r in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert reports[0].cancellable is True and reports[0].message.startswith("block 1/2")
    messages = [r.message for r in reports if type(r).__name__ == "WorkDoneProgressReport"]
    assert any(m.startswith("block 1/2 · 1.") for m in messages)  # the elapsed time ticks
    assert any(m.startswith("block 2/2") for m in messages)


async def wait_for_diagnostics(daemon, uri: str, count: int) -> list[types.Diagnostic]:
    for _ in range(50):
        found = daemon.client.diagnostics.get(uri)
        if found is not None and len(found) == count:
            return list(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"diagnostics of {uri}: {daemon.client.diagnostics.get(uri)}")


async def test_a_traceback_becomes_a_diagnostic_on_the_line_that_raised(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "cells.py", SCRIPT, "python")
    result = await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 8, "character": 0}})
    assert result["blocks"][0]["status"] == "error"
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    # Raised in the second cell (which runs alone, in a fresh process): its
    # line 2 is line 9 of the document (0-based), not line 2.
    assert diagnostic.range.start.line == 9
    assert diagnostic.message == "KeyError: 'missing'"
    assert diagnostic.source == "cellbox" and diagnostic.severity == types.DiagnosticSeverity.Error


async def test_a_function_defined_earlier_in_the_same_block(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    text = "# %%\ndef parse(s):\n    return int(s)\n\nparse('12')\nparse('x')\n"
    uri = await open_document(daemon, workspace / "one.py", text, "python")
    await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    assert diagnostic.range.start.line == 2  # `return int(s)`, the deepest line of the block
    assert diagnostic.message.startswith("ValueError: invalid literal")


async def test_diagnostics_clear_when_the_block_changes_or_runs_again(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "cells.py", SCRIPT, "python")
    await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 8, "character": 0}})
    await wait_for_diagnostics(daemon, uri, 1)

    def edit(version: int, line: int, text: str) -> None:
        daemon.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(line, 0), types.Position(line, 0)), text=text)],
        ))

    edit(2, 0, "# a comment\n")  # above the block: the diagnostic moves with it
    for _ in range(50):
        if [d.range.start.line for d in daemon.client.diagnostics[uri]] == [10]:
            break
        await asyncio.sleep(0.05)
    assert [d.range.start.line for d in daemon.client.diagnostics[uri]] == [10]
    edit(3, 10, "x = 1; ")  # inside the block: cleared
    await wait_for_diagnostics(daemon, uri, 0)


async def test_a_diagnostic_lands_where_the_block_is_when_its_run_ends(workspace, start_daemon, client_name):
    # Lines typed above a block while it runs move the block: its diagnostic
    # goes where the block is when the run ends, not where it was when asked.
    daemon = await start_daemon(workspace, capabilities=client_name)
    text = "# %%\nimport time\ntime.sleep(1.5)\nraise KeyError('late')\n"
    uri = await open_document(daemon, workspace / "late.py", text, "python")
    running = asyncio.ensure_future(daemon.command("cellbox.execute", {"uri": uri, "all": True}))
    await asyncio.sleep(0.5)
    daemon.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(0, 0), types.Position(0, 0)), text="# one\n# two\n# three\n")],
    ))
    assert (await asyncio.wait_for(running, 30))["blocks"][0]["status"] == "error"
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    assert diagnostic.message == "KeyError: 'late'"
    assert diagnostic.range.start.line == 6  # the raise, three lines lower than when the run began


async def test_diagnostics_clear_when_the_block_runs_again_and_passes(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "flag.py", "print(open('flag.txt').read())\n", "python")
    await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    assert diagnostic.message.startswith("FileNotFoundError")
    (workspace / "flag.txt").write_text("here")
    assert (await daemon.command("cellbox.execute", {"uri": uri, "all": True}))["exitCode"] == 0
    assert await wait_for_diagnostics(daemon, uri, 0) == []


async def test_a_failing_shell_block_marks_its_first_line(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    text = "# Shell\n\n```bash\necho fine\nls /no/such/place\nexit 3\n```\n"
    uri = await open_document(daemon, workspace / "shell.md", text, "markdown")
    await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    (diagnostic,) = await wait_for_diagnostics(daemon, uri, 1)
    assert diagnostic.range.start.line == 3
    assert "No such file or directory" in diagnostic.message


async def test_cancelling_the_progress_cancels_the_run(workspace, start_daemon, engine, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    await daemon.execute(("sh", "true"))
    running = asyncio.ensure_future(daemon.execute(("sh", "echo started; sleep 361"), runId="ui-cancel"))
    token = None
    for _ in range(100):
        tokens = [t for t in daemon.client.progress_reports if t.startswith("cellbox-run-ui-cancel-")]
        if tokens and surviving(engine, workspace, "sleep 361"):
            token = tokens[0]
            break
        await asyncio.sleep(0.05)
    assert token is not None
    daemon.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(running, 10)
    assert (result["status"], result["exitCode"], result["output"]) == ("cancelled", 130, "started\n\nCancelled")
    assert surviving(engine, workspace, "sleep 361") == []


async def test_progress_on_the_token_the_client_gave(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    daemon.client.progress_reports["client-token-1"] = []  # the client made this token itself
    await daemon.client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cellbox.execute", work_done_token="client-token-1",
        arguments=[{"blocks": [{"language": "sh", "code": "sleep 1.2"}]}],
    ))
    kinds = [type(r).__name__ for r in daemon.client.progress_reports["client-token-1"]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert "WorkDoneProgressReport" in kinds
    assert not [t for t in daemon.client.progress_reports if t.startswith("cellbox-run-")]  # no second progress


async def test_a_block_started_notice_gives_its_place_in_the_document(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "notes.md", MARKDOWN, "markdown")
    await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 7, "character": 0}, "runId": "where"})
    (started,) = [n for n in daemon.client.cellbox_output if n.runId == "where" and not hasattr(n, "text")]
    assert (started.blockIndex, started.language) == (0, "bash")
    assert started.range.start.line == 7 and started.range.end.line == 8


async def test_a_block_is_known_by_its_number_in_the_document(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    uri = await open_document(daemon, workspace / "notes.md", MARKDOWN, "markdown")
    by_position = await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 7, "character": 0}, "runId": "n1"})
    by_number = await daemon.command("cellbox.execute", {"uri": uri, "block": 4, "runId": "n2"})
    everything = await daemon.command("cellbox.execute", {"uri": uri, "all": True, "runId": "n3"})
    selection = await daemon.command("cellbox.execute", {
        "uri": uri, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 4, "character": 0}}, "runId": "n4"})
    given = await daemon.execute(("sh", "true"), runId="n5")
    started = {run: [n.blockNumber for n in daemon.client.cellbox_output if n.runId == run and not hasattr(n, "text")]
               for run in ("n1", "n2", "n3", "n4", "n5")}
    assert started == {"n1": [2], "n2": [4], "n3": [1, 2, 3, 4, 5], "n4": [None], "n5": [None]}
    assert [b["blockNumber"] for b in by_position["blocks"]] == [2]
    assert [b["blockNumber"] for b in by_number["blocks"]] == [4]
    assert [b["blockNumber"] for b in everything["blocks"]] == [1, 2, 3, 4, 5]
    assert [b["blockNumber"] for b in selection["blocks"] + given["blocks"]] == [None, None]
    assert everything["skipped"] == by_number["skipped"] == []
    # The progress says it too.
    begun = {token.split("-")[2]: reports[0].message for token, reports in daemon.client.progress_reports.items()
             if token.startswith("cellbox-run-n")}
    assert [begun[run].split(" · ")[0] for run in ("n1", "n2", "n3", "n4", "n5")] == [
        "block 2", "block 4", "block 1/5", "selection", "block 1"]


async def test_run_all_names_the_blocks_it_skipped(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    text = "# %%\nprint(1)\n# %%\nraise SystemExit(2)\n# %%\nprint(3)\n# %%\nprint(4)\n"
    uri = await open_document(daemon, workspace / "stops.py", text, "python")
    result = await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    assert [b["blockNumber"] for b in result["blocks"]] == [1, 2]
    assert [(s["blockIndex"], s["blockNumber"], s["language"], s["range"]["start"]["line"]) for s in result["skipped"]] == [
        (2, 3, "python", 5), (3, 4, "python", 7)]
    given = await daemon.execute(("sh", "exit 1"), ("bash", "echo no"))
    assert given["skipped"] == [{"blockIndex": 1, "blockNumber": None, "language": "bash", "range": None, "extent": None}]


TRACEBACK_NOTES = textwrap.dedent(
    """\
    # Errors

    ```python
    def parse(text):
        return int(text)

    parse("x")
    ```

    ```bash
    echo fine
    no-such-command
    ```

    ```python
    # filename: named.py
    import warnings
    warnings.warn("careful")
    raise KeyError("named")
    ```
    """
)


async def test_tracebacks_name_the_document_and_its_lines(workspace, start_daemon, client_name):
    daemon = await start_daemon(workspace, capabilities=client_name)
    (workspace / "docs").mkdir()
    uri = await open_document(daemon, workspace / "docs" / "errors.md", TRACEBACK_NOTES, "markdown")
    results = [await daemon.command("cellbox.execute", {"uri": uri, "block": n, "runId": f"tb{n}"}) for n in (1, 2, 3)]
    python, shell, named = (r["blocks"][0] for r in results)
    # As the user wrote it: the document's path in the workspace, and its lines.
    assert '  File "docs/errors.md", line 7, in <module>\n' in python["output"]
    assert '  File "docs/errors.md", line 5, in parse\n' in python["output"]
    assert "docs/errors.md: line 12: no-such-command: command not found" in shell["output"]
    assert "docs/errors.md:18: UserWarning: careful" in named["output"]
    assert '  File "docs/errors.md", line 19, in <module>\n' in named["output"]
    for block in (python, shell, named):
        assert "tmp_code_" not in block["output"] and "/workspace/named.py" not in block["output"]
    # What the sandbox ran is kept, for whoever wants it.
    assert '/cellbox/blocks/tmp_code_' in python["originalOutput"] and '", line 4, in <module>' in python["originalOutput"]
    assert '"/workspace/named.py", line 4, in <module>' in named["originalOutput"]
    # The streamed output says the same as the result.
    for n, block in zip((1, 2, 3), (python, shell, named), strict=True):
        streamed = "".join(o.text for o in daemon.client.cellbox_output if o.runId == f"tb{n}" and hasattr(o, "text"))
        assert streamed == block["output"]
    # Diagnostics are still on the lines that raised; a shell's words name the document too.
    diagnostics = await wait_for_diagnostics(daemon, uri, 3)
    assert [(d.range.start.line, d.message) for d in diagnostics] == [
        (4, "ValueError: invalid literal for int() with base 10: 'x'"),
        (10, "docs/errors.md: line 12: no-such-command: command not found"),
        (18, "KeyError: 'named'"),
    ]


async def test_a_block_given_as_text_is_called_by_its_place_in_the_request(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", "true"), ("python", "x = 1\nprint(x / 0)"))
    assert '  File "<block 2>", line 2, in <module>\n' in result["blocks"][1]["output"]
    assert result["blocks"][0]["originalOutput"] is None  # nothing renamed: nothing kept twice
    passing = await daemon.execute(("python", "print('fine')"))
    assert passing["blocks"][0]["originalOutput"] is None
