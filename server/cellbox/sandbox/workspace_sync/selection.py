"""Which workspace files copy mode sends: the walk, and the rules it obeys.

Every file and symlink of the workspace, except the always-skipped folders
(the repository's history, cellbox's own files) and what the workspace's
`.gitignore` files ignore. Each folder is listed through a handle opened
beneath the workspace, and no symlink to a folder is descended into.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pathspec

from cellbox import safe_files

log = logging.getLogger(__name__)

ALWAYS_SKIPPED = (".git", ".cellbox")
"""Top-level folders never copied either way: the repository's history, and cellbox's own files."""
IGNORE_FILE_LIMIT = 1 << 20
"""Most bytes of one .gitignore read (git's own are a few KiB); a larger one is skipped."""


def is_skipped(rel: str) -> bool:
    return rel.split("/", 1)[0] in ALWAYS_SKIPPED


class WarnOnce:
    """Warnings said once per sync: a planted file would otherwise be logged before every run."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def warn(self, message: str) -> None:
        if message in self._said:
            log.debug("%s", message)
        else:
            self._said.add(message)
            log.warning("%s", message)


class IgnoreRules:
    """The workspace's .gitignore files: the root's and every nested one, each
    applying below its own folder, the deepest match winning (as git does).

    Each is read with safe_files (beneath the workspace, a regular file, at
    most IGNORE_FILE_LIMIT bytes). One that is not (a link leading out, a
    FIFO, a device, an oversized file) is skipped with a warning, and the run
    goes on without its rules: git does the same for a .gitignore it will not
    follow, and the rules keep nothing secret (a bind mount would show every
    file), they only keep copies small, and copy_size_limit still bounds them.
    Stopping every run instead would let a repository switch copy mode off."""

    def __init__(self, root: Path, warnings: WarnOnce | None = None) -> None:
        self._root = root
        self._warnings = warnings or WarnOnce()
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def _spec(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._specs:
            rel = f"{folder}/.gitignore" if folder else ".gitignore"
            spec = None
            try:
                data = safe_files.read_regular(self._root, rel, IGNORE_FILE_LIMIT)
            except safe_files.RefusedFile as exc:
                self._warnings.warn(f"copy mode: not reading {rel}: {exc}; its rules do not apply")
            except OSError as exc:
                log.info("copy mode: cannot read %s: %s", rel, exc)
            else:
                if data is not None:
                    spec = pathspec.GitIgnoreSpec.from_lines(data.decode("utf-8", "replace").splitlines())
            self._specs[folder] = spec
        return self._specs[folder]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        decision = False
        for depth in range(len(parts)):
            spec = self._spec("/".join(parts[:depth]))
            if spec is None:
                continue
            below = "/".join(parts[depth:]) + ("/" if is_dir else "")
            verdict = spec.check_file(below).include
            if verdict is not None:
                decision = verdict
        return decision


def walk(root: Path, warnings: WarnOnce | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every file and symlink that copy mode sends,
    not descending into ignored or always-skipped folders, nor into symlinks:
    each folder is listed through a handle opened beneath the workspace."""
    rules = IgnoreRules(root, warnings)
    pending = [""]
    while pending:
        folder = pending.pop()
        entries: list[tuple[str, os.stat_result]] = []
        try:
            with safe_files.folder(root, folder) as folder_fd:
                for entry in os.scandir(folder_fd):
                    with contextlib.suppress(OSError):
                        entries.append((entry.name, entry.stat(follow_symlinks=False)))
        except (OSError, safe_files.RefusedFile) as exc:
            log.info("copy mode: cannot list %s: %s", folder or ".", exc)
            continue
        for name, stats in entries:
            rel = f"{folder}/{name}" if folder else name
            if is_skipped(rel):
                continue
            if stat.S_ISDIR(stats.st_mode):
                if not rules.ignored(rel, is_dir=True):
                    pending.append(rel)
            elif (stat.S_ISREG(stats.st_mode) or stat.S_ISLNK(stats.st_mode)) and not rules.ignored(rel, is_dir=False):
                yield rel, stats
