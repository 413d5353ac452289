"""Shared by the per-project daemon and CLI tests: a private runtime folder
(so these tests never meet a developer's own daemons), the console script,
and a way to wait for a condition without timing anything."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("cellbox"))


@pytest.fixture
def runtime_dir(monkeypatch):
    """XDG_RUNTIME_DIR for this test, here and in every process it starts; a
    short path, since the socket's path must fit in sun_path's 108 bytes.
    Afterwards every daemon started in it is stopped."""
    folder = Path(tempfile.mkdtemp(prefix="cbx-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    for pid_file in (folder / "cellbox").glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 30, f"daemon {pid} to stop")
        except (ValueError, OSError):
            pass
    shutil.rmtree(folder, ignore_errors=True)


def cellbox(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The console script, run as a user would run it (stdin not a terminal)."""
    return subprocess.run(
        [CONSOLE_SCRIPT, *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def wait_for(condition, seconds: float, what: str, interval: float = 0.05):
    """Poll `condition` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
