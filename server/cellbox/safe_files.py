"""Reading and writing files in a workspace the sandbox can write to.

Everything in a workspace may have been planted by a block or by the
repository: a symlink to /etc/shadow where a block's file goes, a FIFO where a
config file should be, `.gitignore` pointing at /dev/zero. Every path the
daemon opens in a workspace goes through here:

- it is resolved by the kernel with openat2(RESOLVE_BENEATH) from a handle on
  the workspace folder: symlinks are followed only while they stay inside it,
  `..` never climbs out, absolute links and /proc magic links are refused.
  Without openat2 (Linux < 5.6, or a seccomp filter that hides it) no symlink
  is followed at all;
- it must be a regular file: a FIFO, socket or device is never read or
  written (opened with O_NONBLOCK, so even opening one cannot hang);
- reads stop at a size cap.

These are blocking calls: callers on the event loop run them in a thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
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


_have_openat2: bool | None = None


def _openat2(dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
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
    if not parts or ".." in parts:
        raise OSError(errno.EXDEV, "path leaves the workspace", path)
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    finally:
        os.close(current)


def _why(exc: OSError, rel: str) -> RefusedFile | None:
    """A refusal the user can act on, for errors that mean 'planted', else None."""
    if exc.errno in (errno.EXDEV, errno.ELOOP):
        return RefusedFile(f"{rel} is a symlink, or lies under one, that leads outside the workspace", outside=True)
    if exc.errno == errno.ENXIO:
        return RefusedFile(f"{rel} is not a regular file (a FIFO or socket)")
    return None


def _root_fd(root: Path) -> int:
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def read_regular(root: Path, rel: str, max_bytes: int) -> bytes | None:
    """The bytes of workspace file `rel`; None when it does not exist.

    RefusedFile when it leads outside `root`, is not a regular file, or holds
    more than `max_bytes`."""
    root_fd = _root_fd(root)
    try:
        try:
            fd = _openat2(root_fd, rel, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise _why(exc, rel) or exc from None
    finally:
        os.close(root_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFile(f"{rel} is not a regular file")
        if info.st_size > max_bytes:
            raise RefusedFile(f"{rel} is larger than {max_bytes} bytes")
        chunks = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew while we read
            raise RefusedFile(f"{rel} is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_regular(root: Path, rel: str, data: bytes, owner: tuple[int, int] | None = None) -> bool:
    """Write `data` to workspace file `rel`, making missing folders; return
    False when it already held exactly `data` (nothing written).

    Re-running a block is the common case, and rewriting a file in place
    costs ~1 ms here: ext4 flushes a file truncated and rewritten when it is
    closed (auto_da_alloc); hence the comparison first. When the daemon runs
    as root, what it makes is given to `owner`, the user blocks run as.
    RefusedFile when the path or a folder on it leads outside `root`, or is
    not a regular file.
    """
    parent, _, name = rel.rpartition("/")
    root_fd = _root_fd(root)
    try:
        parent_fd = _make_folders(root_fd, parent, owner) if parent else os.dup(root_fd)
        try:
            try:
                fd = _openat2(root_fd, rel, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY, 0o644)
            except OSError as exc:
                raise _why(exc, rel) or exc from None
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
        _give(fd, info, owner)
        return True
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0 and (chunk := os.read(fd, left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _make_folders(root_fd: int, folder: str, owner: tuple[int, int] | None) -> int:
    """A handle on workspace folder `folder`, made (and given to `owner`) where missing."""
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    for depth in range(len(parts) + 1):
        prefix = "/".join(parts[:depth]) or "."
        try:
            fd = _openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise _why(exc, folder) or exc from None
        if depth == len(parts):
            return fd
        os.close(fd)
    # parts[:depth] is missing: make it and what lies below, one at a time,
    # each made in a handle on the one above (mkdirat never follows a link).
    above = _openat2(root_fd, "/".join(parts[: depth - 1]) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in parts[depth - 1:]:
            try:
                os.mkdir(part, 0o755, dir_fd=above)
            except FileExistsError:
                pass  # made meanwhile, or a link: opened (beneath) below either way
            try:
                below = _openat2(above, part, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise _why(exc, folder) or exc from None
            if owner is not None and os.geteuid() == 0:
                info = os.fstat(below)
                if (info.st_uid, info.st_gid) != owner:
                    os.fchown(below, *owner)
            os.close(above)
            above = below
        return os.dup(above)
    finally:
        os.close(above)


def _give(fd: int, info: os.stat_result, owner: tuple[int, int] | None) -> None:
    if owner is not None and os.geteuid() == 0 and (info.st_uid, info.st_gid) != owner:
        os.fchown(fd, *owner)


def is_regular_beneath(root: Path, rel: str) -> bool:
    """Whether `rel` resolves, inside the workspace, to a regular file."""
    root_fd = _root_fd(root)
    try:
        fd = _openat2(root_fd, rel, os.O_PATH)
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
    root_fd = _root_fd(root)
    try:
        for candidate in (rel, rel.rpartition("/")[0] or "."):
            try:
                os.close(_openat2(root_fd, candidate, os.O_PATH))
                return True
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return False
    finally:
        os.close(root_fd)
