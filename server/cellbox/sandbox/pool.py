"""Owns the sandboxes of every workspace this daemon serves (SandboxPool), and
each client's view of them (ClientView: its workspaces, settings and runs).

One Sandbox object per workspace path, made on first use; the Sandbox itself
serialises its container's creation, so two requests arriving together never
create two containers (the slot is reserved before the slow start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cellbox.engine.protocol import Engine
from cellbox.errors import CellboxError, InvalidParams
from cellbox.sandbox.core import Sandbox
from cellbox.wire import SandboxInfo

log = logging.getLogger(__name__)


def workspace_path(value: str, field: str = "workspace") -> Path:
    """A workspace given as a file:// URI or a path, as an absolute, existing folder."""
    if value.startswith("file:"):
        parsed = urlparse(value)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidParams(f"{field}: {value!r} is on another host; give a local file:// URI or path")
        raw = unquote(parsed.path)
    elif "://" in value:
        raise InvalidParams(f"{field}: {value!r} is not a file:// URI; give a file:// URI or a local path")
    else:
        raw = value
    if not raw:
        raise InvalidParams(f"{field}: is empty; give a file:// URI or a local path")
    if "\0" in raw:
        raise InvalidParams(f"{field}: {value!r} holds a NUL byte, which no path can; give a folder's path")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParams(f"{field}: {value!r} is not valid text (a lone surrogate); give a folder's path") from None
    if len(raw.encode()) > PATH_MAX:
        raise InvalidParams(f"{field}: the path is {len(raw.encode())} bytes long, more than any folder's can be")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise InvalidParams(f"{field}: {value!r} is relative; give an absolute path or a file:// URI")
    try:
        path = path.resolve()
        is_folder = path.is_dir()
    except (OSError, RuntimeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidParams(f"{field}: {raw!r} cannot be used: {why}") from None
    if not is_folder:
        raise InvalidParams(f"{field}: {path} is not an existing folder")
    return path


PATH_MAX = 4096
"""Linux's longest path, in bytes."""


class SandboxPool:
    """The sandboxes of one daemon process, shared by every client it serves.

    A stdio daemon has one client; a per-project daemon (cellbox.daemon) has
    many, and they all run in the same Sandbox, so the same container.
    """

    def __init__(self, backend: Engine) -> None:
        self.backend = backend
        self._sandboxes: dict[Path, Sandbox] = {}
        self._settings: dict[Path, dict[str, Any]] = {}
        """The client settings each sandbox was made with."""
        self._warming: set[asyncio.Task[None]] = set()
        """Sandboxes being brought up before their first run (prewarm)."""
        self.active_runs = 0
        """Runs going now, over all clients: a daemon with runs is not idle."""
        self.last_activity = time.monotonic()

    def at(self, path: Path, overrides: dict[str, Any], workspace_settings: dict[str, Any] | None = None) -> Sandbox:
        sandbox = self._sandboxes.get(path)
        if sandbox is None:
            sandbox = self._sandboxes[path] = Sandbox(path, self.backend, overrides, workspace_settings)
            self._settings[path] = overrides
        elif overrides and overrides != self._settings[path]:
            # The first client's settings hold for the sandbox all clients share;
            # flapping between two configurations would recreate the container.
            log.warning(
                "a client asked for settings %s for %s, which already runs with %s; keeping those",
                overrides, path, self._settings[path],
            )
        return sandbox

    def known(self, path: Path) -> Sandbox | None:
        """The sandbox of `path` if one was made, without making one."""
        return self._sandboxes.get(path)

    def all(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    @contextlib.contextmanager
    def running(self):
        """Count a run as activity for the idle shutdown, for as long as it lasts."""
        self.active_runs += 1
        try:
            yield
        finally:
            self.active_runs -= 1
            self.last_activity = time.monotonic()

    def prewarm(self, path: Path, overrides: dict[str, Any], workspace_settings: dict[str, Any] | None = None) -> None:
        """Start bringing up the sandbox of `path` in the background (Sandbox.prewarm)."""
        task = asyncio.ensure_future(self.at(path, overrides, workspace_settings).prewarm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def shutdown(self) -> None:
        """Stop the containers this daemon started, unless their config says to keep them."""
        # A container still being brought up is waited for, so that it is
        # stopped below and not made after the stop.
        await asyncio.gather(*self._warming, return_exceptions=True)
        stopping = []
        # Copies: a request still being served may add a workspace meanwhile.
        for sandbox in list(self._sandboxes.values()):
            config = sandbox.last_config
            if sandbox.started_here and config is not None and config.stop_container:
                stopping.append(sandbox.stop())
        outcomes = await asyncio.gather(*stopping, return_exceptions=True)
        for sandbox in list(self._sandboxes.values()):
            sandbox.close()
        for outcome in outcomes:
            if isinstance(outcome, CellboxError):
                log.warning("could not stop a sandbox at shutdown: %s", outcome)
            elif isinstance(outcome, BaseException):
                log.error("could not stop a sandbox at shutdown", exc_info=outcome)


class ClientView:
    """One client's view of the pool: its workspaces, its settings and its runs."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.overrides: dict[str, Any] = {}
        """Validated settings from the client's initializationOptions, applied to every workspace."""
        self.workspace_settings: dict[str, Any] | None = None
        """Settings the client read from the workspace (initializationOptions.workspaceSettings):
        untrusted, weighed like a workspace file."""
        self.default_workspaces: list[Path] = []
        """Workspaces named at initialize; the first is used when a request names none."""
        self._cancels: dict[str, asyncio.Event] = {}
        """Runs that can be cancelled, by the runId their client gave."""
        self._runs: set[asyncio.Event] = set()
        """Every run of this client going now, named or not, to cancel when it hangs up."""

    @contextlib.contextmanager
    def cancellable(self, run_id: str | None):
        """An event that `cancel(run_id)` sets, for as long as the run lasts."""
        if run_id is not None and run_id in self._cancels:
            raise InvalidParams(f"runId: a run named {run_id!r} is already going; choose another")
        event = asyncio.Event()
        if run_id is not None:
            self._cancels[run_id] = event
        self._runs.add(event)
        try:
            with self.pool.running():
                yield event
        finally:
            self._runs.discard(event)
            if run_id is not None:
                del self._cancels[run_id]

    def cancel(self, run_id: str) -> bool:
        event = self._cancels.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def cancel_all(self) -> None:
        """The client went away: nothing it started may keep running."""
        for event in self._runs:
            event.set()

    def resolve(self, value: str | None) -> Path:
        if value is not None:
            return workspace_path(value)
        if not self.default_workspaces:
            raise InvalidParams(
                "workspace: the request names no workspace and the client gave none at "
                "initialize (workspaceFolders, rootUri or rootPath); pass a workspace"
            )
        return self.default_workspaces[0]

    def sandbox(self, workspace: str | None) -> Sandbox:
        return self._sandbox_at(self.resolve(workspace))

    def sandbox_for_file(self, path: Path) -> Sandbox:
        """The sandbox of the workspace a document is in."""
        return self._sandbox_at(self.workspace_for_file(path))

    def workspace_for_file(self, path: Path) -> Path:
        """The innermost workspace of initialize that holds the file, else the
        first one, else the file's own folder."""
        path = path.resolve()
        holders = [w for w in self.default_workspaces if w == path or w in path.parents]
        if holders:
            return max(holders, key=lambda w: len(w.parts))
        if self.default_workspaces:
            return self.default_workspaces[0]
        return path.parent

    def _sandbox_at(self, path: Path) -> Sandbox:
        return self.pool.at(path, self.overrides, self.workspace_settings)

    async def status(self) -> list[SandboxInfo]:
        """This client's workspaces and every other the daemon serves."""
        for path in self.default_workspaces:
            self._sandbox_at(path)
        return list(await asyncio.gather(*(s.info() for s in self.pool.all())))
