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
- reads stop at a size cap;
- what is written (a file, a symlink, a folder) is made in a handle on its
  folder, itself opened beneath the workspace; a name is replaced, never
  written through, and modes, owners and times are set on the new file's own
  handle, never through a path a link could redirect;
- `resolve_beneath` follows every link on a path, chains included, and says
  where it leads, or that it leads out.

These are blocking calls: callers on the event loop run them in a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

_T = TypeVar("_T")

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
    return _read_capped(fd, rel, max_bytes)


def read_named(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file the user named (a document to run): links are
    followed, as the user chose the path, but only a regular file is read,
    and at most `max_bytes`. OSError, ValueError (a NUL byte, invalid text)
    or RefusedFile."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    return _read_capped(fd, str(path), max_bytes)


def _read_capped(fd: int, name: str, max_bytes: int) -> bytes:
    """Read all of an open file, closing it; RefusedFile unless regular and within `max_bytes`."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFile(f"{name} is not a regular file")
        if info.st_size > max_bytes:
            raise TooLarge(f"{name} is larger than {max_bytes} bytes")
        chunks = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew while we read
            raise TooLarge(f"{name} is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


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
    root_fd = _root_fd(root)
    try:
        if forbidden:
            _refuse_forbidden(root_fd, rel, forbidden)
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


def _refuse_forbidden(root_fd: int, rel: str, forbidden: tuple[str, ...]) -> None:
    """RefusedFile when `rel`, links followed, lies in a `forbidden` top-level
    folder: judged on the deepest part of it that exists, before anything is made."""
    root_real = os.readlink(f"/proc/self/fd/{root_fd}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    for depth in range(len(parts), 0, -1):
        try:
            fd = _openat2(root_fd, "/".join(parts[:depth]), os.O_PATH)
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


@contextlib.contextmanager
def folder(
    root: Path, rel: str, make: bool = False, owner: tuple[int, int] | None = None
) -> Iterator[int]:
    """A handle on workspace folder `rel` ("" is the root itself), resolved
    beneath the root, for calls that take `dir_fd` (and os.scandir). With
    `make`, missing folders are made and given to `owner`. FileNotFoundError
    or NotADirectoryError when it is missing; RefusedFile when it leads outside."""
    root_fd = _root_fd(root)
    try:
        if make:
            fd = _make_folders(root_fd, rel, owner)
        else:
            try:
                fd = _openat2(root_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise _why(exc, rel) or exc from None
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)


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
    parent, _, name = rel.rpartition("/")
    with folder(root, parent, make=True, owner=owner) as folder_fd:
        _refuse_folder_at(folder_fd, name, rel)
        temporary, fd = _new_name(".cellbox-copy-", lambda candidate: os.open(
            candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd
        ))
        try:
            try:
                while chunk := source.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fchmod(fd, mode & 0o777)
                if owner is not None and os.geteuid() == 0:
                    os.fchown(fd, *owner)
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder_fd)
            raise
        return os.stat(name, dir_fd=folder_fd, follow_symlinks=False)


def write_symlink(root: Path, rel: str, target: str, owner: tuple[int, int] | None = None) -> os.stat_result:
    """Make workspace path `rel` a symlink to `target`, as replace_regular
    writes a file: made under a temporary name in a handle on its folder,
    then renamed over what was there (a folder there is refused). Only the
    link itself is given to `owner`, never what it points at. Whether
    `target` leads inside is the caller's question (resolve_beneath)."""
    parent, _, name = rel.rpartition("/")
    with folder(root, parent, make=True, owner=owner) as folder_fd:
        _refuse_folder_at(folder_fd, name, rel)
        temporary, _ = _new_name(".cellbox-link-", lambda candidate: os.symlink(
            target, candidate, dir_fd=folder_fd
        ))
        try:
            if owner is not None and os.geteuid() == 0:
                os.chown(temporary, *owner, dir_fd=folder_fd, follow_symlinks=False)
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
            _give(made, os.fstat(made), owner)
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


_MAX_LINKS = 40
"""Links followed on one path before giving up, as the kernel does (ELOOP)."""


def resolve_beneath(root: Path, rel: str) -> str | None:
    """Where workspace path `rel` leads once every symlink on it is followed,
    chains included: a path relative to the root ("." for the root itself),
    or None when it leads outside (a link to an absolute path, a `..` above
    the root, more than 40 links, or a folder the daemon cannot look into).

    Each link is read where it is found, in a handle on its folder opened
    beneath the root, so `x -> .` then `u1 -> x/..` is seen for what it is:
    the root's parent. A component that does not exist is taken as a folder
    yet to be made, so `missing/../..` leads outside now: a run may make
    `missing` later. Unlike resolves_inside, which asks the kernel whether it
    can open a path now, this answers for a link however far it dangles."""
    root_fd = _root_fd(root)
    try:
        return _resolve(root_fd, rel)
    except _Unresolvable:
        return None
    finally:
        os.close(root_fd)


class _Unresolvable(Exception):
    pass


def _resolve(root_fd: int, rel: str) -> str | None:
    pending = list(reversed(rel.split("/")))
    resolved: list[str] = []
    missing_from: int | None = None  # resolved[missing_from:] does not exist (yet)
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            if missing_from is not None and len(resolved) <= missing_from:
                missing_from = None
            continue
        if missing_from is None:
            exists, target = _entry(root_fd, resolved, part)
            if not exists:
                missing_from = len(resolved)
            elif target is not None:
                links += 1
                if links > _MAX_LINKS or target.startswith("/"):
                    return None
                pending.extend(reversed(target.split("/")))
                continue
        resolved.append(part)
    return "/".join(resolved) or "."


def _entry(root_fd: int, folder_parts: list[str], name: str) -> tuple[bool, str | None]:
    """(whether folder/name exists, what it points at if it is a symlink)."""
    try:
        fd = _openat2(root_fd, "/".join(folder_parts) or ".", os.O_PATH | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except OSError:
        raise _Unresolvable from None
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        return True, (os.readlink(name, dir_fd=fd) if stat.S_ISLNK(info.st_mode) else None)
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except OSError:
        raise _Unresolvable from None
    finally:
        os.close(fd)


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
