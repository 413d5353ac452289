"""Opening a path beneath the workspace folder, and nowhere else.

The one primitive the other modules of safe_files build on: `open_beneath`
asks the kernel, with openat2(RESOLVE_BENEATH), to open a path from a handle
on a folder, following symlinks only while they stay beneath it. Without
openat2 (Linux < 5.6, or a seccomp filter that hides it) it walks the path a
component at a time and follows no symlink at all. Here too: the refusals
the user reads (RefusedFile), handles on workspace folders (made where
missing), and the questions asked of a path without reading it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_SYS_OPENAT2 = 437  # the same number on every architecture (new syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class RefusedFile(Exception):
    """A workspace path the daemon will not open, and why, in the user's words."""

    def __init__(self, message: str, outside: bool = False) -> None:
        super().__init__(message)
        self.outside = outside
        """Whether the path leads outside the workspace (else: not a regular file, or too big)."""


class TooLarge(RefusedFile):
    """A regular file past the caller's size cap."""


_have_openat2: bool | None = None


def open_beneath(dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2(2) confined beneath `dir_fd`; OSError like os.open."""
    global _have_openat2
    if _have_openat2 is not False:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            _have_openat2 = True
            return fd
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM) or _have_openat2:
            raise OSError(err, os.strerror(err), path)
        _have_openat2 = False
    return _open_no_symlinks(dir_fd, path, flags, mode)


def _open_no_symlinks(dir_fd: int, path: str, flags: int, mode: int) -> int:
    """The fallback: walk the path a component at a time, following no symlink."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "path leaves the workspace", path)
    if not parts:  # the folder itself
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            following = _open_one(current, part, os.O_PATH | os.O_DIRECTORY, 0, path)
            os.close(current)
            current = following
        return _open_one(current, parts[-1], flags, mode, path)
    finally:
        os.close(current)


def _open_one(dir_fd: int, name: str, flags: int, mode: int, path: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except NotADirectoryError:
        # O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a symlink too: tell it
        # apart, as openat2 would refuse it (ELOOP), not miss it.
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, "a symlink on the way", path) from None
        raise


def refusal(exc: OSError, rel: str) -> RefusedFile | None:
    """A refusal the user can act on, for errors that mean 'planted', else None."""
    if exc.errno in (errno.EXDEV, errno.ELOOP):
        return RefusedFile(f"{rel} is a symlink, or lies under one, that leads outside the workspace", outside=True)
    if exc.errno == errno.ENXIO:
        return RefusedFile(f"{rel} is not a regular file (a FIFO or socket)")
    return None


def root_handle(root: Path) -> int:
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def make_folders(root_fd: int, folder: str, owner: tuple[int, int] | None) -> int:
    """A handle on workspace folder `folder`, made (and given to `owner`) where missing."""
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    for depth in range(len(parts) + 1):
        prefix = "/".join(parts[:depth]) or "."
        try:
            fd = open_beneath(root_fd, prefix, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise refusal(exc, folder) or exc from None
        if depth == len(parts):
            return fd
        os.close(fd)
    # parts[:depth] is missing: make it and what lies below, one at a time,
    # each made in a handle on the one above (mkdirat never follows a link).
    above = open_beneath(root_fd, "/".join(parts[: depth - 1]) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in parts[depth - 1:]:
            try:
                os.mkdir(part, 0o755, dir_fd=above)
            except FileExistsError:
                pass  # made meanwhile, or a link: opened (beneath) below either way
            try:
                below = open_beneath(above, part, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise refusal(exc, folder) or exc from None
            hand_over(below, owner)
            os.close(above)
            above = below
        return os.dup(above)
    finally:
        os.close(above)


@contextlib.contextmanager
def folder(
    root: Path, rel: str, make: bool = False, owner: tuple[int, int] | None = None
) -> Iterator[int]:
    """A handle on workspace folder `rel` ("" is the root itself), resolved
    beneath the root, for calls that take `dir_fd` (and os.scandir). With
    `make`, missing folders are made and given to `owner`. FileNotFoundError
    or NotADirectoryError when it is missing; RefusedFile when it leads outside."""
    root_fd = root_handle(root)
    try:
        if make:
            fd = make_folders(root_fd, rel, owner)
        else:
            try:
                fd = open_beneath(root_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise refusal(exc, rel) or exc from None
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def is_regular_beneath(root: Path, rel: str) -> bool:
    """Whether `rel` resolves, inside the workspace, to a regular file."""
    root_fd = root_handle(root)
    try:
        fd = open_beneath(root_fd, rel, os.O_PATH)
    except OSError:
        return False
    finally:
        os.close(root_fd)
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def resolves_inside(root: Path, rel: str) -> bool:
    """Whether `rel`, every link on it followed (chains included), stays inside
    the workspace. A path whose end does not exist yet counts as inside when
    its folder does."""
    root_fd = root_handle(root)
    try:
        for candidate in (rel, rel.rpartition("/")[0] or "."):
            try:
                os.close(open_beneath(root_fd, candidate, os.O_PATH))
                return True
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return False
    finally:
        os.close(root_fd)


def lstat_beneath(root: Path, rel: str) -> os.stat_result | None:
    """The lstat of workspace path `rel`: the folders above it resolved beneath
    the root (links that stay inside followed), its own last component not.
    None when it does not exist; RefusedFile when a folder above it leads outside."""
    parent, _, name = rel.rpartition("/")
    try:
        with folder(root, parent) as folder_fd:
            return os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def hand_over(fd: int, owner: tuple[int, int] | None) -> bool:
    """Give the open file or folder `fd` to `owner` (uid, gid) when the daemon
    runs as root, so that what it makes for blocks is the user's, not root's;
    whether it is theirs now. Not root: it stays the daemon user's, who is
    the one blocks run as by default."""
    if owner is None or os.geteuid() != 0:
        return False
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) != owner:
        os.fchown(fd, *owner)
    return True
