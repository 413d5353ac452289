"""The user's approvals of workspace settings files, as `direnv allow` keeps them.

A workspace file (`cellbox.toml`, `pyproject.toml`) may loosen the sandbox
only once the user approved its exact content: the approval is the file's
path and the SHA-256 of its bytes, kept outside every workspace under
`$XDG_DATA_HOME/cellbox/trust/` (default `~/.local/share/cellbox/trust/`),
one small file per approved path. A file that changes, rewritten by a block or
by a `git pull`, no longer matches and must be approved again.

Where the store itself lies inside a workspace (a workspace that is the home
folder), a block could write approvals: the store is then ignored for that
workspace, and so is the user's config file (sources.user_config_path).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

RECORD_LIMIT = 64 << 10
"""Largest approval record read; a real one is a few hundred bytes."""


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def store_folder() -> Path:
    return data_home() / "cellbox" / "trust"


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def inside(path: Path, workspace: Path) -> bool:
    """Whether `path` is `workspace` or lies under it (so the sandbox can write it)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return True  # a loop or worse: do not trust it
    return resolved == workspace or workspace in resolved.parents


def _record_path(file: Path) -> Path:
    return store_folder() / hashlib.sha256(os.fsencode(file)).hexdigest()[:40]


def is_approved(file: Path, content_digest: str, workspace: Path) -> bool:
    """Whether the user approved `file` with exactly this content."""
    if inside(store_folder(), workspace):
        return False
    record = _record_path(file)
    try:
        with open(record, "rb", opener=_no_follow) as handle:
            data = json.loads(handle.read(RECORD_LIMIT))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("path") == str(file) and data.get("sha256") == content_digest


def approve(file: Path, content_digest: str) -> Path:
    """Record the approval of `file` with this content; the record's path."""
    folder = store_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = _record_path(file)
    # Written beside it and renamed: a reader never sees half a record.
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".approval-")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"path": str(file), "sha256": content_digest}, out)
        os.replace(temporary, record)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return record


def revoke(file: Path) -> bool:
    """Forget the approval of `file`; whether there was one."""
    try:
        _record_path(file).unlink()
        return True
    except FileNotFoundError:
        return False


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
