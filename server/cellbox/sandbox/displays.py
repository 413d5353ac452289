"""Rich outputs (a plot, a table) as the daemon keeps them: the MIME bundle a
block showed, and each of its types saved as a file in the daemon's output
folder for the workspace, for clients that cannot render it. Used by both
modes: a session kernel's display_data, and a script's matplotlib figures."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any

from cellbox import safe_files
from cellbox.wire import DisplayOutput

log = logging.getLogger(__name__)

FILE_SUFFIXES = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg", "text/html": ".html",
    "text/markdown": ".md", "application/json": ".json", "text/plain": ".txt", "text/latex": ".tex",
}
BINARY_TYPES = {"image/png", "image/jpeg"}
"""Sent base64-encoded; saved decoded."""
MOST_SAVED_OUTPUTS = 500
"""Files kept in the daemon's output folder for a workspace; the oldest go first."""


def bundle_from_json(line: bytes) -> dict[str, Any] | None:
    """A MIME bundle sent as a JSON object of type → content; None when it is not one."""
    try:
        found = json.loads(line)
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(isinstance(mime, str) for mime in found):
        return None
    return found


def keep_display(outputs: Path, name: str, data: dict[str, Any]) -> DisplayOutput:
    """The display, each of its known types saved under `outputs` as NAME-<random>.<suffix>."""
    files = {}
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[-40:] or 'output'}-{uuid.uuid4().hex[:8]}"
    for mime, value in data.items():
        suffix = FILE_SUFFIXES.get(mime)
        if suffix is None:
            continue
        if mime in BINARY_TYPES and isinstance(value, str):
            try:
                content = base64.b64decode(value)  # a kernel may wrap it in lines
            except ValueError:
                continue
        elif isinstance(value, str):
            content = value.encode()
        else:
            content = json.dumps(value).encode()
        try:
            outputs.mkdir(mode=0o700, exist_ok=True)
            safe_files.write_regular(outputs, stem + suffix, content)
        except (OSError, safe_files.RefusedFile) as exc:
            log.info("cannot save a display output: %s", exc)
            continue
        files[mime] = str(outputs / (stem + suffix))
    _prune(outputs, MOST_SAVED_OUTPUTS)
    return DisplayOutput(data=data, files=files)


def _prune(folder: Path, keep: int) -> None:
    """Remove the oldest files of the daemon's output folder past `keep` (the folder is the daemon's own)."""
    with contextlib.suppress(OSError):
        entries = sorted(os.scandir(folder), key=lambda entry: entry.stat(follow_symlinks=False).st_mtime_ns)
        for entry in entries[: max(0, len(entries) - keep)]:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
