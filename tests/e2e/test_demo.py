"""`scripts/dev demo` (examples/run_demo.py), as a newcomer runs it: what the
editors would show, not the protocol's JSON (that only with --json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / "run_demo.py"), str(workspace), *args],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )


def test_the_demo_shows_each_block_as_the_cli_does_and_json_only_when_asked(make_workspace):
    workspace = make_workspace("demo")  # a copy of examples/demo, with the test image
    (workspace / "README.md").write_text((REPO / "examples" / "demo" / "README.md").read_text())
    shown = run_demo(workspace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "▶ block 1 · python · lines 6-7" in lines
    assert lines[lines.index("▶ block 1 · python · lines 6-7") + 1].startswith("Hello from CPython ")
    assert "[0  1  1  2  3  5  8  13  21  34]" in lines
    assert [line.split(" · ")[0] for line in lines if line.startswith("✓ ")] == [
        "✓ block 1 (lines 6-7)", "✓ block 2 (lines 11-12)", "✓ block 3 (lines 16-20)", "✓ block 4 (line 24)",
    ]
    assert any(line.startswith(f"sandbox: {workspace}  running  ") for line in lines)
    assert "Ignoring notification" not in shown.stdout + shown.stderr  # pygls's, about blockStarted
    assert '"exitCode"' not in shown.stdout

    dumped = run_demo(workspace, "--json")
    assert dumped.returncode == 0, dumped.stderr
    execute = dumped.stdout.split(">>> cellbox.execute ")[1].split("\n", 1)[1].split("\n>>> ")[0]
    assert json.loads(execute)["exitCode"] == 0
    assert "Ignoring notification" not in dumped.stdout + dumped.stderr
