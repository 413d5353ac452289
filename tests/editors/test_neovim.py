"""The Neovim client (editor-clients/nvim) in a real, headless Neovim,
driving the real `cellbox serve` and engine.

Each test writes files into a workspace, starts `nvim --headless` with the
plugin on its runtimepath, and runs one Lua spec (tests/editors/nvim/*_spec.lua)
that acts as a user would (:CellboxRun with the cursor on a block, ...),
waits for what the user would see, and records it: the text and highlight
groups of the result lines under each block, diagnostics, lenses, messages.
The spec fails on its own when a wait runs out (exit code 1 and a report
naming what it waited for); the assertions on what was seen are here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_IMAGE, containers_of

ROOT = Path(__file__).resolve().parents[2]
# CELLBOX_NVIM_PLUGIN_DIR: another copy of the plugin (e.g. an older commit's, to see a test fail on it).
PLUGIN = Path(os.environ.get("CELLBOX_NVIM_PLUGIN_DIR", ROOT / "editor-clients" / "nvim"))
SPECS = Path(__file__).resolve().parent / "nvim"
SERVER_COMMAND = [sys.executable, "-m", "cellbox", "serve"]
# Records what a client sends it, for what the client alone decides.
STUB_SERVER = Path(__file__).resolve().parent / "stub_server.py"
# CI tests Debian's Neovim (0.7); point CELLBOX_NVIM at another build to test that one.
NVIM = os.environ.get("CELLBOX_NVIM", "nvim")
# A whole spec: several runs, each well within this even when the first
# container start is slow on a loaded machine.
SPEC_TIMEOUT_S = 240

pytestmark = pytest.mark.e2e


def wait_for_removal(engine, workspace: Path, timeout_s: float = 20) -> None:
    """The server stops its sandbox when Neovim quits, and the engine then
    removes it (auto_remove); let that finish before the fixture's own
    clean-up, which would otherwise collide with it."""
    deadline = time.monotonic() + timeout_s
    while containers_of(engine, workspace) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_spec(
    spec: str, workspace: Path, tmp_path: Path, engine, server_command: list[str] = SERVER_COMMAND,
    env: dict[str, str] | None = None,
) -> dict:
    """Run tests/editors/nvim/<spec>_spec.lua in headless Neovim (with `env`
    added to its environment, and so to the server's); return its facts, the
    messages shown through vim.notify, and what Neovim wrote to stderr (where
    headless Neovim shows error messages that bypass vim.notify)."""
    if shutil.which(NVIM) is None:
        # A failure, not a skip: a suite that skips where CI cannot see it tests nothing.
        pytest.fail(f"{NVIM} is not installed: scripts/ensure-neovim installs Debian's neovim")
    report = tmp_path / f"{spec}-report.json"
    home = tmp_path / f"{spec}-home"  # keeps Neovim's state and LSP log out of the real home
    env = {
        **os.environ,
        "CELLBOX_NVIM_PLUGIN": str(PLUGIN),
        "CELLBOX_NVIM_SPECS": str(SPECS),
        "CELLBOX_WORKSPACE": str(workspace),
        "CELLBOX_NVIM_REPORT": str(report),
        "CELLBOX_SERVER_CMD": json.dumps(server_command),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        **(env or {}),
    }
    command = [
        NVIM, "--headless", "--clean", "-n", "-u", str(SPECS / "init.lua"),
        "-c", f"luafile {SPECS / (spec + '_spec.lua')}",
    ]
    completed = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=SPEC_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    wait_for_removal(engine, workspace)
    logs = "\n".join(str(p) + ":\n" + p.read_text()[-4000:] for p in home.rglob("*.log"))
    if not report.exists():
        pytest.fail(
            f"{spec}: Neovim exited with {completed.returncode} without a report\n"
            f"stdout: {completed.stdout[-2000:]}\nstderr: {completed.stderr[-2000:]}\n{logs}"
        )
    outcome = json.loads(report.read_text())
    if completed.returncode != 0 or "error" in outcome:
        pytest.fail(
            f"{spec}: {outcome.get('error', 'no error recorded')}\n"
            f"exit code {completed.returncode}; messages: {outcome['messages']}\n"
            f"stderr: {completed.stderr[-2000:]}\n{logs}"
        )
    # Newer releases warn (on the message line, stderr when headless) when a
    # deprecated API is used.
    assert "deprecated" not in completed.stderr
    assert not [m for m in outcome["messages"] if "deprecated" in m["message"]]
    outcome["stderr"] = completed.stderr
    return outcome


def texts(result: dict) -> list[str]:
    return [line["text"] for line in result["lines"]]


def result_at(results: list[dict], row: int) -> dict:
    matching = [r for r in results if r["row"] == row]
    assert len(matching) == 1, f"expected one result under row {row}, got {results}"
    return matching[0]


def groups_of(result: dict, needle: str) -> set[str]:
    """Highlight groups of the pieces of `result`'s lines that contain `needle`."""
    return {group for line in result["lines"] for text, group in line["chunks"] if needle in text}


MARKDOWN = textwrap.dedent(
    """\
    # Notes

    ```python
    print("hello from python")
    ```

    ```bash
    echo to-stdout
    echo to-stderr >&2
    exit 3
    ```

    ```python
    a = 6 * 7
    print("selected", a)
    print("not selected")
    ```
    """
)


def test_markdown_blocks_show_output_and_outcome_under_the_block(make_workspace, tmp_path, engine):
    workspace = make_workspace()
    (workspace / "notes.md").write_text(MARKDOWN)

    facts = run_spec("markdown", workspace, tmp_path, engine)["facts"]

    # Lenses from the server: "Run all" at the top, "Run" on each fence.
    lenses = facts["lenses_before"]
    assert {"line": 0, "title": "▶ Run all"} in lenses
    assert {(lens["line"], lens["title"]) for lens in lenses} >= {(2, "▶ Run"), (6, "▶ Run"), (12, "▶ Run")}

    # The default buffer-local mappings.
    assert facts["mappings"] == {
        "run": "<Cmd>CellboxRun<CR>", "run_visual": ":CellboxRun<CR>", "cancel": "<Cmd>CellboxCancel<CR>"
    }

    # Outside any block: the server's message, and nothing drawn (the scratch
    # markdown buffer opened before it brought no warning).
    outside = facts["outside"]
    assert len(outside["messages"]) == 1
    assert outside["messages"][0]["message"].startswith("cellbox: line 1 of notes.md ")  # the file's name, not its URI
    assert "not in a runnable block" in outside["messages"][0]["message"]
    assert outside["messages"][0]["level"] == 4  # vim.log.levels.ERROR
    assert outside["results"] == []

    # The Python block's output and outcome hang below its closing fence (row 4).
    python = result_at(facts["python"], 4)
    assert texts(python)[0] == "│ hello from python"
    assert texts(python)[-1].startswith("│ ✓ exit 0 · ")
    assert groups_of(python, "✓") == {"CellboxSuccess"}

    # The shell block: stdout and stderr in arrival order, stderr in its own highlight; ✗ and the exit code.
    shell = result_at(facts["shell"], 10)
    assert texts(shell)[:2] == ["│ to-stdout", "│ to-stderr"]
    assert groups_of(shell, "to-stdout") == {"CellboxOutput"}
    assert groups_of(shell, "to-stderr") == {"CellboxStderr"}
    assert texts(shell)[-1].startswith("│ ✗ exit 3 · ")
    assert groups_of(shell, "✗") == {"CellboxError"}
    # ... and the server's diagnostic on the shell block's first line.
    assert [(d["line"], d["source"], d["severity"]) for d in facts["diagnostics"]] == [(7, "cellbox", 1)]
    assert "to-stderr" in facts["diagnostics"][0]["message"]
    # The outcome lenses the server adds after a run.
    titles = {lens["title"] for lens in facts["lenses_after"]}
    assert any(t.startswith("✓ ") for t in titles) and "✗ exit 3" in titles

    # Running the Python block again replaces its result rather than adding one.
    assert [r["row"] for r in facts["rerun"]] == [4, 10]
    assert texts(result_at(facts["rerun"], 4))[0] == "│ hello from python"

    # Selected lines 14-15 ran as one Python block; its result hangs below line 15.
    selection = result_at(facts["selection"], 14)
    assert texts(selection)[0] == "│ selected 42"
    assert "not selected" not in "\n".join(texts(selection))

    # The "▶ Run" lens ran the whole third block; its result replaced the selection's.
    lens_run = result_at(facts["lens_run"], 16)
    assert texts(lens_run)[:2] == ["│ selected 42", "│ not selected"]
    assert [r["row"] for r in facts["lens_run"]] == [4, 10, 16]

    # :CellboxOutput: the whole output of the block under the cursor in a scratch split.
    full = facts["full_output"]
    assert full["lines"][0].startswith("✗ exit 3")
    assert full["lines"][1:] == ["to-stdout", "to-stderr"]
    assert full["buftype"] == "nofile" and full["windows"] == 2

    assert facts["cleared"] == []


SCRIPT = textwrap.dedent(
    """\
    # %% setup
    def helper(n):
        return 10 / n
    print("setup done", helper(5))
    # %% many lines
    for i in range(30):
        print("line", i)
    # %% failing
    def divide(n):
        return 10 / n
    print("about to fail")
    divide(0)
    """
)


def test_script_cells_run_in_order_with_capped_output_and_the_error_on_its_line(make_workspace, tmp_path, engine):
    workspace = make_workspace()
    (workspace / "cells.py").write_text(SCRIPT)

    facts = run_spec("script", workspace, tmp_path, engine)["facts"]

    assert facts["mappings"] == {"run": "", "clear": "<Cmd>CellboxClear<CR>"}

    results = facts["results"]
    assert [r["row"] for r in results] == [3, 6, 11]
    assert texts(result_at(results, 3))[0] == "│ setup done 2.0"
    # 30 lines: the last 20 are shown, under a line saying how to see the rest.
    capped = texts(result_at(results, 6))
    assert capped[0] == "│ … 10 more lines, :CellboxOutput for all"
    assert capped[1:21] == [f"│ line {i}" for i in range(10, 30)]
    assert capped[21].startswith("│ ✓ exit 0")
    # The failing cell: its traceback on stderr, ✗ with the exit code.
    failing = result_at(results, 11)
    assert texts(failing)[0] == "│ about to fail"
    assert groups_of(failing, "ZeroDivisionError") == {"CellboxStderr"}
    assert texts(failing)[-1].startswith("│ ✗ exit 1")

    # The server's diagnostic is on the line that raised (`return 10 / n`, row 9).
    assert facts["diagnostics"] == [
        {"line": 9, "message": "ZeroDivisionError: division by zero", "severity": 1, "source": "cellbox"}
    ]

    # :CellboxOutput on the capped cell: its outcome, then all 30 lines.
    assert facts["full_output"][0].startswith("✓ exit 0 · ")
    assert facts["full_output"][1:] == [f"line {i}" for i in range(30)]

    assert facts["fixed"].splitlines()[:2] == ["│ about to fail", "│ 2.0"]
    assert facts["fixed"].splitlines()[-1].startswith("│ ✓ exit 0")


STREAMING = textwrap.dedent(
    """\
    ```bash
    for i in 1 2 3; do
      echo "tick $i"
      sleep 1
    done
    echo finished
    ```
    """
)


def test_output_appears_under_the_block_while_it_runs(make_workspace, tmp_path, engine):
    workspace = make_workspace()
    (workspace / "stream.md").write_text(STREAMING)

    facts = run_spec("streaming", workspace, tmp_path, engine)["facts"]

    # Part-way: the first tick, the running clock, and no outcome yet.
    partial = facts["partial"].splitlines()
    assert partial[0] == "│ tick 1"
    assert "│ tick 3" not in partial and "│ finished" not in partial
    assert partial[-1].startswith("│ running… ")
    assert facts["later"].splitlines()[-1].startswith("│ running… ")
    # At the end: everything, then the outcome in place of the clock.
    final = facts["final"].splitlines()
    assert final[:4] == ["│ tick 1", "│ tick 2", "│ tick 3", "│ finished"]
    assert final[-1].startswith("│ ✓ exit 0") and "running…" not in facts["final"]


SLOW = textwrap.dedent(
    """\
    # %% slow
    echo started
    sleep 60
    echo never
    # %% quick
    echo quick
    """
)


def test_cancel_restart_status_and_stop(make_workspace, tmp_path, engine):
    workspace = make_workspace()
    (workspace / "slow.sh").write_text(SLOW)

    facts = run_spec("cancel_restart", workspace, tmp_path, engine)["facts"]

    assert facts["cancel_idle"] == "cellbox: no run is going in this buffer"
    cancelled = facts["cancelled"].splitlines()
    assert cancelled[0] == "│ started" and "│ never" not in cancelled
    assert cancelled[-1].startswith("│ ⊘ cancelled · exit 130")

    # A restart kills the running block: it ends with an error, not "never".
    restarted = facts["restarted"].splitlines()
    assert restarted[0] == "│ started" and "│ never" not in restarted
    # The restart ended it, and the block says so, not just "✗ exit 137".
    assert "│ cellbox: the sandbox was restarted while this block ran, which ended it" in restarted
    assert restarted[-1].startswith("│ ↻ interrupted · exit 137")
    assert "restarted: running" in facts["restart_message"]
    assert facts["after_restart"].splitlines() == ["│ quick", facts["after_restart"].splitlines()[1]]
    assert facts["after_restart"].splitlines()[1].startswith("│ ✓ exit 0")

    assert "running" in facts["status"] and "cellbox-sandbox:bookworm" in facts["status"]
    assert facts["stop"].endswith("stopped")


def test_trust_command_and_the_servers_approval_question(make_workspace, tmp_path, engine):
    """Against a stub server that records what it receives: :CellboxTrust asks
    the server to approve the buffer's workspace, and the server's question
    (window/showMessageRequest) is answered with the number the user types."""
    workspace = make_workspace()
    (workspace / "notes.md").write_text("```sh\necho hi\n```\n")
    log = tmp_path / "stub.jsonl"

    facts = run_spec("trust", workspace, tmp_path, engine, [sys.executable, str(STUB_SERVER), str(log)])["facts"]

    received = [json.loads(line) for line in log.read_text().splitlines()]
    commands = [m["params"] for m in received if m.get("method") == "workspace/executeCommand"]
    assert commands[0] == {"command": "cellbox.trust", "arguments": [{"workspace": str(workspace)}]}
    assert facts["trusted"] == f'cellbox: allowed for {workspace}: network = "bridge" (from {workspace}/cellbox.toml)'

    # The plugin leaves Neovim's own handler in place; the answers are the actions chosen.
    assert not facts["prompt_handler_overridden"]
    answers = [m["result"] for m in received if "method" not in m and "result" in m]
    assert answers == [{"title": "Allow"}, {"title": "Not now"}]
    assert facts["allowed"].splitlines()[0] == "│ Allow"
    assert facts["not_now"].splitlines()[0] == "│ Not now"
    assert "asks to loosen the sandbox" in facts["printed"]


RELOAD = textwrap.dedent(
    """\
    ```python
    print("block one")
    ```

    ```bash
    echo two-start
    sleep 2
    echo two-end
    ```
    """
)


def test_results_follow_their_blocks_when_the_file_is_read_again(make_workspace, tmp_path, engine):
    """Issue 13, item 6: after :e! (the file changed on disk), each result
    hangs from its block, not from the row its block used to be on."""
    workspace = make_workspace()
    (workspace / "reload.md").write_text(RELOAD)

    facts = run_spec("reload", workspace, tmp_path, engine)["facts"]

    # Three lines came in above: block one now ends on row 5, block two on row 11.
    reloaded = facts["reloaded"]
    assert [r["row"] for r in reloaded] == [5, 11]
    assert texts(result_at(reloaded, 5))[0] == "│ block one"
    assert texts(result_at(reloaded, 11))[0] == "│ two-start"
    # Block two was running: the rest of its output came under it, where it now is.
    finished = texts(result_at(facts["finished"], 11))
    assert finished[:2] == ["│ two-start", "│ two-end"] and finished[-1].startswith("│ ✓ exit 0")
    assert [r["row"] for r in facts["finished"]] == [5, 11]
    # Block one changed on disk: its old result is gone; block two's stays.
    assert [r["row"] for r in facts["changed"]] == [11]


LABELS = textwrap.dedent(
    """\
    ```bash
    echo started
    sleep 30
    ```
    """
)


def test_a_blocks_old_outcome_leaves_its_lens_when_it_runs_again_and_on_clear(make_workspace, tmp_path, engine):
    """Issue 13, item 8: no "⊘ cancelled" lens on a block that runs again,
    and :CellboxClear takes the outcome off the lens as well as the lines."""
    workspace = make_workspace()
    (workspace / "labels.md").write_text(LABELS)

    facts = run_spec("stale_labels", workspace, tmp_path, engine)["facts"]

    assert facts["cancelled"] == ["⊘ cancelled"]
    # Running again: no outcome on the lens, while the line under the block runs.
    assert facts["running"] == []
    assert facts["still_running"].splitlines()[-1].startswith("│ running… ")
    assert facts["cancelled_again"] == ["⊘ cancelled"]
    # Cleared: no result lines, no outcome lens; the "▶ Run" lens stays.
    assert facts["cleared"] == [] and facts["cleared_results"] == []
    assert facts["run_lenses"] == [{"line": 0, "title": "▶ Run"}]


def test_an_engine_error_is_told_once_and_ends_the_running_line(make_workspace, tmp_path, engine):
    """Issue 13, item 9: the server shows the engine's error itself
    (window/showMessage) and answers the run with it; the person sees it
    once, and the block's line ends with it rather than "running…"."""
    workspace = make_workspace()
    (workspace / "notes.md").write_text("```bash\necho hi\n```\n")

    outcome = run_spec(
        "engine_error", workspace, tmp_path, engine, env={"DOCKER_HOST": "unix:///nonexistent/cellbox-test.sock"}
    )

    told = [m for m in outcome["messages"] if "nonexistent/cellbox-test.sock" in m["message"]]
    assert len(told) == 1, outcome["messages"]
    assert told[0]["level"] == 4  # vim.log.levels.ERROR
    # Nothing else printed it: not Neovim's own LSP message handler (on stderr when headless).
    assert "nonexistent/cellbox-test.sock" not in outcome["stderr"]
    assert "nonexistent/cellbox-test.sock" not in outcome["facts"]["printed"]
    # The block's line says what ended it, in place of "running…".
    failed = texts(result_at(outcome["facts"]["results"], 2))
    assert len(failed) == 1 and failed[0].startswith("│ ✗ Cannot reach the Docker engine at unix:///nonexistent/")


LONG = "".join(f"Prose line {n}.\n" for n in range(1, 41)) + textwrap.dedent(
    """\
    ```bash
    for i in $(seq 1 12); do echo "line $i"; sleep 0.3; done
    ```
    """
)


def test_output_below_the_window_shows_in_a_float_at_its_bottom(make_workspace, tmp_path, engine):
    """Issue 13, item 7: a block whose output would stream below the window
    (only its first line visible) shows the output's last lines in a float,
    live, then with the outcome; at the window's top here, as its bottom
    line is the cursor's."""
    workspace = make_workspace()
    (workspace / "long.md").write_text(LONG)

    facts = run_spec("overflow", workspace, tmp_path, engine)["facts"]

    # The block's code is the window's last line: its closing fence and the result are below.
    assert facts["view"]["bottom"] == 42
    (running,) = facts["running"]
    assert running["relative"] == "win"
    # Not over the cursor's line (the window's last): at the window's top.
    assert running["row"] == 0 and running["height"] < running["over_height"]
    assert running["lines"][-1].startswith("│ running… ")
    assert "│ line 3" in running["lines"]
    # At the end: the last lines and the outcome, in the float and inline.
    (finished,) = facts["finished"]
    assert finished["lines"][-2:] == ["│ line 12", finished["lines"][-1]]
    assert finished["lines"][-1].startswith("│ ✓ exit 0")
    assert finished["row"] == 0 and finished["height"] == 11  # at most half the window
    assert facts["finished_inline"].splitlines()[0] == "│ line 1"
    # The cursor left the block: no float.
    assert facts["left"] == []
    # Scrolled so that the block's end is mid-window: the float sits over the
    # inline lines' place, the window's last lines, showing their end.
    (scrolled,) = facts["scrolled"]
    assert scrolled["row"] + scrolled["height"] == scrolled["over_height"]
    assert scrolled["lines"][-1].startswith("│ ✓ exit 0")
    # The block low in the window and the cursor in the prose above it: the
    # float covers neither the block's own lines nor the cursor's line.
    view, (low,) = facts["low_view"], facts["low"]
    assert view["last"] == low["over_height"] - 3
    covered = set(range(low["row"], low["row"] + low["height"]))
    assert not covered & set(range(view["first"], view["last"] + 1)), (view, low)
    assert view["cursor"] not in covered


BACK_TO_BACK = textwrap.dedent(
    """\
    ```python
    import time; print("first", time.time())
    ```

    ```python
    import time; print("second", time.time())
    ```
    """
)
ROUNDS = 4


def test_a_run_right_after_another_shows_its_output(make_workspace, tmp_path, engine):
    """Issue 13, item 10: a second :CellboxRun right after the first ended, in a
    fresh workspace, once showed nothing for 20 s (2 runs in 6). Each round
    is a new workspace: its own server, its sandbox started by the first run."""
    base = make_workspace("base")
    rounds = [make_workspace(f"base/round{n}") for n in range(1, ROUNDS + 1)]
    for workspace in rounds:
        (workspace / "notes.md").write_text(BACK_TO_BACK)

    facts = run_spec("back_to_back", base, tmp_path, engine, env={"CELLBOX_TEST_ROUNDS": str(ROUNDS)})["facts"]
    for workspace in rounds:
        wait_for_removal(engine, workspace)

    assert len(facts["rounds"]) == ROUNDS
    for seen in facts["rounds"]:
        assert seen["first"].splitlines()[-1].startswith("│ ✓ exit 0")
        assert seen["second"] is not None, facts["rounds"]  # within 20 s
        assert seen["again"] is not None and seen["again"] != seen["first"], facts["rounds"]


SESSION_DOCUMENT = textwrap.dedent(
    """\
    # Session

    ```python
    x = 41
    ```

    ```python
    print(x + 1)
    ```

    ```python
    import matplotlib.pyplot as plt
    plt.plot([1, 3, 2])
    plt.show()
    ```

    ```python
    import pandas as pd
    pd.DataFrame({"city": ["Oslo", "Lima"], "n": [1, 2]})
    ```

    ```python
    import time
    print("napping", flush=True)
    time.sleep(4)
    ```
    """
)


def test_a_session_keeps_state_and_shows_an_image_and_a_table(make_workspace, tmp_path, engine):
    """Session mode (issue 14): the blocks share a kernel; a figure and a
    DataFrame each get a line naming their file, which :CellboxOpen opens;
    the status line shows the session's state; :CellboxRestartSession loses it."""
    workspace = make_workspace("session", f'image = "{TEST_IMAGE}"\nmode = "session"\n')
    (workspace / "session.md").write_text(SESSION_DOCUMENT)

    outcome = run_spec("session", workspace, tmp_path, engine)
    facts = outcome["facts"]

    assert facts["statusline_before"] == ""  # no block has run in a session yet
    assert facts["open_mapping"] == "<Cmd>CellboxOpen<CR>"
    results = facts["results"]
    assert [r["row"] for r in results] == [4, 8, 14, 19, 25]
    assert texts(result_at(results, 4)) == [texts(result_at(results, 4))[0]]
    assert texts(result_at(results, 4))[0].startswith("│ ✓ exit 0")
    # State kept: the second block saw the first's x.
    assert texts(result_at(results, 8))[0] == "│ 42"

    # The figure: one line naming its PNG, in its own highlight, then the outcome.
    figure = texts(result_at(results, 14))
    (image_line,) = [t for t in figure if "image/png" in t]
    assert image_line.startswith("│ ▣ image/png · :CellboxOpen · ")
    shown_png = os.path.expanduser(image_line.split(" · ", 2)[2])
    assert shown_png.endswith(".png")
    assert groups_of(result_at(results, 14), "image/png") == {"CellboxDisplay"}
    assert figure[-1].startswith("│ ✓ exit 0")
    # :CellboxOpen on the block gave the opener that file, which is a PNG.
    opened = facts["open_figure"]
    assert (opened["path"], opened["mime"]) == (shown_png, "image/png")
    assert opened["png"] is True
    # :CellboxOutput lists it last; <CR> on its line opens it too.
    full = facts["full_output"]
    assert full["lines"][-1] == image_line.removeprefix("│ ")
    assert full["opened"] == {"path": shown_png, "mime": "image/png"}
    # image.nvim (a recorder here) was asked to draw it under the block.
    assert [(p["path"], p["y"], p["rendered"]) for p in facts["pictures"]] == [(shown_png, 15, True)]

    # The DataFrame: its text inline, as before, and a line for its HTML table.
    frame = texts(result_at(results, 19))
    assert any("Oslo" in t for t in frame)
    (table_line,) = [t for t in frame if "text/html" in t]
    assert table_line.startswith("│ ▦ table (text/html) · :CellboxOpen · ")
    shown_html = os.path.expanduser(table_line.split(" · ", 2)[2])
    assert facts["open_table"]["path"] == shown_html and shown_html.endswith(".html")
    assert facts["open_table"]["mime"] == "text/html" and facts["open_table"]["table"] is True
    # A block with nothing to open opens nothing.
    assert facts["open_none"] == {"nothing": True}
    assert any(m["message"] == "cellbox: this block has no image or other output to open" for m in outcome["messages"])

    # The status line: the session's state, from cellbox.status.
    # ... and the kernel's resident memory.
    assert re.fullmatch(r"cellbox: session idle · 5 blocks · \d+ MB", facts["statusline"]), facts["statusline"]
    assert facts["statusline_drawn"] == facts["statusline"]

    # :CellboxRestartSession: a new kernel, the state gone.
    assert facts["restart_message"] == "cellbox: session session.md restarted: its state is gone"
    after = facts["after_restart"]
    assert "NameError: name 'x' is not defined" in after
    assert after.splitlines()[-1].startswith("│ ✗ exit 1")
    assert facts["statusline_after"].startswith("cellbox: session idle")
    # While a block runs, the status line says the session is busy.
    assert facts["statusline_busy"].startswith("cellbox: session busy")
    assert facts["statusline_done"].startswith("cellbox: session idle")


def test_the_first_run_shows_the_environment_build_step_then_the_output(make_workspace, tmp_path, engine):
    """Issue 15: the first block waits for the workspace's environment to be
    built, and its "running…" line (and the status line) says which step
    the build is on, from the server's work-done progress; then the block's
    output, with nothing of the build left. The environment is the client's
    own setting (trusted), offline, with a setup step slow enough to watch;
    make_workspace removes the image it builds."""
    workspace = make_workspace()
    (workspace / "notes.md").write_text("```python\nprint('built and ran')\n```\n")
    # The echo makes the declaration this workspace's own: another test's
    # image of the same declaration (the tag is its content's hash) would
    # be used at once, with no build to watch.
    setup = [f"echo {workspace}", "sleep 3"]
    options = {"image": TEST_IMAGE, "environment": {"network": "none", "setup": setup}}

    facts = run_spec(
        "environment", workspace, tmp_path, engine, env={"CELLBOX_TEST_INIT_OPTIONS": json.dumps(options)}
    )["facts"]

    step = r"building environment \(step (\d+)/(\d+)\): "
    building = facts["building"].splitlines()
    assert len(building) == 1 and re.fullmatch(r"│ running… [\d.]+ s · " + step + ".+", building[0]), building
    slow = re.fullmatch(r"│ running… [\d.]+ s · " + step + "RUN sleep 3", facts["slow_step"])
    # The last step but one: the image's labels come last (they carry its hash).
    assert slow and int(slow[1]) == int(slow[2]) - 1, facts["slow_step"]
    assert re.fullmatch(r"cellbox: " + step + "RUN sleep 3", facts["statusline_building"]), facts["statusline_building"]
    final = facts["final"].splitlines()
    assert final[0] == "│ built and ran" and final[-1].startswith("│ ✓ exit 0"), final
    # The waiting line went with the step: only the block's result is shown.
    assert [r["row"] for r in facts["results"]] == [2]
    assert "building" not in facts["statusline_after"]
