"""Keeping a workspace attached to its one running container: adopting,
creating, replacing or restarting it, bind mode or copy mode, and the
connection to its warm runner.

The daemon stays attached to the container's main process, the warm runner
(container/runner.py). While that attachment is alive the container is known
to be running, so a warm execute makes no engine call at all. Images without
Python fall back to one `docker exec` per block (exec_path.py).

When the engine cannot show the workspace through a bind mount (it runs on
another machine), the sandbox is made in copy mode instead: files travel
through the engine's archive API (workspace_sync/) before and after each
run, and blocks run with one `docker exec` each, as the runner's socket is out
of reach. `workspace_mount = "auto"` tries the bind mount first and falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import attrs

from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import BindSourceMissing, ContainerGone, ContainerInfo, ContainerSpec, Engine, ImageMissing
from cellbox.errors import ImageUnavailable, SandboxFailed
from cellbox.sandbox import spec as specs
from cellbox.sandbox import state
from cellbox.sandbox.exec_path import ExecPath
from cellbox.sandbox.request import ProgressFactory
from cellbox.sandbox.runner_client import RunnerClient, RunnerListener
from cellbox.sandbox.runner_start import (
    ViewNotShown,
    WorkspaceNotShown,
    connect_runner,
    runner_up,
    write_mount_probe,
)
from cellbox.sandbox.workspace_sync import WorkspaceSync
from cellbox.settings.schema import SandboxConfig
from cellbox.vocabulary import LABEL_SPEC, LABEL_WORKSPACE, ContainerState
from cellbox.wire import SandboxInfo

log = logging.getLogger(__name__)


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
    def block_runner(self) -> RunnerClient | ExecPath:
        """What runs and kills its blocks: the warm runner, else docker exec."""
        return self.runner if self.runner is not None else self.exec_path

    @property
    def usable(self) -> bool:
        # Without a runner nothing tells us the container went away: the next
        # exec finds out (ContainerGone) and the block is retried.
        return self.runner is None or self.runner.alive

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


class Attacher:
    """One workspace's container as this daemon sees it. Lifecycle changes
    take a lock of their own, short, so a restart need not wait for a run."""

    def __init__(self, workspace: Path, engine: Engine) -> None:
        self.workspace = workspace
        self._engine = engine
        self._lock = asyncio.Lock()
        self._attached: Attached | None = None
        self._listener: RunnerListener | None = None
        self._view_unseen = False
        """The engine did not see the nosuid view (it runs in a mount namespace of
        its own): the workspace itself is mounted instead."""
        self._no_python: set[str] = set()
        """Containers found to have no python3: their blocks run with docker exec."""
        self._detected_mount: str | None = None
        """What `workspace_mount = "auto"` found this engine needs: "copy" once a bind mount failed."""
        self._sync: WorkspaceSync | None = None
        """Copy mode's record of what the container has; kept across restarts of the same container."""
        self.started_here = False
        """Whether this daemon created or started the container (and so stops it on shutdown)."""
        self.image_trusted = True
        """Whether the image was named by a trusted source: only then is it pulled."""
        self.state: state.WorkspaceState | None = None
        """The daemon's folder for this workspace; set before any other call."""
        self.interruptions = 0
        """How many times this daemon restarted or stopped the running
        container: a run that sees the count change meanwhile was ended by it."""
        self.last_interruption = ""
        """What the last of them did: "restarted" or "stopped"."""

    @property
    def label(self) -> tuple[str, str]:
        """The label a container must carry for this daemon to touch it."""
        return LABEL_WORKSPACE, str(self.workspace)

    def mount_for(self, config: SandboxConfig) -> str:
        """"bind" or "copy": the configured mode, or what `auto` found (bind until it fails)."""
        if config.workspace_mount != "auto":
            return config.workspace_mount
        return self._detected_mount or "bind"

    def spec(self, config: SandboxConfig, mount: str | None = None) -> ContainerSpec:
        assert self.state is not None, "set the state first"
        copy = (mount or self.mount_for(config)) == "copy"
        return specs.build_spec(self.workspace, config, self.state, copy, "" if copy else self._bind_source(config))

    def _bind_source(self, config: SandboxConfig) -> str:
        """What the engine mounts at /workspace: the nosuid view of the
        workspace where this daemon can make one (state.nosuid_view)."""
        assert self.state is not None
        if config.bind_dir:
            return config.bind_dir
        if self._view_unseen or not state.nosuid_supported(self.state):
            return str(self.workspace)
        return str(self.state.view)

    # ------------------------------------------------------------ attach

    async def ensure(self, config: SandboxConfig, progress: ProgressFactory) -> Attached:
        """The attached, running container for this workspace: reused, started, or created."""
        spec = self.spec(config)
        if (attached := self._current(spec)) is not None:
            return attached  # the warm path: no engine call
        async with self._lock:
            spec = self.spec(config)  # auto may have decided meanwhile
            if (attached := self._current(spec)) is not None:
                return attached  # a concurrent request did the work
            self._detach()
            try:
                self._attached = await self._attach(config, spec, progress)
            except ContainerGone as gone:
                # It went while we attached: an auto-remove container that a
                # restart had stopped, taken by the engine's removal just
                # after, or one the engine calls running while its runtime
                # says it has stopped (each seen once in a full CI run).
                # Remove what is left of it and make it anew, once.
                log.warning("%s: the sandbox went while attaching (%s); making it anew", self.workspace, gone)
                self._detach()
                await self._engine.remove_container(spec.name, self.label)
                self._attached = await self._attach(config, self.spec(config), progress)
            return self._attached

    @property
    def current(self) -> Attached | None:
        """The attachment as it is now, if any (alive or not)."""
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
        with self.view(spec):
            try:
                info = await self._create(spec, progress)
            except BindSourceMissing as exc:
                if not auto:
                    raise
                return await self._fall_back_to_copy(config, progress, str(exc))
            self._check_ours(info)
            if not specs.made_from(info, spec):
                copy_spec = self.spec(config, "copy") if auto and spec.workspace_mount == "bind" else None
                if copy_spec is not None and specs.made_from(info, copy_spec):
                    # An earlier daemon found that this engine cannot show the
                    # workspace, and made the sandbox in copy mode: adopt it.
                    self._detected_mount, spec = "copy", copy_spec
                else:
                    info = await self._replace(spec, progress)
            if spec.workspace_mount == "copy":
                return await self._attach_copy(config, spec, info)
            listener = await self._listen(info)
            if listener is None:
                # Another cellbox daemon serves this workspace and holds its
                # runner: share the container through docker exec.
                log.info("%s: another daemon holds the runner; blocks run with docker exec", info.name)
                if info.state != "running":  # e.g. just replaced here: the other daemon will not start it
                    await self._start_shared(info)
                shared = ExecPath(self._engine, info.id, sweep_strays=False)
                return Attached(info, None, spec.labels[LABEL_SPEC], shared)
            listener.expect(specs.owner_for(self.workspace, config))
            try:
                runner = await self._start_and_connect(info, spec, listener)
            except ViewNotShown:
                not_shown = None
            except WorkspaceNotShown as exc:
                not_shown = exc
            else:
                return Attached(info, runner, spec.labels[LABEL_SPEC], ExecPath(self._engine, info.id))
        if not_shown is None:
            # The engine mounted our nosuid view empty: it does not see mounts
            # made after it started (its own mount namespace). Mount the
            # workspace itself; the runner's seccomp filter still keeps setuid
            # files out.
            log.warning("%s: the engine does not see the nosuid view of the workspace; mounting it directly", spec.name)
            self._view_unseen = True
            await self._engine.remove_container(spec.name, self.label)
            return await self._attach(config, self.spec(config), progress)
        if not auto:
            raise SandboxFailed(
                f"The engine mounted {spec.bind_source} at /workspace but the sandbox does not see this "
                f"workspace's files there ({not_shown}): the engine runs on another machine. "
                'Set workspace_mount = "copy" (or "auto") in cellbox.toml.'
            )
        await self._engine.remove_container(spec.name, self.label)
        return await self._fall_back_to_copy(config, progress, str(not_shown))

    async def _start_and_connect(
        self, info: ContainerInfo, spec: ContainerSpec, listener: RunnerListener
    ) -> RunnerClient | None:
        """Start the container if it is not running, and wait for its runner."""
        assert self.state is not None
        # Watch the main process's announcements from before it starts, so
        # that none is missed.
        watch = await self._engine.attach(info.id)
        try:
            probe = None
            started = info.state != "running"
            if started:
                probe = write_mount_probe(self.state)
                await self._engine.start_container(info.name)
                self.started_here = True
            if info.id in self._no_python:
                return None
            # Only our own view is checked by device:inode: a bind_dir names the
            # workspace as the engine's machine knows it, which may differ.
            view = self.workspace if spec.bind_source == str(self.state.view) else None
            runner = await connect_runner(self._engine, listener, info, watch, probe, started, view)
            if runner is None:
                log.info("%s has no python3: blocks run with docker exec", info.name)
                self._no_python.add(info.id)
            return runner
        finally:
            watch.close()

    async def _start_shared(self, info: ContainerInfo) -> None:
        """Start a container whose runner another daemon will hold, and wait
        for that runner to be up: its start-up kills every other process in
        the container, and a block exec'd before then died with it ("OCI
        runtime exec failed: ... write init-p: broken pipe", exit 126)."""
        watch = await self._engine.attach(info.id)
        try:
            await self._engine.start_container(info.name)
            self.started_here = True
            await runner_up(watch)
        finally:
            watch.close()

    def _check_ours(self, info: ContainerInfo) -> None:
        if not specs.is_ours(info, self.workspace):
            raise SandboxFailed(
                f"A container named {info.name!r} already exists and is not the sandbox of {self.workspace}; "
                "cellbox leaves it alone. Remove it yourself, or choose another container_name."
            )

    @contextlib.contextmanager
    def view(self, spec: ContainerSpec) -> Iterator[None]:
        """The workspace's nosuid view, mounted while the engine needs it (create, start, restart)."""
        assert self.state is not None
        if spec.workspace_mount == "bind" and spec.bind_source == str(self.state.view):
            with state.nosuid_view(self.workspace, self.state.view) as mounted:
                if not mounted:
                    raise SandboxFailed(f"Could not mount {self.workspace} nosuid for the sandbox; see the daemon's log")
                yield
        else:
            yield

    async def _listen(self, info: ContainerInfo) -> RunnerListener | None:
        """This sandbox's runner socket, listening; None when another daemon listens there."""
        if self._listener is None:
            assert self.state is not None
            self._listener = RunnerListener(self.state.run, info.name)
        if await self._listener.open():
            return self._listener
        return None

    async def _replace(self, spec: ContainerSpec, progress: ProgressFactory) -> ContainerInfo:
        # Image, mount, network or runner changed, or a folder it binds was made
        # anew (spec.build_spec): the old container is stale.
        log.info("replacing %s: its settings changed, or a folder it binds was made anew", spec.name)
        await self._engine.remove_container(spec.name, self.label)
        return await self._create(spec, progress)

    async def _fall_back_to_copy(self, config: SandboxConfig, progress: ProgressFactory, why: str) -> Attached:
        log.info("%s: a bind mount does not show the workspace (%s); copying files instead", self.workspace, why)
        self._detected_mount = "copy"
        spec = self.spec(config, "copy")
        info = await self._create(spec, progress)
        self._check_ours(info)
        if not specs.made_from(info, spec):
            info = await self._replace(spec, progress)
        return await self._attach_copy(config, spec, info)

    async def _attach_copy(self, config: SandboxConfig, spec: ContainerSpec, info: ContainerInfo) -> Attached:
        if info.state != "running":
            await self._engine.start_container(info.name)
            self.started_here = True
        # A new container (or one this daemon has not seen) starts from an
        # empty record, so the first run sends the whole workspace.
        if self._sync is None or self._sync.container_id != info.id:
            owner = specs.owner_for(self.workspace, config)
            self._sync = WorkspaceSync(self._engine, info.id, self.workspace, owner, config.copy_size_limit)
        self._sync.size_limit = config.copy_size_limit
        exec_path = ExecPath(self._engine, info.id, stamp=container_scripts.COPY_STAMP)
        return Attached(info, None, spec.labels[LABEL_SPEC], exec_path, self._sync)

    async def _create(self, spec: ContainerSpec, progress: ProgressFactory) -> ContainerInfo:
        try:
            return await self._engine.create_container(spec)
        except ImageMissing:
            await self.pull(spec.image, progress)
            return await self._engine.create_container(spec)

    async def pull(self, image: str, progress: ProgressFactory) -> None:
        """Pull an image the engine lacks, if a trusted source named it."""
        if not self.image_trusted:
            raise ImageUnavailable(
                f"Image {image!r} is not on the Docker engine, and cellbox does not pull an image "
                f"named by a workspace file you have not approved: a pull is network traffic, and the "
                f"name alone can carry data out. Pull or build it yourself, or run `cellbox trust "
                f"{self.workspace}` to approve the file."
            )
        async with progress(f"Pulling image {image}"):
            await self._engine.pull_image(image)

    # --------------------------------------------------------- lifecycle

    async def restart(self, config: SandboxConfig, progress: ProgressFactory) -> None:
        """Restart the container (files in the workspace stay); create it if there is none."""
        name = specs.container_name(self.workspace, config)
        async with self._lock:
            self._detach()
            info = await self._engine.find_container(name)
            restarted = False
            if info is not None:
                self._check_ours(info)
            if info is not None and info.state == "running" and config.auto_remove and self.mount_for(config) == "copy":
                # An auto-remove container that `docker restart` stops can be
                # taken by the engine's removal just after the restart returned
                # (1 run in 7 here): in copy mode nothing then notices until a
                # block's exec fails. So stop it (gone for good), and the
                # ensure below makes a new one; the workspace is copied in again.
                self._interrupt("restarted")
                await self._engine.stop_container(name, removed=True, label=self.label)
                info = None
            if info is not None and info.state == "running":
                self._interrupt("restarted")
                spec = self.spec(config)
                listener = await self._listen(info) if spec.workspace_mount == "bind" else None
                if listener is not None:
                    listener.expect(specs.owner_for(self.workspace, config))  # the new runner finds its token at once
                try:
                    with self.view(spec):
                        await self._engine.restart_container(name, self.label)
                    self.started_here = restarted = True
                except ContainerGone:
                    pass
        if not restarted:
            await self.ensure(config, progress)

    async def stop(self, config: SandboxConfig) -> None:
        async with self._lock:
            self._detach()
            name = specs.container_name(self.workspace, config)
            self._interrupt("stopped")
            await self._engine.stop_container(name, removed=config.auto_remove, label=self.label)

    async def info(self, config: SandboxConfig) -> SandboxInfo:
        """The container's state as the engine has it (or absent, or foreign)."""
        name = specs.container_name(self.workspace, config)
        found = await self._engine.find_container(name)
        if found is None:
            state_name: str = ContainerState.ABSENT
        elif not specs.is_ours(found, self.workspace):
            state_name = ContainerState.FOREIGN  # a container of that name that is not this workspace's
        else:
            state_name = found.state
        return SandboxInfo(str(self.workspace), name, state_name, found.image if found else config.image)

    async def recover(self, attached: Attached, wedged: bool) -> None:
        """Drop a broken attachment; kill a wedged runner so that the
        container's main process starts a fresh one."""
        async with self._lock:
            if wedged and attached.runner is not None and attached.runner.pid is not None:
                await self._engine.exec_quick(attached.container.id, ["kill", "-9", str(attached.runner.pid)])
            attached.close()
            if self._attached is attached:
                self._attached = None

    def _interrupt(self, what: str) -> None:
        """Said before the engine is asked, so a run it ends always finds it said."""
        self.interruptions += 1
        self.last_interruption = what

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
