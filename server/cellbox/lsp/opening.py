"""What a client's `initialize` sets up: its workspaces and its settings,
from the message's plain JSON. The initialize handler (features.py) uses it,
and so does `cellbox serve` before pygls is even loaded (stdio.py), to start
the workspace's sandbox while lsprotocol's types are still being imported
(~0.5 s): both read the message the same way, so the sandbox started early
is the very one the first run uses.

Light: no pygls, no lsprotocol, no docker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

from cellbox.errors import ConfigError, InvalidParams
from cellbox.sandbox.pool import workspace_path
from cellbox.settings.schema import validate_overrides

log = logging.getLogger(__name__)


class ClientSettings(NamedTuple):
    workspaces: list[Path]
    """The workspaces the client names, in its order; the first is used when a request names none."""
    overrides: dict[str, Any]
    """Validated settings from initializationOptions (the client's own)."""
    workspace_settings: dict[str, Any] | None
    """initializationOptions.workspaceSettings: read from the workspace by the client, untrusted."""
    error: ConfigError | None
    """Why the options were set aside (the workspace's own settings apply instead)."""


def client_settings(folder_uris: list[str], root: str | None, options: Any) -> ClientSettings:
    """The workspaces and settings of an initialize: workspaceFolders' URIs,
    else rootUri or rootPath (`root`), and initializationOptions."""
    workspaces = []
    for uri in folder_uris or ([root] if root else []):
        try:
            workspaces.append(workspace_path(uri))
        except InvalidParams as exc:
            log.warning("ignoring workspace %s: %s", uri, exc)
    overrides: dict[str, Any] = {}
    workspace_settings = None
    try:
        if isinstance(options, dict) and "workspaceSettings" in options:
            options = dict(options)
            from_workspace = options.pop("workspaceSettings")
            # Checked now for a clear message; weighed like a workspace file at each run.
            workspace_settings = validate_overrides(from_workspace, "initializationOptions.workspaceSettings")
        overrides = validate_overrides(options, "initializationOptions")
    except ConfigError as exc:
        return ClientSettings(workspaces, {}, workspace_settings, exc)
    return ClientSettings(workspaces, overrides, workspace_settings, None)


def settings_of_initialize(message: bytes) -> ClientSettings | None:
    """The settings of a raw LSP message (headers and body) if it is an
    `initialize` request; None for anything else or anything malformed."""
    try:
        body = json.loads(message.partition(b"\r\n\r\n")[2])
        if not isinstance(body, dict) or body.get("method") != "initialize":
            return None
        params = body.get("params")
        if not isinstance(params, dict):
            return None
        folders = params.get("workspaceFolders") or []
        uris = [f["uri"] for f in folders if isinstance(f, dict) and isinstance(f.get("uri"), str)]
        root = params.get("rootUri") or params.get("rootPath")
        return client_settings(uris, root if isinstance(root, str) else None, params.get("initializationOptions"))
    except (ValueError, TypeError, KeyError):
        return None


async def read_message(stream: asyncio.StreamReader) -> bytes:
    """One whole LSP message, headers included, exactly as it came; b"" at
    the end of the stream (or a message cut short)."""
    raw = b""
    length = None
    try:
        while True:
            line = await stream.readline()
            if not line:
                return b""
            raw += line
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            if line in (b"\r\n", b"\n") and length is not None:
                return raw + await stream.readexactly(length)
    except (ValueError, asyncio.IncompleteReadError):
        return raw  # pygls reads it again and says what is wrong
