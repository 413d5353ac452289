"""The per-project daemon's controls (daemon_control.py) against a real
daemon process, with no engine at all: it reaches the engine only to run a
block, so starting, finding, probing and stopping it need none."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cellbox import daemon_control
from cellbox.project import DaemonError, DaemonPaths


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")  # nothing may need one
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_start_status_and_stop(project: Path) -> None:
    assert daemon_control.status(project).running is False
    found, started = daemon_control.start(project, idle_timeout=60)
    try:
        assert started and found.running and found.pid is not None
        again, started_again = daemon_control.start(project, idle_timeout=60)
        assert (again.pid, started_again) == (found.pid, False)  # one daemon per project
        # A probe (a connection that closes before its first line) is not a
        # client: it must not keep the daemon busy or break it.
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(found.socket)
        assert daemon_control.status(project).running
    finally:
        stopped = daemon_control.stop(project)
    assert stopped == found.pid
    assert daemon_control.status(project).running is False
    assert not Path(found.socket).exists()


def test_a_stale_socket_of_a_killed_daemon_is_cleared(project: Path) -> None:
    paths = DaemonPaths.of(project)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(paths.socket))  # bound, never listening: what a killed daemon leaves
    assert daemon_control.stop(project) is None
    assert not paths.socket.exists()


def test_a_folder_that_is_not_there_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    with pytest.raises(DaemonError, match="not an existing folder"):
        daemon_control.start(tmp_path / "missing")
