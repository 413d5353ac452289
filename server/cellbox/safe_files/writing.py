"""Writing into the workspace: files, symlinks and folders, and removing them.

What is written is made in a handle on its folder, itself opened beneath
the workspace (beneath.folder). A block's file is rewritten in place only
when it is a regular file there; what copy mode brings back (a file or a
symlink) is made under a temporary name beside its place and renamed over
it, so that whatever was there is replaced, never written through. Modes,
owners and times are set on the new file's own handle, never through a path
a link could redirect; when the daemon runs as root, what it makes is given
to `owner`, the user blocks run as.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from cellbox.safe_files.beneath import RefusedFile, folder, hand_over, make_folders, open_beneath, refusal, root_handle

_T = TypeVar("_T")


def write_regular(
    root: Path, rel: str, data: bytes, owner: tuple[int, int] | None = None, forbidden: tuple[str, ...] = ()
) -> bool:
    """Write `data` to workspace file `rel`, making missing folders; return
    False when it already held exactly `data` (nothing written).

    Re-running a block is the common case, and rewriting a file in place
    costs ~1 ms here: ext4 flushes a file truncated and rewritten when it is
    closed (auto_da_alloc); hence the comparison first. When the daemon runs
    as root, what it makes is given to `owner`, the user blocks run as.
    RefusedFile when the path or a folder on it leads outside `root`, or is
    not a regular file, or leads (through a link) into one of the `forbidden`
    top-level folders (the repository's metadata).
    """
    parent, _, name = rel.rpartition("/")
    root_fd = root_handle(root)
    try:
        if forbidden:
            _refuse_forbidden(root_fd, rel, forbidden)
        parent_fd = make_folders(root_fd, parent, owner) if parent else os.dup(root_fd)
        try:
            try:
                fd = open_beneath(root_fd, rel, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY, 0o644)
            except OSError as exc:
                raise refusal(exc, rel) or exc from None
        finally:
            os.close(parent_fd)
    finally:
        os.close(root_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFile(f"{rel} is not a regular file")
        if info.st_size == len(data) and _read_all(fd, len(data)) == data:
            return False
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        hand_over(fd, owner)
        return True
    finally:
        os.close(fd)


def _refuse_forbidden(root_fd: int, rel: str, forbidden: tuple[str, ...]) -> None:
    """RefusedFile when `rel`, links followed, lies in a `forbidden` top-level
    folder: judged on the deepest part of it that exists, before anything is made."""
    root_real = os.readlink(f"/proc/self/fd/{root_fd}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    for depth in range(len(parts), 0, -1):
        try:
            fd = open_beneath(root_fd, "/".join(parts[:depth]), os.O_PATH)
        except OSError:
            continue
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        inside = os.path.relpath(real, root_real).split("/", 1)[0]
        if inside in forbidden:
            raise RefusedFile(f"{rel} leads into {inside}/, the repository's metadata, which blocks may not write")
        return


def _read_all(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0 and (chunk := os.read(fd, left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def replace_regular(
    root: Path,
    rel: str,
    source: IO[bytes],
    mode: int,
    mtime: float | None = None,
    owner: tuple[int, int] | None = None,
) -> os.stat_result:
    """Make workspace file `rel` hold what `source` gives (read in chunks, to
    its end), with permissions `mode & 0o777`; return its lstat.

    Atomic: a temporary file is made beside it, O_EXCL and O_NOFOLLOW, in a
    handle on its folder (made where missing, beneath the root), and renamed
    over `rel` in that same handle. Whatever was at `rel`, a file or a
    symlink, is replaced, never written through; a folder there is refused
    (RefusedFile). Mode, owner and mtime are set on the new file's own handle.
    """

    def make(folder_fd: int, candidate: str) -> int:
        return os.open(
            candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd
        )

    def fill(folder_fd: int, temporary: str, fd: int) -> None:
        try:
            while chunk := source.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fchmod(fd, mode & 0o777)
            hand_over(fd, owner)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    return _rename_into_place(root, rel, owner, ".cellbox-copy-", make, fill)


def write_symlink(root: Path, rel: str, target: str, owner: tuple[int, int] | None = None) -> os.stat_result:
    """Make workspace path `rel` a symlink to `target`, as replace_regular
    writes a file: made under a temporary name in a handle on its folder,
    then renamed over what was there (a folder there is refused). Only the
    link itself is given to `owner`, never what it points at. Whether
    `target` leads inside is the caller's question (resolve_beneath)."""

    def make(folder_fd: int, candidate: str) -> None:
        os.symlink(target, candidate, dir_fd=folder_fd)

    def give(folder_fd: int, temporary: str, _: None) -> None:
        if owner is not None and os.geteuid() == 0:
            os.chown(temporary, *owner, dir_fd=folder_fd, follow_symlinks=False)

    return _rename_into_place(root, rel, owner, ".cellbox-link-", make, give)


def _rename_into_place(
    root: Path,
    rel: str,
    owner: tuple[int, int] | None,
    prefix: str,
    make: Callable[[int, str], _T],
    finish: Callable[[int, str, _T], None],
) -> os.stat_result:
    """What replace_regular and write_symlink share: in a handle on the
    folder of `rel` (made where missing, beneath the root, and given to
    `owner`), `make(folder handle, name)` makes the new entry under a fresh
    name starting with `prefix`, `finish(folder handle, name, what make
    returned)` completes it, and it is renamed over `rel` in that same
    handle. A folder at `rel` is refused (RefusedFile); if finishing or the
    rename fails, the temporary is removed. Return the lstat of the new `rel`."""
    parent, _, name = rel.rpartition("/")
    with folder(root, parent, make=True, owner=owner) as folder_fd:
        _refuse_folder_at(folder_fd, name, rel)
        temporary, made = _new_name(prefix, lambda candidate: make(folder_fd, candidate))
        try:
            finish(folder_fd, temporary, made)
            os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder_fd)
            raise
        return os.stat(name, dir_fd=folder_fd, follow_symlinks=False)


def make_folder(root: Path, rel: str, owner: tuple[int, int] | None = None) -> bool:
    """Make workspace folder `rel`, and the folders above it, where missing
    (each given to `owner`); return whether `rel` itself was made.

    A symlink at `rel` is replaced by the folder: what is then written in the
    folder must land there, not wherever the link led. A file there is
    refused (RefusedFile)."""
    parent, _, name = rel.rpartition("/")
    with folder(root, parent, make=True, owner=owner) as folder_fd:
        present = _lstat_in(folder_fd, name)
        if present is not None and stat.S_ISDIR(present.st_mode):
            return False
        if present is not None and not stat.S_ISLNK(present.st_mode):
            raise RefusedFile(f"{rel} is a file, not a folder")
        if present is not None:
            os.unlink(name, dir_fd=folder_fd)
        os.mkdir(name, 0o755, dir_fd=folder_fd)
        made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
        try:
            hand_over(made, owner)
        finally:
            os.close(made)
        return True


def remove_beneath(root: Path, rel: str, only_if: Callable[[os.stat_result], bool] | None = None) -> bool:
    """Unlink workspace file or symlink `rel` (never a folder, never what a
    link points at) in a handle on its folder, resolved beneath the root;
    only when `only_if(its lstat)` holds, if given. Return whether it was removed."""
    parent, _, name = rel.rpartition("/")
    try:
        with folder(root, parent) as folder_fd:
            info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) or (only_if is not None and not only_if(info)):
                return False
            os.unlink(name, dir_fd=folder_fd)
            return True
    except (FileNotFoundError, NotADirectoryError):
        return False


def _lstat_in(folder_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _refuse_folder_at(folder_fd: int, name: str, rel: str) -> None:
    present = _lstat_in(folder_fd, name)
    if present is not None and stat.S_ISDIR(present.st_mode):
        raise RefusedFile(f"{rel} is a folder")


def _new_name(prefix: str, make: Callable[[str], _T]) -> tuple[str, _T]:
    """A fresh name in the folder, made by `make(name)` (which fails with
    FileExistsError when the name is taken), and what `make` returned."""
    for _ in range(100):
        candidate = prefix + secrets.token_hex(8)
        try:
            return candidate, make(candidate)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)
