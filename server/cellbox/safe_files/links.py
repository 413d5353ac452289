"""Where a workspace path leads once every symlink on it is followed.

The kernel answers whether a path can be opened beneath the workspace now
(beneath.resolves_inside); copy mode also needs to know where a link leads
however far it dangles, and whether a chain of links that each look inside
(`x -> .`, then `u1 -> x/..`) ends outside. `resolve_beneath` follows the
chain by hand, reading each link in a handle on its folder opened beneath
the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cellbox.safe_files.beneath import open_beneath, root_handle

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
    root_fd = root_handle(root)
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
        fd = open_beneath(root_fd, "/".join(folder_parts) or ".", os.O_PATH | os.O_DIRECTORY)
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
