"""Starting, stopping and finding the per-project daemon, from outside it.

Light (no pygls, no docker): the CLI, the stdio bridge and, later, other
front ends (MCP) use it. The daemon process itself is lsp/daemon.py.

Where it lives (project.py): a runtime folder of the user (``$XDG_RUNTIME_DIR/cellbox``,
else ``/tmp/cellbox-UID``), mode 0700, never inside the project tree. Each
project gets ``NAME-HASH.sock`` (mode 0600), ``.pid``, ``.log`` and ``.lock``
there, keyed by the project's resolved path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs

from cellbox.project import DEFAULT_IDLE_TIMEOUT, DaemonError, DaemonPaths, answers, read_pid

START_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


@attrs.frozen
class DaemonStatus:
    workspace: str
    running: bool
    pid: int | None
    socket: str
    log: str


def _is_our_daemon(pid: int) -> bool:
    """Guards against a pid file outliving its daemon and the pid being reused."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"cellbox" in b" ".join(cmdline) and b"daemon" in cmdline


def status(workspace: Path) -> DaemonStatus:
    paths = DaemonPaths.of(workspace)
    running = answers(paths.socket)
    pid = read_pid(paths.pid) if running else None
    return DaemonStatus(str(paths.workspace), running, pid, str(paths.socket), str(paths.log))


@contextlib.contextmanager
def _start_lock(paths: DaemonPaths):
    """Serialises starts of one project's daemon: two `start`s at once give one daemon."""
    with open(paths.lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(workspace: Path, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> tuple[DaemonStatus, bool]:
    """The project's daemon, started if none answers; and whether this call started it."""
    paths = DaemonPaths.of(workspace)
    if not paths.workspace.is_dir():
        raise DaemonError(f"{paths.workspace} is not an existing folder")
    with _start_lock(paths):
        if answers(paths.socket):
            return status(paths.workspace), False
        with open(paths.log, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "cellbox", "daemon", "run", str(paths.workspace),
                 "--idle-timeout", f"{idle_timeout:g}"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                cwd="/", start_new_session=True,  # the terminal's Ctrl-C is not for it
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(paths.socket):
            if process.poll() is not None:
                raise DaemonError(
                    f"the daemon for {paths.workspace} exited at start (code {process.returncode}); "
                    f"its log {paths.log} ends with:\n{_tail(paths.log)}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise DaemonError(f"the daemon for {paths.workspace} did not listen within {START_TIMEOUT:g} s; see {paths.log}")
            time.sleep(0.02)
        return status(paths.workspace), True


def stop(workspace: Path) -> int | None:
    """Stops the project's daemon (which stops its containers); the pid it had, or None if none ran."""
    paths = DaemonPaths.of(workspace)
    pid = read_pid(paths.pid)
    if pid is None or not _is_our_daemon(pid):
        if paths.socket.exists() and not answers(paths.socket):
            paths.socket.unlink(missing_ok=True)  # left by a killed daemon
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _is_our_daemon(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"the daemon (pid {pid}) did not stop within {STOP_TIMEOUT:g} s; see {paths.log}")
        time.sleep(0.02)
    return pid


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
