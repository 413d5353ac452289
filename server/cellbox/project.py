"""Where a project's daemon lives, for every process that looks for it.

The project of a path, the user's private runtime folder, the socket, pid,
log and lock paths of a project's daemon, and whether a daemon answers there.
Kept to the standard library's light modules: `cellbox exec` imports this on
every call, and each import shows in a git hook's time.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

from cellbox.errors import CellboxError

PROJECT_MARKERS = ("cellbox.toml", "pyproject.toml", ".git")
DEFAULT_IDLE_TIMEOUT = 30 * 60
"""Seconds a daemon with no client and no run waits before it stops itself."""


class DaemonError(CellboxError):
    """The daemon could not be started, reached or stopped."""


def uri_path(uri: str) -> Path:
    """The local path of a file:// URI (or of a plain path)."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def project_root(start: Path) -> Path:
    """The project a path belongs to: the nearest folder, from `start` up,
    holding cellbox.toml, pyproject.toml or .git; else `start`'s own folder.
    Editor clients find their root the same way, so they share the daemon."""
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
    return folder


def runtime_folder() -> Path:
    """The user's private folder for sockets and pid files, made if missing.

    Refuses a folder another user owns or others can open: whoever controls
    it could stand in for the daemon."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "cellbox" if base else Path(f"/tmp/cellbox-{os.getuid()}")
    try:
        folder.mkdir(mode=0o700, parents=bool(base), exist_ok=True)
    except OSError as exc:
        raise DaemonError(f"cannot make the runtime folder {folder}: {exc.strerror}") from None
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise DaemonError(f"{folder} is not a folder of this user; remove it or set XDG_RUNTIME_DIR")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


class DaemonPaths(NamedTuple):
    workspace: Path
    socket: Path
    pid: Path
    log: Path
    lock: Path

    @classmethod
    def of(cls, workspace: Path) -> DaemonPaths:
        workspace = workspace.resolve()
        digest = hashlib.sha256(os.fsencode(workspace)).hexdigest()[:12]
        # A readable name for people listing the folder; the digest keeps it
        # unique, and short enough for sun_path's 108 bytes.
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", workspace.name)[:24] or "root"
        stem = runtime_folder() / f"{name}-{digest}"
        return cls(
            workspace=workspace,
            socket=stem.with_suffix(".sock"),
            pid=stem.with_suffix(".pid"),
            log=stem.with_suffix(".log"),
            lock=stem.with_suffix(".lock"),
        )


def read_pid(path: Path) -> int | None:
    """The pid in a pid file (the daemon's, the runner's); None if absent or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def answers(socket_path: Path) -> bool:
    """Whether a daemon listens on the socket (a file left by a killed one does not)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(str(socket_path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
