"""The tar that takes workspace files into the container.

Built in memory from paths the walk (selection.py) or the sync chose, every
entry owned by the sandbox's user, and nothing read through a link that
leads out of the workspace.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

import attrs

from cellbox import safe_files
from cellbox.sandbox.workspace_sync.selection import WarnOnce

log = logging.getLogger(__name__)


@attrs.frozen
class Packed:
    """A tar for the container, and what went into it."""

    tar: bytes
    sent: list[str]
    """The paths in it."""
    refused: list[str]
    """Paths left out as they are not what copy mode sends (a symlink leading
    out, a file that is no longer a regular one); the log says which."""


def build_tar(
    root: Path, paths: Iterable[str], owner: tuple[int, int], max_bytes: int, warnings: WarnOnce | None = None
) -> Packed:
    """A tar of `paths` (relative to `root`) and every folder above them, all
    owned by `owner` (the sandbox's uid:gid) so that blocks can change them.

    Nothing is read through a link leading out: each file is read with
    safe_files (beneath the workspace, and only while it is a regular file),
    a symlink goes in as a symlink only when it resolves inside the workspace
    once every link is followed, and a path under a folder that is a symlink
    here is left to that link. safe_files.TooLarge when the bytes actually
    read pass `max_bytes` (files can grow after they were listed)."""
    warnings = warnings or WarnOnce()
    buffer = io.BytesIO()
    folders: dict[str, bool] = {}
    """Folder -> whether it is a real folder here (and so went into the tar)."""
    sent: list[str] = []
    refused: list[str] = []
    left = max_bytes
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            try:
                if not _add_folders_above(tar, root, rel, owner, folders):
                    log.debug("copy mode: not sending %s: a folder above it is a symlink here", rel)
                    continue
                stats = safe_files.lstat_beneath(root, rel)
                if stats is None:
                    continue  # gone since it was listed
                info = tarfile.TarInfo(rel)
                _own(info, owner, stats.st_mtime)
                if stat.S_ISLNK(stats.st_mode):
                    target = _read_link(root, rel)
                    if target is None or safe_files.resolve_beneath(root, rel) is None:
                        warnings.warn(f"copy mode: not sending {rel}: a symlink that leads outside the workspace")
                        refused.append(rel)
                        continue
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                    tar.addfile(info)
                else:
                    data = safe_files.read_regular(root, rel, left)
                    if data is None:
                        continue
                    left -= len(data)
                    info.mode = stats.st_mode & 0o777
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            except safe_files.TooLarge:
                raise
            except safe_files.RefusedFile as exc:
                warnings.warn(f"copy mode: not sending {rel}: {exc}")
                refused.append(rel)
                continue
            except OSError as exc:
                log.info("copy mode: cannot send %s: %s", rel, exc)
                continue
            sent.append(rel)
    return Packed(buffer.getvalue(), sent, refused)


def _add_folders_above(
    tar: tarfile.TarFile, root: Path, rel: str, owner: tuple[int, int], folders: dict[str, bool]
) -> bool:
    """Put the folders above `rel` in the tar (once each); False when one of
    them is not a real folder here (a symlink, or gone)."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if folder not in folders:
            stats = safe_files.lstat_beneath(root, folder)
            folders[folder] = stats is not None and stat.S_ISDIR(stats.st_mode)
            if folders[folder]:
                assert stats is not None
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                _own(info, owner, stats.st_mtime)
                tar.addfile(info)
        if not folders[folder]:
            return False
    return True


def _read_link(root: Path, rel: str) -> str | None:
    """What the symlink at workspace path `rel` says; None if it is no longer one."""
    parent, _, name = rel.rpartition("/")
    try:
        with safe_files.folder(root, parent) as folder_fd:
            return os.readlink(name, dir_fd=folder_fd)
    except OSError:
        return None


def _own(info: tarfile.TarInfo, owner: tuple[int, int], mtime: float) -> None:
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    info.mtime = mtime
