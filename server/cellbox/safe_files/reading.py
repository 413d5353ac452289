"""Reading a file whole: only a regular file, and at most a cap of bytes.

A workspace file is opened beneath the workspace; a file the user named (a
document to run, their own config) is opened as named. Either way it is
opened with O_NONBLOCK, so even a FIFO cannot hang the open, and is read
only if it turns out to be a regular file within the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cellbox.safe_files.beneath import RefusedFile, TooLarge, open_beneath, refusal, root_handle


def read_regular(root: Path, rel: str, max_bytes: int) -> bytes | None:
    """The bytes of workspace file `rel`; None when it does not exist.

    RefusedFile when it leads outside `root`, is not a regular file, or holds
    more than `max_bytes`."""
    root_fd = root_handle(root)
    try:
        try:
            fd = open_beneath(root_fd, rel, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise refusal(exc, rel) or exc from None
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
