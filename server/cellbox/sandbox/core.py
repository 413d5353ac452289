"""One workspace's sandbox: its container and the runs of its blocks.

Runs are serialised per workspace (asyncio.Lock is FIFO, so they go in arrival
order and never interleave in the container's files); container lifecycle
changes take a second, short lock so a restart need not wait for a long run.

The daemon stays attached to the container's main process, the warm runner
(runner.py). While that attachment is alive the container is known to be
running, so a warm execute makes no engine call at all: the request goes
straight to the runner, which forks the block. Images without Python fall back
to one `docker exec` per block (exec_path.py).

When the engine cannot show the workspace through a bind mount (it runs on
another machine), the sandbox is made in copy mode instead: files travel
through the engine's archive API (workspace_sync.py) before and after each
run, and blocks run with one `docker exec` each, as the runner's socket is out
of reach. `workspace_mount = "auto"` tries the bind mount first and falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import logging
import re
import tarfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from cellbox.container import scripts as container_scripts
from cellbox.engine.docker import (
    BindSourceMissing,
    ContainerGone,
    ContainerInfo,
    ContainerSpec,
    DockerBackend,
    ImageMissing,
    StreamConnection,
)
from cellbox import safe_files
from cellbox.sandbox import state
from cellbox.settings import trust
from cellbox.sandbox.prepare import VCS_FOLDERS, interpreter_for, prepare_block
from cellbox.settings.config import ResolvedConfig, SandboxConfig, approval_question, resolve_config
from cellbox.errors import ImageUnavailable, SandboxFailed
from cellbox.sandbox.exec_path import ExecPath
from cellbox.sandbox.output import OutputCollector
from cellbox.sandbox.runner_client import RunEnd, RunnerClient, RunnerListener, RunnerLost
from cellbox.wire import BlockResult, ExecuteResult, Range, SandboxInfo, SandboxState
from cellbox.sandbox.workspace_sync import WorkspaceSync
from cellbox.vocabulary import (
    CANCELLED_EXIT_CODE,
    KILLED_EXIT_CODE,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    OUTPUT_LIMIT_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
    ContainerState,
    Status,
)

log = logging.getLogger(__name__)

TIMEOUT_MESSAGE = "Timeout"
KILL_WAIT_SECONDS = 5.0
CANCELLED_MESSAGE = "Cancelled"
RUNNER_READY_TIMEOUT_SECONDS = 30.0
"""A fresh container's runner is up in ~50 ms; this only bounds a broken one."""

RUNNER_SOURCE = resources.files("cellbox.container").joinpath("runner.py").read_text(encoding="utf-8")
SANDBOX_MAIN = container_scripts.sandbox_main_argv(RUNNER_SOURCE)
COPY_MAIN = container_scripts.copy_main_argv()
MAIN_DIGESTS = {
    tuple(main): hashlib.sha256("\0".join(main).encode()).hexdigest() for main in (SANDBOX_MAIN, COPY_MAIN)
}

OOM_EVENT_WAIT_SECONDS = 2.0
"""Without the cgroup's counter (docker-exec runs), how long the engine's oom
event may take to show after a SIGKILL: under load it trails the exit."""
PYTHON_CHECK_AFTER_SECONDS = 1.5
"""An adopted container whose runner has not connected by then may have no
Python: ask once, rather than wait out RUNNER_READY_TIMEOUT_SECONDS."""

ProgressFactory = Callable[[str], AbstractAsyncContextManager[Any]]
"""Opens a progress indicator with a title for the duration of a slow step."""


@contextlib.asynccontextmanager
async def no_progress(_title: str):
    yield


def container_name_for(workspace: Path) -> str:
    """A readable, deterministic name: the folder's name plus a hash of its full path."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", workspace.name.lower()).strip("-.")[:30] or "workspace"
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:10]
    return f"cellbox-{slug}-{digest}"


@attrs.frozen
class BlockToRun:
    """A block as the sandbox runs it: given as text, or found in a document."""

    language: str
    code: str
    range: Range | None = None
    """Where its code is in its document, when it comes from one."""
    extent: Range | None = None
    """The whole block in its document, fence lines or cell marker included."""


class RunListener:
    """Hears a run as it goes; the server streams what it hears to the client."""

    def block_started(self, index: int, block: BlockToRun) -> None:
        pass

    def output(self, index: int, stream: str, text: str) -> None:
        pass


class Place:
    """A request's place in its workspace's queue of runs, taken when it
    arrives: later awaits (reading a document, the settings) cannot let a later
    request overtake it. asyncio.Lock wakes its waiters in the order they began
    to wait, and a task begins in the order it was made."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._acquiring = asyncio.ensure_future(lock.acquire())
        self._left = False

    async def wait(self) -> None:
        await asyncio.shield(self._acquiring)

    def leave(self) -> None:
        """Give the place up, whether its turn came or not (idempotent)."""
        if self._left:
            return
        self._left = True
        if not self._acquiring.done():
            self._acquiring.cancel()  # the lock forgets a cancelled waiter
        elif not self._acquiring.cancelled() and self._acquiring.exception() is None:
            self._lock.release()


class SettingsGate:
    """The person behind a request: asked to approve a workspace file's
    settings that loosen the sandbox, and told which were left out. The
    default approves nothing and tells no one."""

    async def approve(self, question: str) -> bool:
        return False

    def warn(self, message: str) -> None:
        log.warning("%s", message)


@attrs.frozen
class RunOutcome:
    """How one block's process ended, before it is told as a BlockResult."""

    exit_code: int
    output: str
    truncated: bool
    started_at: float
    """Unix time the run began (to ask the engine what happened since)."""
    timed_out: bool = False
    cancelled: bool = False
    interrupted: bool = False
    """The container stopped or restarted under it."""
    oom_kills: int | None = None
    """Processes the memory limit killed during the run; None when unknown."""


@attrs.define
class Attached:
    """A running container this daemon is connected to, and how its blocks run."""

    container: ContainerInfo
    runner: RunnerClient | None
    """The connection to its warm runner; None when the image has no Python."""
    spec_label: str
    exec_path: ExecPath
    sync: WorkspaceSync | None = None
    """Copy mode: keeps the container's /workspace in step with the workspace."""

    @property
    def path(self) -> RunnerClient | ExecPath:
        return self.runner if self.runner is not None else self.exec_path

    @property
    def usable(self) -> bool:
        # Without a runner nothing tells us the container went away: the next
        # exec finds out (ContainerGone) and the block is retried.
        return self.runner is None or self.runner.alive

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


class Sandbox:
    def __init__(
        self, workspace: Path, backend: DockerBackend, overrides: dict[str, Any],
        workspace_settings: dict[str, Any] | None = None,
    ) -> None:
        self.workspace = workspace
        self._backend = backend
        self._overrides = overrides
        self._workspace_settings = workspace_settings
        """Settings the client read from the workspace (e.g. .vscode/settings.json): untrusted."""
        self._state: state.WorkspaceState | None = None
        self._listener: RunnerListener | None = None
        self._attached_source = ""
        """The bind source of the container being attached."""
        self._view_unseen = False
        """The engine did not see the nosuid view (it runs in a mount namespace of
        its own): the workspace itself is mounted instead."""
        self._no_python: set[str] = set()
        """Containers found to have no python3: their blocks run with docker exec."""
        self._run_lock = asyncio.Lock()
        self._lifecycle_lock = asyncio.Lock()
        self._attached: Attached | None = None
        self.started_here = False
        """Whether this daemon created or started the container (and so stops it on shutdown)."""
        self.last_resolved: ResolvedConfig | None = None
        self._detected_mount: str | None = None
        """What `workspace_mount = "auto"` found this engine needs: "copy" once a bind mount failed."""
        self._sync: WorkspaceSync | None = None
        """Copy mode's record of what the container has; kept across restarts of the same container."""

    # ------------------------------------------------------------ config

    @property
    def last_config(self) -> SandboxConfig | None:
        return self.last_resolved.config if self.last_resolved is not None else None

    async def config(self, gate: SettingsGate | None = None) -> SandboxConfig:
        """Read afresh on each request, so edits to cellbox.toml apply without a
        restart, and so that a file a block rewrote loses its approval at once.
        Loosening settings of an unapproved workspace file are put to `gate`."""
        resolve = functools.partial(resolve_config, self.workspace, self._overrides, self._workspace_settings)
        resolved = await asyncio.to_thread(resolve)
        if resolved.unapproved and gate is not None:
            if await gate.approve(approval_question(resolved, self.workspace)):
                # The content shown is what gets approved: if the file changed
                # meanwhile, its new content is not.
                for file in resolved.unapproved:
                    await asyncio.to_thread(trust.approve, file.path, file.digest)
                resolved = await asyncio.to_thread(resolve)
        if resolved.ignored:
            (gate or SettingsGate()).warn(resolved.ignored_message(self.workspace))
        self.last_resolved = resolved
        return resolved.config

    def take_place(self) -> Place:
        """This request's place among the workspace's runs, in arrival order
        (call it before the request awaits anything)."""
        return Place(self._run_lock)

    async def state(self) -> state.WorkspaceState:
        """The daemon's own folder for this workspace (made on first use)."""
        if self._state is None:
            self._state = await asyncio.to_thread(state.WorkspaceState.of, self.workspace)
        return self._state

    def container_name(self, config: SandboxConfig) -> str:
        return config.container_name or container_name_for(self.workspace)

    def mount_for(self, config: SandboxConfig) -> str:
        """"bind" or "copy": the configured mode, or what `auto` found (bind until it fails)."""
        if config.workspace_mount != "auto":
            return config.workspace_mount
        return self._detected_mount or "bind"

    def _bind_source(self, config: SandboxConfig) -> str:
        """What the engine mounts at /workspace: the nosuid view of the
        workspace where this daemon can make one (state.nosuid_view)."""
        if config.bind_dir:
            return config.bind_dir
        assert self._state is not None
        if self._view_unseen or not state.nosuid_supported(self._state):
            return str(self.workspace)
        return str(self._state.view)

    def _spec(self, config: SandboxConfig, mount: str | None = None) -> ContainerSpec:
        copy = (mount or self.mount_for(config)) == "copy"
        assert self._state is not None, "await self.state() first"
        source = "" if copy else self._bind_source(config)
        read_only: tuple[tuple[str, str], ...] = ()
        if not copy:
            read_only = (
                (str(self._state.blocks), container_scripts.BLOCKS_DIR),
                (str(self._state.run), container_scripts.RUN_DIR),
                *((f"{source}/{name}", f"/workspace/{name}") for name in state.vcs_folders(self.workspace)),
            )
        spec = ContainerSpec(
            name=self.container_name(config),
            image=config.image,
            main=COPY_MAIN if copy else SANDBOX_MAIN,
            workspace_mount="copy" if copy else "bind",
            bind_source=source,
            read_only_binds=read_only,
            volumes=(container_scripts.BLOCKS_DIR,) if copy else (),
            network=config.network,
            auto_remove=config.auto_remove,
            labels={LABEL_WORKSPACE: str(self.workspace)},
            user=self.user(config),
            # HOME: the image's /root or / is read-only or not ours; tools
            # such as pip want a writable home. PYTHONUNBUFFERED: a block's
            # stdout is a pipe, so Python would hold a plain print() until it
            # exits; the user should see it when it is printed.
            env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1", **config.env},
            memory=config.memory,
            cpus=config.cpus,
            pids_limit=config.pids_limit,
            open_files=config.open_files,
            max_file_size=config.max_file_size,
            tmp_size=config.tmp_size,
            read_only=config.read_only,
            cap_add=config.cap_add,
            no_new_privileges=config.no_new_privileges,
            runtime=config.runtime,
        )
        # Anything in the spec that changes makes the existing container stale,
        # the runner's own source included (by its digest, computed once: this
        # runs on every execute), so an upgraded cellbox replaces it.
        fields = attrs.astuple(attrs.evolve(spec, main=[MAIN_DIGESTS[tuple(spec.main)]]))
        fingerprint = hashlib.sha256(repr(fields).encode()).hexdigest()[:16]
        return attrs.evolve(spec, labels={**spec.labels, LABEL_SPEC: fingerprint})

    def owner(self, config: SandboxConfig) -> tuple[int, int]:
        uid, _, gid = self.user(config).partition(":")
        return int(uid), int(gid)

    def user(self, config: SandboxConfig) -> str:
        """uid:gid blocks run as: by default whoever owns the workspace, so the
        files they make there are that person's, not root's."""
        if config.user != "auto":
            return config.user if ":" in config.user else f"{config.user}:{config.user}"
        owner = self.workspace.stat()
        return f"{owner.st_uid}:{owner.st_gid}"

    # --------------------------------------------------------- container

    async def _ensure_container(self, config: SandboxConfig, progress: ProgressFactory) -> Attached:
        """The attached, running container for this workspace: reused, started, or created."""
        await self.state()
        spec = self._spec(config, self.mount_for(config))
        if (attached := self._current(spec)) is not None:
            return attached  # the warm path: no engine call
        async with self._lifecycle_lock:
            spec = self._spec(config, self.mount_for(config))  # auto may have decided meanwhile
            if (attached := self._current(spec)) is not None:
                return attached  # a concurrent request did the work
            self._detach()
            self._attached = await self._attach(config, spec, progress)
            return self._attached

    def _current(self, spec: ContainerSpec) -> Attached | None:
        """The attachment, if it is alive and made for this very spec."""
        attached = self._attached
        if attached is not None and attached.usable and attached.spec_label == spec.labels[LABEL_SPEC]:
            return attached
        return None

    async def _attach(self, config: SandboxConfig, spec: ContainerSpec, progress: ProgressFactory) -> Attached:
        auto = config.workspace_mount == "auto"
        # Create first: on a cold start that is the one call needed, and when
        # the container exists already the engine answers with it instead.
        # The workspace's nosuid view exists only while the engine needs it.
        with self._view(spec):
            try:
                info = await self._create(spec, progress)
            except BindSourceMissing as exc:
                if not auto:
                    raise
                return await self._fall_back_to_copy(config, progress, str(exc))
            self._check_ours(info)
            if info.labels.get(LABEL_SPEC) != spec.labels[LABEL_SPEC]:
                copy_spec = self._spec(config, "copy") if auto and spec.workspace_mount == "bind" else None
                if copy_spec is not None and info.labels.get(LABEL_SPEC) == copy_spec.labels[LABEL_SPEC]:
                    # An earlier daemon found that this engine cannot show the
                    # workspace, and made the sandbox in copy mode: adopt it.
                    self._detected_mount, spec = "copy", copy_spec
                else:
                    info = await self._replace(spec, progress)
            if spec.workspace_mount == "copy":
                return await self._attach_copy(config, spec, info)
            exec_path = ExecPath(self._backend, info.id)
            listener = await self._listen(info)
            if listener is None:
                # Another cellbox daemon serves this workspace and holds its
                # runner: share the container through docker exec.
                log.info("%s: another daemon holds the runner; blocks run with docker exec", info.name)
                shared = ExecPath(self._backend, info.id, sweep_strays=False)
                return Attached(info, None, spec.labels[LABEL_SPEC], shared)
            listener.expect(self.owner(config))
            self._attached_source = spec.bind_source
            # Watch the main process's announcements from before it starts, so
            # that none is missed.
            watch = await self._backend.attach(info.id)
            try:
                probe = None
                started = info.state != "running"
                if started:
                    probe = self._write_mount_probe()
                    await self._backend.start_container(info.name)
                    self.started_here = True
                runner = await self._connect_runner(info, watch, probe, started)
            except ViewNotShown:
                not_shown = None
            except WorkspaceNotShown as exc:
                not_shown = exc
            else:
                return Attached(info, runner, spec.labels[LABEL_SPEC], exec_path)
            finally:
                watch.close()
        if not_shown is None:
            # The engine mounted our nosuid view empty: it does not see mounts
            # made after it started (its own mount namespace). Mount the
            # workspace itself; the runner's seccomp filter still keeps setuid
            # files out.
            log.warning("%s: the engine does not see the nosuid view of the workspace; mounting it directly", spec.name)
            self._view_unseen = True
            await self._backend.remove_container(spec.name, self._label)
            return await self._attach(config, self._spec(config), progress)
        if not auto:
            raise SandboxFailed(
                f"The engine mounted {spec.bind_source} at /workspace but the sandbox does not see this "
                f"workspace's files there ({not_shown}): the engine runs on another machine. "
                'Set workspace_mount = "copy" (or "auto") in cellbox.toml.'
            )
        await self._backend.remove_container(spec.name, self._label)
        return await self._fall_back_to_copy(config, progress, str(not_shown))

    @property
    def _label(self) -> tuple[str, str]:
        """The label a container must carry for this daemon to touch it."""
        return LABEL_WORKSPACE, str(self.workspace)

    def _check_ours(self, info: ContainerInfo) -> None:
        if info.labels.get(LABEL_WORKSPACE) != str(self.workspace):
            raise SandboxFailed(
                f"A container named {info.name!r} already exists and is not the sandbox of {self.workspace}; "
                "cellbox leaves it alone. Remove it yourself, or choose another container_name."
            )

    @contextlib.contextmanager
    def _view(self, spec: ContainerSpec):
        assert self._state is not None
        if spec.workspace_mount == "bind" and spec.bind_source == str(self._state.view):
            with state.nosuid_view(self.workspace, self._state.view) as mounted:
                if not mounted:
                    raise SandboxFailed(f"Could not mount {self.workspace} nosuid for the sandbox; see the daemon's log")
                yield
        else:
            yield

    async def _listen(self, info: ContainerInfo) -> RunnerListener | None:
        """This sandbox's runner socket, listening; None when another daemon listens there."""
        if self._listener is None:
            assert self._state is not None
            self._listener = RunnerListener(self._state.run, info.name)
        if await self._listener.open():
            return self._listener
        return None

    async def _replace(self, spec: ContainerSpec, progress: ProgressFactory) -> ContainerInfo:
        # Image, mount, network or runner changed: the old container is stale.
        log.info("replacing %s: its settings changed", spec.name)
        await self._backend.remove_container(spec.name, self._label)
        return await self._create(spec, progress)

    async def _fall_back_to_copy(self, config: SandboxConfig, progress: ProgressFactory, why: str) -> Attached:
        log.info("%s: a bind mount does not show the workspace (%s); copying files instead", self.workspace, why)
        self._detected_mount = "copy"
        spec = self._spec(config, "copy")
        info = await self._create(spec, progress)
        self._check_ours(info)
        if info.labels.get(LABEL_SPEC) != spec.labels[LABEL_SPEC]:
            info = await self._replace(spec, progress)
        return await self._attach_copy(config, spec, info)

    async def _attach_copy(self, config: SandboxConfig, spec: ContainerSpec, info: ContainerInfo) -> Attached:
        if info.state != "running":
            await self._backend.start_container(info.name)
            self.started_here = True
        # A new container (or one this daemon has not seen) starts from an
        # empty record, so the first run sends the whole workspace.
        if self._sync is None or self._sync.container_id != info.id:
            self._sync = WorkspaceSync(
                self._backend, info.id, self.workspace, self.owner(config), config.copy_size_limit
            )
        self._sync.size_limit = config.copy_size_limit
        exec_path = ExecPath(self._backend, info.id, stamp=container_scripts.COPY_STAMP)
        return Attached(info, None, spec.labels[LABEL_SPEC], exec_path, self._sync)

    def _write_mount_probe(self) -> str | None:
        """Write a fresh token where the container's main process will look
        for it (container_scripts.MOUNT_PROBE); None if it cannot be written."""
        assert self._state is not None
        token = uuid.uuid4().hex
        try:
            safe_files.write_regular(self._state.run, container_scripts.MOUNT_PROBE, token.encode())
        except (OSError, safe_files.RefusedFile) as exc:
            log.info("cannot write the mount probe in %s: %s", self._state.run, exc)
            return None
        return token

    async def _connect_runner(
        self, info: ContainerInfo, watch: StreamConnection, probe: str | None, started: bool
    ) -> RunnerClient | None:
        """The container's runner, once it has connected; None when the image has no Python.

        WorkspaceNotShown when the bind mount shows some other folder (on the
        engine's own machine): the main process of a container we started
        reports another `probe` token than the one we wrote. That costs
        nothing when the mount works, so a local cold start stays fast.
        """
        if info.id in self._no_python:
            return None
        assert self._listener is not None
        arrival = asyncio.ensure_future(self._listener.runner(RUNNER_READY_TIMEOUT_SECONDS))
        # Only our own view is checked by device:inode: a bind_dir names the
        # workspace as the engine's machine knows it, which may differ.
        view = self._state is not None and self._attached_source == str(self._state.view)
        identity = _identity(self.workspace) if view else ""
        announcements = asyncio.ensure_future(self._main_says(watch, probe, identity))
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
                    break
                if not done and not asked_for_python:
                    asked_for_python = True
                    code, _ = await self._backend.exec_capture(info.id, ["sh", "-c", "command -v python3"])
                    if code != 0:
                        break
        finally:
            for future in pending:
                future.cancel()
        log.info("%s has no python3: blocks run with docker exec", info.name)
        self._no_python.add(info.id)
        return None

    async def _main_says(self, watch: StreamConnection, probe: str | None, identity: str) -> str | None:
        """What the container's main process announces: "unavailable" (no
        Python); WorkspaceNotShown for a probe not ours, ViewNotShown when
        /workspace is not the workspace's folder (device:inode)."""
        while True:
            line = await watch.next_line(RUNNER_READY_TIMEOUT_SECONDS)
            if line is None:
                await asyncio.Event().wait()  # nothing more to learn: let the runner's arrival decide
            if line.startswith(b"workspace "):
                seen, _, folder = line.split(b" ", 1)[1].decode(errors="replace").partition(" ")
                if probe is not None and seen != probe:
                    raise WorkspaceNotShown(f"the sandbox does not see the probe this daemon wrote in {container_scripts.RUN_DIR}")
                if probe is not None and folder and identity and folder != identity:
                    raise ViewNotShown(folder)
            elif line == b"unavailable":
                return "unavailable"

    async def _create(self, spec: ContainerSpec, progress: ProgressFactory) -> ContainerInfo:
        try:
            return await self._backend.create_container(spec)
        except ImageMissing:
            resolved = self.last_resolved
            if resolved is not None and not resolved.image_trusted:
                raise ImageUnavailable(
                    f"Image {spec.image!r} is not on the Docker engine, and cellbox does not pull an image "
                    f"named by a workspace file you have not approved: a pull is network traffic, and the "
                    f"name alone can carry data out. Pull or build it yourself, or run `cellbox trust "
                    f"{self.workspace}` to approve the file."
                ) from None
            async with progress(f"Pulling image {spec.image}"):
                await self._backend.pull_image(spec.image)
            return await self._backend.create_container(spec)

    def _detach(self) -> None:
        if self._attached is not None:
            self._attached.close()
            self._attached = None

    def close(self) -> None:
        """Let go of the container (it keeps running)."""
        self._detach()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def restart(self, progress: ProgressFactory = no_progress, gate: SettingsGate | None = None) -> SandboxState:
        """Restart the container (files in the workspace stay); create it if there is none."""
        config = await self.config(gate)
        name = self.container_name(config)
        await self.state()
        async with self._lifecycle_lock:
            self._detach()
            info = await self._backend.find_container(name)
            restarted = False
            if info is not None:
                self._check_ours(info)
            if info is not None and info.state == "running":
                spec = self._spec(config)
                listener = await self._listen(info) if spec.workspace_mount == "bind" else None
                if listener is not None:
                    listener.expect(self.owner(config))  # the new runner finds its token at once
                try:
                    with self._view(spec):
                        await self._backend.restart_container(name, self._label)
                    self.started_here = restarted = True
                except ContainerGone:
                    pass
        if not restarted:
            await self._ensure_container(config, progress)
        return SandboxState(str(self.workspace), name, ContainerState.RUNNING)

    async def stop(self, gate: SettingsGate | None = None) -> SandboxState:
        config = await self.config(gate)
        name = self.container_name(config)
        async with self._lifecycle_lock:
            self._detach()
            await self._backend.stop_container(name, removed=config.auto_remove, label=self._label)
        return SandboxState(str(self.workspace), name, ContainerState.STOPPED)

    async def info(self) -> SandboxInfo:
        try:
            config = await self.config()
        except Exception:
            config = self.last_config or SandboxConfig()
        name = self.container_name(config)
        found = await self._backend.find_container(name)
        if found is None:
            state_name = ContainerState.ABSENT
        elif found.labels.get(LABEL_WORKSPACE) != str(self.workspace):
            state_name = ContainerState.FOREIGN  # a container of that name that is not this workspace's
        else:
            state_name = found.state
        return SandboxInfo(str(self.workspace), name, state_name, found.image if found else config.image)

    # -------------------------------------------------------------- runs

    async def execute(
        self,
        blocks: Sequence[BlockToRun],
        timeout: float | None = None,
        progress: ProgressFactory = no_progress,
        cancelled: asyncio.Event | None = None,
        listener: RunListener | None = None,
        run_id: str = "",
        gate: SettingsGate | None = None,
        place: Place | None = None,
    ) -> ExecuteResult:
        """Save and run `blocks` in order, stopping at the first non-zero exit,
        or when `cancelled` is set (the block running then is killed). The
        listener hears each block start and its output as it comes."""
        cancelled = cancelled or asyncio.Event()
        listener = listener or RunListener()
        started = time.perf_counter()
        place = place or self.take_place()
        try:
            await place.wait()
            config = await self.config(gate)
            timeout = config.timeout if timeout is None else timeout
            results: list[BlockResult] = []
            files: list[str] = []
            for index, block in enumerate(blocks):
                listener.block_started(index, block)
                result = await self._execute_block(
                    block, config, timeout, progress, cancelled, functools.partial(listener.output, index)
                )
                results.append(result)
                if result.code_file is not None:
                    files.append(result.code_file)
                if result.exit_code != 0:
                    break
        finally:
            place.leave()
        return ExecuteResult(
            exit_code=results[-1].exit_code if results else 0,
            output="".join(r.output for r in results),
            code_file=files[0] if files else None,
            timed_out=any(r.timed_out for r in results),
            duration_ms=_ms_since(started),
            workspace=str(self.workspace),
            container=self.container_name(config),
            blocks=results,
            status=results[-1].status,
            truncated=any(r.truncated for r in results),
            run_id=run_id,
        )

    async def _execute_block(
        self,
        block: BlockToRun,
        config: SandboxConfig,
        timeout: float,
        progress: ProgressFactory,
        cancelled: asyncio.Event,
        on_output: Callable[[str, str], None],
    ) -> BlockResult:
        started = time.perf_counter()
        prepared = prepare_block(block.language, block.code, self.workspace, config.execution_policies)
        workspace_state = await self.state()

        def not_run(exit_code: int, output: str, code_file: str | None, status: str = Status.NOT_EXECUTED) -> BlockResult:
            return BlockResult(
                prepared.language, exit_code, output, code_file, executed=False, timed_out=False,
                duration_ms=_ms_since(started), status=status, truncated=False, range=block.range,
                extent=block.extent,
            )

        if cancelled.is_set():  # cancelled while waiting for its turn
            return not_run(CANCELLED_EXIT_CODE, CANCELLED_MESSAGE, None, status=Status.CANCELLED)
        if prepared.relative_path is None:
            return not_run(1, prepared.refusal or "", None)
        # A block the user did not name goes to the daemon's own folder, out of
        # the sandbox's reach (read-only inside); a named one into the
        # workspace, where nothing planted there can send the write elsewhere.
        folder = workspace_state.blocks if prepared.generated else self.workspace
        path = folder / prepared.relative_path
        data = prepared.code.encode("utf-8", "replace")  # lone surrogates can arrive in JSON strings
        owner = None if prepared.generated else self.owner(config)
        try:
            forbidden = () if prepared.generated else VCS_FOLDERS
            await asyncio.to_thread(safe_files.write_regular, folder, prepared.relative_path, data, owner, forbidden)
        except safe_files.RefusedFile as exc:
            log.info("refused to write %s in %s: %s", prepared.relative_path, folder, exc)
            # The seed's words for a path that leads out of the workspace.
            return not_run(1, "Filename is not in the workspace" if exc.outside else f"Filename is not valid: {exc}", None)
        except OSError as exc:
            return not_run(1, f"Filename is not valid: {prepared.relative_path}: {exc.strerror}\n", None)
        if not prepared.runs:
            return not_run(0, f"Code saved to {path}\n", str(path))

        # The container is made or checked only now: a request whose blocks are
        # all refused or only saved needs none.
        in_container = (
            f"{container_scripts.BLOCKS_DIR}/{prepared.relative_path}" if prepared.generated else prepared.relative_path
        )
        command = [interpreter_for(prepared.language), in_container]
        for attempt in (1, 2):
            attached = await self._ensure_container(config, progress)
            try:
                if attached.sync is not None:  # copy mode: the block's file and what changed go in first
                    if prepared.generated:
                        await self._backend.put_archive(
                            attached.container.id, container_scripts.BLOCKS_DIR, _one_file_tar(prepared.relative_path, data)
                        )
                        await attached.sync.push()
                    else:
                        await attached.sync.push(extra=[prepared.relative_path])
                outcome = await self._run(attached, command, timeout, config.output_limit, cancelled, on_output)
                break
            except (ContainerGone, RunnerLost) as lost:
                # The block never started: the container went away or the
                # runner died or wedged since we last looked. Bring it back once.
                log.warning("retrying a block in %s: %s", self.workspace, lost)
                await self._recover(attached, wedged=isinstance(lost, RunnerLost) and lost.wedged)
                if attempt == 2:
                    raise SandboxFailed(f"The sandbox could not run the block: {lost}") from None
        if attached.sync is not None:
            outcome = await self._copy_back(attached.sync, outcome, on_output)
        return BlockResult(
            prepared.language, outcome.exit_code, outcome.output, str(path), executed=True,
            timed_out=outcome.timed_out, duration_ms=_ms_since(started),
            status=await self._status(attached, outcome), truncated=outcome.truncated, range=block.range,
            extent=block.extent,
        )

    async def _copy_back(
        self, sync: WorkspaceSync, outcome: RunOutcome, on_output: Callable[[str, str], None]
    ) -> RunOutcome:
        """Copy mode: bring what the run made back into the workspace. A
        failure here is told in the block's output, not lost with its result."""
        try:
            note = await sync.pull()
        except SandboxFailed as exc:
            log.warning("copying back from %s failed: %s", self.workspace, exc)
            note = f"\ncellbox: the files this run made could not be copied back: {exc}\n"
        if not note:
            return outcome
        on_output("stderr", note)
        return attrs.evolve(outcome, output=outcome.output + note)

    async def _status(self, attached: Attached, outcome: RunOutcome) -> str:
        """Why a run ended, as the user should hear it."""
        if outcome.timed_out:
            return Status.TIMEOUT
        if outcome.cancelled:
            return Status.CANCELLED
        if outcome.exit_code == 0:
            return Status.OK
        if outcome.exit_code == OUTPUT_LIMIT_EXIT_CODE:
            return Status.OUTPUT_LIMIT  # the file size limit ended it
        if outcome.oom_kills is not None:
            # The container's own cgroup counted the memory limit's kills
            # during the run (the runner reads it): no race with the engine.
            return Status.OOM if outcome.oom_kills > 0 else Status.ERROR
        if outcome.exit_code == KILLED_EXIT_CODE and not outcome.interrupted:
            # Killed, not by us: the memory limit is the usual killer. The
            # engine's event can trail the exit under load: wait a little for it.
            deadline = time.monotonic() + OOM_EVENT_WAIT_SECONDS
            while True:
                if await self._backend.oom_killed_since(attached.container.id, outcome.started_at - 1):
                    return Status.OOM
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        return Status.ERROR

    async def _recover(self, attached: Attached, wedged: bool) -> None:
        """Drop a broken attachment; kill a wedged runner so that the
        container's main process starts a fresh one."""
        async with self._lifecycle_lock:
            if wedged and attached.runner is not None:
                await self._kill_runner(attached.container, attached.runner.pid)
            attached.close()
            if self._attached is attached:
                self._attached = None

    async def _kill_runner(self, container: ContainerInfo, pid: int | None) -> None:
        """Kill a wedged runner; the container's main process starts a new one."""
        if pid is not None:
            await self._backend.exec_quick(container.id, ["kill", "-9", str(pid)])

    async def _run(
        self,
        attached: Attached,
        command: list[str],
        timeout: float,
        limit: int,
        cancelled: asyncio.Event,
        on_output: Callable[[str, str], None],
    ) -> RunOutcome:
        """Run one command until it ends, the timeout, or `cancelled`; keep at most `limit` bytes of output."""
        run_id = uuid.uuid4().hex
        collector = OutputCollector(limit, on_output)
        path = attached.path
        started_at = time.time()
        execution = asyncio.ensure_future(path.run(run_id, command, collector, limit))
        cancel_wait = asyncio.ensure_future(cancelled.wait())
        try:
            done, _ = await asyncio.wait({execution, cancel_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if execution in done:
                end: RunEnd = execution.result()
                return RunOutcome(end.code, collector.text(), collector.truncated, started_at, oom_kills=end.oom_kills)
            await self._kill(attached, path, run_id, execution)
            if cancel_wait in done:
                output = collector.text() + "\n" + CANCELLED_MESSAGE
                return RunOutcome(CANCELLED_EXIT_CODE, output, collector.truncated, started_at, cancelled=True)
            output = collector.text() + "\n" + TIMEOUT_MESSAGE
            return RunOutcome(TIMEOUT_EXIT_CODE, output, collector.truncated, started_at, timed_out=True)
        except RunnerLost as lost:
            if not lost.started:
                raise
            # The runner went away mid-run: make sure nothing of the run is left.
            await attached.exec_path.kill(run_id)
            return RunOutcome(KILLED_EXIT_CODE, collector.text(), collector.truncated, started_at, interrupted=True)
        except asyncio.CancelledError:
            # The request's task was cancelled (the daemon is shutting down):
            # the block must not keep running in the container.
            await asyncio.shield(self._kill(attached, path, run_id, execution))
            raise
        finally:
            cancel_wait.cancel()

    async def _kill(
        self, attached: Attached, path: RunnerClient | ExecPath, run_id: str, execution: asyncio.Future[int]
    ) -> None:
        """Kill every process of a run and wait for its output to end."""
        await path.kill(run_id)
        try:
            await asyncio.wait_for(execution, KILL_WAIT_SECONDS)
            return
        except TimeoutError:
            log.warning("run %s still going %.0f s after it was killed", run_id, KILL_WAIT_SECONDS)
        except Exception as exc:  # the runner died meanwhile
            log.info("run %s ended badly after it was killed: %s", run_id, exc)
        if path is not attached.exec_path:
            await attached.exec_path.kill(run_id)  # by marker, without the runner


class WorkspaceNotShown(Exception):
    """The bind mount at /workspace does not show this workspace (a remote engine)."""


class ViewNotShown(Exception):
    """The engine sees the daemon's folders but not the nosuid view made for it."""


def _identity(folder: Path) -> str:
    """device:inode, as `stat -c %d:%i` prints them inside the container."""
    info = folder.stat()
    return f"{info.st_dev}:{info.st_ino}"


def _one_file_tar(name: str, data: bytes) -> bytes:
    """A tar holding one file readable by everyone (copy mode's block files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, time.time()
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
