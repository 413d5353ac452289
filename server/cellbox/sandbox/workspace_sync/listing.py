"""What the container says about its /workspace after a run.

container_scripts.COPY_LIST prints what the run changed and what is there
now; these functions read it, and turn the paths a run sends back into
clean relative ones, or refuse them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

import attrs


@attrs.frozen
class RunChanges:
    """What a run did to the container's /workspace, from the listing after it."""

    changed: list[str]
    """Paths (relative, '/'-separated) newer than the run's stamp: files and folders."""
    present: set[str]
    """Every file and symlink there now."""
    stamp_found: bool


def parse_listing(output: bytes) -> RunChanges:
    """Read what container_scripts.COPY_LIST printed: NUL-separated paths
    ("./a/b"), the changed ones, an empty entry, then every file present,
    then "stamp" or "nostamp"."""
    entries = output.split(b"\0")
    try:
        split = entries.index(b"")
    except ValueError:
        split = len(entries)
    changed = [_relative(e) for e in entries[:split]]
    rest = entries[split + 1:]
    stamp_found = bool(rest) and rest[-1].strip() == b"stamp"
    present = {_relative(e) for e in rest[:-1] if e}
    return RunChanges([c for c in changed if c], {p for p in present if p}, stamp_found)


def _relative(entry: bytes) -> str:
    path = entry.decode("utf-8", "surrogateescape")
    return path[2:] if path.startswith("./") else ("" if path == "." else path)


def topmost(paths: Iterable[str]) -> list[str]:
    """The paths that are not inside another one of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(parent + "/") for parent in kept):
            kept.append(path)
    return kept


def safe_relative(name: str) -> str | None:
    """`name` as a clean relative path inside the workspace, or None if it is
    absolute, climbs out with '..', or is the workspace itself."""
    if not name or name.startswith("/"):
        return None
    clean = posixpath.normpath(name)
    if clean in (".", "") or clean.startswith("../") or clean == ".." or posixpath.isabs(clean):
        return None
    return clean
