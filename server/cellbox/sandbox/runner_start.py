"""The first contact with a container's warm runner: the mount probe written
before start, what the container's main process announces, and waiting for
the runner to connect (or learning that the image has no Python).

The probe costs nothing when the mount works, so a local cold start stays
fast; it tells a remote engine (whose bind mount shows some other folder) from
a local one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from cellbox import safe_files
from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import ContainerInfo, Engine, OutputStream
from cellbox.errors import SandboxFailed
from cellbox.sandbox import state
from cellbox.sandbox.runner_client import RunnerClient, RunnerListener

log = logging.getLogger(__name__)

RUNNER_READY_TIMEOUT_SECONDS = 30.0
"""A fresh container's runner is up in ~50 ms; this only bounds a broken one."""
PYTHON_CHECK_AFTER_SECONDS = 1.5
"""An adopted container whose runner has not connected by then may have no
Python: ask once, rather than wait out RUNNER_READY_TIMEOUT_SECONDS."""


class WorkspaceNotShown(Exception):
    """The bind mount at /workspace does not show this workspace (a remote engine)."""


class ViewNotShown(Exception):
    """The engine sees the daemon's folders but not the nosuid view made for it."""


def write_mount_probe(workspace_state: state.WorkspaceState) -> str | None:
    """Write a fresh token where the container's main process will look
    for it (container_scripts.MOUNT_PROBE); None if it cannot be written."""
    token = uuid.uuid4().hex
    try:
        safe_files.write_regular(workspace_state.run, container_scripts.MOUNT_PROBE, token.encode())
    except (OSError, safe_files.RefusedFile) as exc:
        log.info("cannot write the mount probe in %s: %s", workspace_state.run, exc)
        return None
    return token


async def connect_runner(
    engine: Engine, listener: RunnerListener, info: ContainerInfo, watch: OutputStream,
    probe: str | None, started: bool, view_of: Path | None,
) -> RunnerClient | None:
    """The container's runner, once it has connected; None when the image has no Python.

    WorkspaceNotShown when the main process of a container we started reports
    another `probe` token than the one we wrote; ViewNotShown when /workspace
    is not `view_of` (the workspace whose nosuid view we mounted), by device:inode.
    """
    arrival = asyncio.ensure_future(listener.runner(RUNNER_READY_TIMEOUT_SECONDS))
    identity = state.identity(view_of) if view_of is not None else ""
    announcements = asyncio.ensure_future(_main_says(watch, probe, identity))
    pending: set[asyncio.Future[Any]] = {arrival, announcements}
    asked_for_python = started  # a container we started says so itself
    try:
        while True:
            done, pending = await asyncio.wait(
                pending, timeout=None if asked_for_python else PYTHON_CHECK_AFTER_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if arrival in done:
                try:
                    return arrival.result()
                except TimeoutError:
                    raise SandboxFailed(
                        f"The sandbox {info.name!r} is running but its runner did not connect within "
                        f"{RUNNER_READY_TIMEOUT_SECONDS:.0f} s; see the daemon's log"
                    ) from None
            if announcements in done and announcements.result() == "unavailable":
                return None
            if not done and not asked_for_python:
                asked_for_python = True
                code, _ = await engine.exec_capture(info.id, ["sh", "-c", "command -v python3"])
                if code != 0:
                    return None
    finally:
        for future in pending:
            future.cancel()


async def runner_up(watch: OutputStream) -> None:
    """Wait until a container just started has its runner up ("ready PID" on
    the main process's output), or says it has none, or its output ends; at
    most RUNNER_READY_TIMEOUT_SECONDS. The runner's start-up kills every
    process in the container but its own (processes.kill_orphans)."""
    deadline = asyncio.get_running_loop().time() + RUNNER_READY_TIMEOUT_SECONDS
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        line = await watch.next_line(left)
        if line is None or line.startswith(b"ready ") or line == b"unavailable":
            return


async def _main_says(watch: OutputStream, probe: str | None, identity: str) -> str | None:
    """What the container's main process announces: "unavailable" (no
    Python); WorkspaceNotShown for a probe not ours, ViewNotShown when
    /workspace is not the workspace's folder (device:inode)."""
    while True:
        line = await watch.next_line(RUNNER_READY_TIMEOUT_SECONDS)
        if line is None:
            await asyncio.Event().wait()  # nothing more to learn: let the runner's arrival decide
            continue
        if line.startswith(b"workspace "):
            seen, _, folder = line.split(b" ", 1)[1].decode(errors="replace").partition(" ")
            if probe is not None and seen != probe:
                raise WorkspaceNotShown(
                    f"the sandbox does not see the probe this daemon wrote in {container_scripts.RUN_DIR}"
                )
            if probe is not None and folder and identity and folder != identity:
                raise ViewNotShown(folder)
        elif line == b"unavailable":
            return "unavailable"
