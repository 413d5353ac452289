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
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import containers_of

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editor-clients" / "nvim"
SPECS = Path(__file__).resolve().parent / "nvim"
SERVER_COMMAND = [sys.executable, "-m", "cellbox", "serve"]
# A whole spec: several runs, each well within this even when the first
# container start is slow on a loaded machine.
SPEC_TIMEOUT_S = 240

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nvim") is None, reason="nvim is not installed (scripts/ensure-neovim installs it)"),
]


def wait_for_removal(engine, workspace: Path, timeout_s: float = 20) -> None:
    """The server stops its sandbox when Neovim quits, and the engine then
    removes it (auto_remove); let that finish before the fixture's own
    clean-up, which would otherwise collide with it."""
    deadline = time.monotonic() + timeout_s
    while containers_of(engine, workspace) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_spec(spec: str, workspace: Path, tmp_path: Path, engine) -> dict:
    """Run tests/editors/nvim/<spec>_spec.lua in headless Neovim; return its facts and messages."""
    report = tmp_path / f"{spec}-report.json"
    home = tmp_path / f"{spec}-home"  # keeps Neovim's state and LSP log out of the real home
    env = {
        **os.environ,
        "CELLBOX_NVIM_PLUGIN": str(PLUGIN),
        "CELLBOX_NVIM_SPECS": str(SPECS),
        "CELLBOX_WORKSPACE": str(workspace),
        "CELLBOX_NVIM_REPORT": str(report),
        "CELLBOX_SERVER_CMD": json.dumps(SERVER_COMMAND),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    command = [
        "nvim", "--headless", "--clean", "-n", "-u", str(SPECS / "init.lua"),
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

    # :CellboxOutput: the whole output of the block under the cursor in a scratch split.
    full = facts["full_output"]
    assert full["lines"][0].startswith("✗ exit 3")
    assert full["lines"][1:] == ["to-stdout", "to-stderr"]
    assert full["buftype"] == "nofile" and full["windows"] == 2

    assert facts["cleared"] == []
