"""A container engine in memory, behind the same Engine protocol as the Docker
one (cellbox.engine.protocol), as docker-py's own tests have fake_api: for
unit tests of the sandbox's decisions, never of the engine itself.

Its images have no Python, so blocks run through the exec path (one
`exec_stream` per block), whose argv the fake reads back: `program` decides
what each block "prints" and how it ends. Everything asked of it is in
`calls`, so a test can say what the sandbox did, not only what came out.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import tarfile
from collections.abc import Callable
from pathlib import Path

import attrs

from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import (
    BindSourceMissing,
    ContainerGone,
    ContainerInfo,
    ContainerSpec,
    ForeignContainer,
    ImageMissing,
    OutputCallback,
)
from cellbox.errors import ImageUnavailable


@attrs.define
class Behaviour:
    """How one block's process behaves in the fake."""

    output: list[tuple[str, bytes]] = attrs.Factory(list)
    exit_code: int = 0
    hangs: bool = False
    """Runs until killed (exit 137 then), as `while True: pass` would."""


def prints(text: str, exit_code: int = 0) -> Behaviour:
    return Behaviour([("stdout", text.encode())], exit_code)


@attrs.define
class FakeContainer:
    info: ContainerInfo
    spec: ContainerSpec | None
    files: set[str] = attrs.Factory(set)
    """Copy mode: the paths under /workspace that were put there."""


class FakeStream:
    """The main process's announcements, as the Docker stream gives them:
    said once it runs (attaching comes before the start)."""

    def __init__(self, announce: Callable[[], list[bytes]]) -> None:
        self._announce = announce
        self._lines: list[bytes] | None = None
        self.closed = False

    async def next_line(self, timeout: float) -> bytes | None:
        if self._lines is None:
            self._lines = self._announce()
        if self._lines:
            return self._lines.pop(0)
        await asyncio.sleep(timeout)
        return None

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    def __init__(self, images: tuple[str, ...] = ("fake-image",)) -> None:
        self.images = set(images)
        self.registry: set[str] = set()
        """Images a pull would find."""
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[tuple[str, str]] = []
        """(method, container name or image) in the order asked."""
        self.program: Callable[[list[str]], Behaviour] = lambda command: Behaviour()
        """What the block `command` (interpreter and file) does."""
        self.sees_bind_sources = True
        """False: an engine that refuses a bind source it cannot see (Podman, remote)."""
        self.shows_workspace = True
        """False: a remote Docker, whose bind mount shows an empty folder of its own."""
        self.oom_since: list[float] = []
        """Times the engine saw the memory limit kill a process."""
        self.vanishing_execs = 0
        """How many of the next execs find their container gone (removed under them)."""
        self.broken: set[str] = set()
        """Containers the engine calls running but cannot run anything in (Docker
        20.10 after a restart, its runtime saying "stopped"): attaching to them
        finds them gone, and only a removal ends that."""
        self.killed: list[str] = []
        """Run ids a kill was sent for."""
        self._ids = itertools.count(1)
        self._hanging: dict[str, asyncio.Event] = {}

    # ------------------------------------------------------------- helpers

    def add_foreign(self, name: str) -> None:
        """A container of that name that belongs to someone else."""
        info = ContainerInfo(f"foreign{next(self._ids)}", name, "running", "other", {})
        self.containers[name] = FakeContainer(info, None)

    def asked(self, method: str) -> list[str]:
        return [what for called, what in self.calls if called == method]

    def _by_id(self, container_id: str) -> FakeContainer:
        for container in self.containers.values():
            if container.info.id == container_id and container.info.state == "running":
                return container
        raise ContainerGone(f"No such container: {container_id}")

    def _set_state(self, name: str, state: str) -> None:
        container = self.containers[name]
        container.info = attrs.evolve(container.info, state=state)

    # ------------------------------------------------------- the protocol

    async def pull_image(self, image: str) -> None:
        self.calls.append(("pull_image", image))
        if image not in self.registry:
            raise ImageUnavailable(f"Image {image!r} is not on the engine and could not be pulled")
        self.images.add(image)

    async def find_container(self, name: str) -> ContainerInfo | None:
        self.calls.append(("find_container", name))
        container = self.containers.get(name)
        return container.info if container else None

    async def create_container(self, spec: ContainerSpec) -> ContainerInfo:
        self.calls.append(("create_container", spec.name))
        if spec.name in self.containers:
            return self.containers[spec.name].info  # the name is taken: Docker's 409, answered with it
        if spec.image not in self.images:
            raise ImageMissing(f"Image {spec.image!r} is not on the engine")
        if spec.workspace_mount == "bind" and not self.sees_bind_sources:
            raise BindSourceMissing(f"bind source path does not exist: {spec.bind_source}")
        info = ContainerInfo(f"id{next(self._ids)}", spec.name, "created", spec.image, dict(spec.labels))
        self.containers[spec.name] = FakeContainer(info, spec)
        return info

    async def start_container(self, name: str) -> None:
        self.calls.append(("start_container", name))
        self._set_state(name, "running")

    async def attach(self, container_id: str) -> FakeStream:
        container = next(c for c in self.containers.values() if c.info.id == container_id)
        self.calls.append(("attach", container.info.name))
        if container.info.name in self.broken:
            raise ContainerGone("cannot exec in a stopped state: unknown")
        spec = container.spec
        assert spec is not None

        def announce() -> list[bytes]:
            lines = []
            if spec.workspace_mount == "bind":
                run_dir = next(host for host, inside in spec.read_only_binds if inside == container_scripts.RUN_DIR)
                probe = Path(run_dir, container_scripts.MOUNT_PROBE)
                seen = probe.read_text() if self.shows_workspace and probe.exists() else "someone-elses-probe"
                lines.append(f"workspace {seen}".encode())
            return [*lines, b"unavailable"]  # no Python in the image: blocks run with exec

        return FakeStream(announce)

    async def restart_container(self, name: str, label: tuple[str, str]) -> None:
        self.calls.append(("restart_container", name))
        self._check_label(name, label)
        self._end_every_run()
        self._set_state(name, "running")

    async def stop_container(self, name: str, removed: bool, label: tuple[str, str]) -> None:
        self.calls.append(("stop_container", name))
        if name not in self.containers:
            return
        self._check_label(name, label)
        self._end_every_run()
        if removed:
            del self.containers[name]
        else:
            self._set_state(name, "exited")

    async def remove_container(self, name: str, label: tuple[str, str]) -> None:
        self.calls.append(("remove_container", name))
        self.broken.discard(name)
        if name in self.containers:
            self._check_label(name, label)
            del self.containers[name]

    def _check_label(self, name: str, label: tuple[str, str]) -> None:
        key, value = label
        if self.containers[name].info.labels.get(key) != value:
            raise ForeignContainer(f"A container named {name!r} exists and is not the sandbox of {value}")

    async def exec_stream(self, container_id: str, argv: list[str], on_output: OutputCallback) -> int:
        if self.vanishing_execs > 0:
            self.vanishing_execs -= 1
            self.containers = {n: c for n, c in self.containers.items() if c.info.id != container_id}
        container = self._by_id(container_id)
        self.calls.append(("exec_stream", container.info.name))
        # container_scripts.run_argv: sh -c WRAPPER NAME RUN_ID STAMP SWEEP COMMAND...
        run_id, command = argv[4], argv[7:]
        behaviour = self.program(command)
        for stream, data in behaviour.output:
            on_output(stream, data)
        if behaviour.hangs:
            killed = self._hanging.setdefault(run_id, asyncio.Event())
            await killed.wait()
            return 137
        return behaviour.exit_code

    def _end_every_run(self) -> None:
        """A container stopping takes every process in it along (one container at a time in these tests)."""
        for killed in self._hanging.values():
            killed.set()

    async def oom_killed_since(self, container_id: str, since: float) -> bool:
        return any(at >= since for at in self.oom_since)

    async def exec_quick(self, container_id: str, argv: list[str]) -> int:
        if argv[:3] == ["sh", "-c", container_scripts.KILL_RUN]:
            run_id = argv[4]
            self.killed.append(run_id)
            self._hanging.setdefault(run_id, asyncio.Event()).set()
        return 0

    async def put_archive(self, container_id: str, path: str, tar: bytes) -> None:
        container = self._by_id(container_id)
        self.calls.append(("put_archive", path))
        if path == "/workspace":
            with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
                container.files.update(m.name for m in archive.getmembers() if m.isfile())

    async def get_archive(self, container_id: str, path: str, max_bytes: int) -> bytes | None:
        return None

    async def exec_capture(self, container_id: str, argv: list[str], user: str | None = None) -> tuple[int, bytes]:
        container = self._by_id(container_id)
        if argv[:3] == ["sh", "-c", container_scripts.COPY_LIST]:
            # Nothing changed by the run; every file put there is still present.
            present = b"".join(b"\0./" + name.encode() for name in sorted(container.files))
            return 0, present + b"\0stamp"
        return 0, b""

    def close(self) -> None:
        pass
