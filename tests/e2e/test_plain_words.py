"""What a user reads when something is mistyped or out of reach (issue 13,
items 13-15): the language or key that was not understood and the nearest
one, why a block is only saved, file names and 1-based line numbers instead of
the protocol's fields and URIs, and which process holds a Docker setting."""

from __future__ import annotations

import textwrap

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE
from tests.e2e.daemon_support import cellbox
from tests.e2e.test_documents import lenses, open_document, wait_for_diagnostics

TYPO = textwrap.dedent(
    """\
    # Notes

    ```pyhton
    print("never run")
    ```

    ```toml
    key = "a fence of prose, not a typo"
    ```
    """
)

MIXED = TYPO + textwrap.dedent(
    """\

    ```python
    print("runs")
    ```

    ```js
    console.log("saved only")
    ```
    """
)


async def test_a_mistyped_fence_is_a_warning_on_its_line_and_named_when_run(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    uri = await open_document(daemon, workspace / "notes.md", MIXED, "markdown")
    (warning,) = await wait_for_diagnostics(daemon, uri, 1)  # on opening: nothing has run
    assert warning.range.start.line == 2 and warning.severity == types.DiagnosticSeverity.Warning
    assert "'pyhton'" in warning.message and "Did you mean python?" in warning.message
    # Running the line inside it says why it is no block, in the user's words.
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 3, "character": 0}})
    assert error.value.code == -32602
    assert error.value.message.startswith("line 4 of notes.md: cellbox does not know the language 'pyhton', so ")
    assert "Did you mean python?" in error.value.message
    # Fixing the typo takes the warning away.
    daemon.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(2, 3), types.Position(2, 9)), text="python")],
    ))
    await wait_for_diagnostics(daemon, uri, 0)


async def test_a_block_that_is_only_saved_says_so_in_its_lens_and_output(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    uri = await open_document(daemon, workspace / "notes.md", MIXED, "markdown")
    found = [(lens.range.start.line, lens.command.title) for lens in await lenses(daemon, uri)]
    assert (14, "javascript: saved only, not run (execution_policies)") in found
    assert [title for line, title in found if line == 10] == ["▶ Run"]  # python runs: no such lens
    result = await daemon.command("cellbox.execute", {"uri": uri, "position": {"line": 15, "character": 0}, "runId": "js"})
    (block,) = result["blocks"]
    assert block["output"].startswith(f"Code saved to {block['codeFile']}\n")
    assert "javascript blocks are only saved, not run: to run them, set javascript = true under " \
           "[execution_policies] in cellbox.toml" in block["output"]
    # ...and streamed, as any output is, so that editors show it under the block.
    streamed = [n.text for n in daemon.client.cellbox_output if n.runId == "js" and hasattr(n, "text")]
    assert "".join(streamed) == block["output"]
    # A workspace that lets javascript run has no such lens.
    (workspace / "cellbox.toml").write_text(f'image = "{TEST_IMAGE}"\n[execution_policies]\njavascript = true\n')
    other = await start_daemon(workspace)
    uri = await open_document(other, workspace / "notes.md", MIXED, "markdown")
    assert not [lens for lens in await lenses(other, uri) if "saved only" in lens.command.title]


def test_cli_run_of_only_mistyped_fences_says_which_and_fails(workspace, runtime_dir):
    (workspace / "notes.md").write_text(TYPO)
    result = cellbox("run", "notes.md", cwd=workspace)
    assert result.returncode == 1
    assert result.stderr.startswith("cellbox: notes.md has no runnable block. Line 3: ")
    assert "cellbox does not know the language 'pyhton', so this block does not run. Did you mean python?" \
        in result.stderr
    assert "file://" not in result.stderr


def test_cli_run_warns_of_a_mistyped_fence_beside_blocks_that_run(workspace, runtime_dir):
    (workspace / "notes.md").write_text(MIXED)
    result = cellbox("run", "notes.md", cwd=workspace)
    assert result.returncode == 0 and result.stdout.startswith("runs\nCode saved to ")
    assert result.stdout.endswith("\njavascript blocks are only saved, not run: to run them, set javascript = true "
                                  "under [execution_policies] in cellbox.toml.\n")
    assert "⚠ notes.md:3: cellbox does not know the language 'pyhton', so this block does not run. " \
        "Did you mean python?" in result.stderr.splitlines()[-3]


def test_cli_exec_of_a_misspelt_language_names_it_and_the_nearest_one(workspace, runtime_dir):
    result = cellbox("exec", "-L", "pyhton", "-c", "print(1)", cwd=workspace)
    assert result.returncode == 1
    assert "Unsupported language pyhton: did you mean python? cellbox runs bash, " in result.stderr
    assert "[execution_policies] in cellbox.toml" in result.stderr


def test_a_misspelt_setting_suggests_the_key_meant(workspace, runtime_dir):
    (workspace / "cellbox.toml").write_text(f'imgae = "{TEST_IMAGE}"\n')
    result = cellbox("exec", "-L", "sh", "-c", "true", cwd=workspace)
    assert result.returncode == 1
    assert "unknown setting 'imgae' (did you mean 'image'?)" in result.stderr


def test_messages_name_the_file_and_its_lines_not_the_protocol(workspace, runtime_dir):
    (workspace / "docs").mkdir()
    (workspace / "docs" / "notes.md").write_text(MIXED)
    outside = cellbox("run", "docs/notes.md", "--line", "1", cwd=workspace)
    assert outside.returncode == 1
    assert outside.stderr == (
        "cellbox: line 1 of docs/notes.md is not in a runnable block (code of its blocks starts at lines 12, 16)\n"
    )
    too_far = cellbox("run", "docs/notes.md", "--block", "5", cwd=workspace)
    assert too_far.stderr.startswith("cellbox: docs/notes.md has blocks 1 to 2; got 5")


def test_an_unreachable_engine_is_told_in_words_not_python(workspace, runtime_dir):
    failed = cellbox("exec", "-L", "sh", "-c", "true", cwd=workspace, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert failed.returncode == 1
    assert "Cannot reach the Docker engine at unix:///nonexistent.sock (from DOCKER_HOST): no socket or file there. " \
        in failed.stderr
    assert "FileNotFoundError" not in failed.stderr and "('Connection aborted.'" not in failed.stderr


def test_a_daemon_started_with_a_broken_docker_host_says_it_holds_it(workspace, runtime_dir):
    started = cellbox("daemon", "start", str(workspace), env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert started.returncode == 0
    pid = started.stdout.split("pid ")[1].split()[0]
    # This shell has no DOCKER_HOST: the daemon's is the one that counts.
    clean = cellbox("exec", "-L", "sh", "-c", "echo hi", cwd=workspace, env={"DOCKER_HOST": ""})
    assert clean.returncode == 1
    assert f"This is the project's daemon (pid {pid}), shared by the editor and `cellbox run`: it was started " \
        "with DOCKER_HOST=tcp://127.0.0.1:1 and keeps that setting" in clean.stderr
    assert "`cellbox daemon stop`, then run again" in clean.stderr
    assert cellbox("daemon", "stop", str(workspace)).returncode == 0
    again = cellbox("exec", "-L", "sh", "-c", "echo hi", cwd=workspace, env={"DOCKER_HOST": ""})
    assert (again.returncode, again.stdout) == (0, "hi\n")
