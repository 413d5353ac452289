"""What the sandbox asks of a container engine: the Engine protocol, the value
types it takes and returns, and the errors it raises.

No docker import here: the sandbox, and its unit tests with a fake engine
(tests/unit/fake_engine.py), need only this. The Docker implementation is
docker.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import attrs

from cellbox.errors import ImageUnavailable, SandboxFailed

OutputCallback = Callable[[str, bytes], None]
"""Called from a worker thread with ("stdout" | "stderr", raw bytes) as output arrives."""


@attrs.frozen
class ContainerSpec:
    """Everything the engine needs to create one workspace's sandbox."""

    name: str
    image: str
    main: list[str]
    """The container's main process (argv), fed by the daemon through the container's stdin."""
    workspace_mount: str
    """"bind": the engine mounts `bind_source` at /workspace. "copy": /workspace is
    a volume of the container's own, filled through the archive API (sandbox/workspace_sync/)."""
    bind_source: str
    """Host path mounted read-write at /workspace (bind mode only)."""
    read_only_binds: tuple[tuple[str, str], ...]
    """(host path, container path) mounted read-only: the daemon's folders for
    blocks and the runner, and the workspace's VCS metadata (bind mode only)."""
    volumes: tuple[str, ...]
    """Container paths given an anonymous volume of their own besides /workspace (copy mode)."""
    network: str
    auto_remove: bool
    labels: Mapping[str, str]
    user: str
    """uid:gid the main process, and so every block, runs as."""
    env: Mapping[str, str]
    memory: int
    cpus: float
    pids_limit: int
    open_files: int
    max_file_size: int
    tmp_size: int
    read_only: bool
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    runtime: str | None
    writable_binds: tuple[tuple[str, str], ...] = ()
    """(host path, container path) mounted read-write besides /workspace: the
    daemon's folder for session kernels' sockets (bind mode only)."""


@attrs.frozen
class ContainerInfo:
    id: str
    name: str
    state: str
    """The engine's status: created, running, exited, ..."""
    image: str
    labels: Mapping[str, str]


@attrs.frozen
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size: int
    """Bytes, as `docker images` counts them (shared layers counted in each)."""
    labels: Mapping[str, str]
    created: str


@attrs.frozen
class BuildStep:
    """Where a build is: step `number` of `total`, doing `instruction`."""

    number: int
    total: int
    instruction: str


class BuildFailed(SandboxFailed):
    """An image build stopped: the message names the failing step and command, with its output's tail."""


class ForeignContainer(SandboxFailed):
    """A container of the sandbox's name that is not labelled as this workspace's: never touched."""


class ArchiveTooLarge(SandboxFailed):
    """A path in the container holds more than the caller would copy."""


class BindSourceMissing(SandboxFailed):
    """The engine cannot see the workspace's path: it runs elsewhere (copy mode works there)."""


class ContainerGone(SandboxFailed):
    """The container vanished or stopped; the caller may recreate it and retry."""


class ImageMissing(ImageUnavailable):
    """The image is not on the engine (it may still be pullable)."""


class OutputStream(Protocol):
    """The stdout of a container's main process, line by line."""

    async def next_line(self, timeout: float) -> bytes | None:
        """The next line; None at the stream's end or after `timeout` seconds."""
        ...

    def close(self) -> None: ...


class Engine(Protocol):
    """The container engine as the sandbox uses it. Every method raises a
    CellboxError that says what to do (EngineUnavailable, SandboxFailed and
    the subclasses above), never the engine library's own exceptions."""

    async def pull_image(self, image: str) -> None:
        """Pull `image`; ImageUnavailable, saying how to build one, when no registry has it."""
        ...

    async def image_id(self, name: str) -> str | None:
        """The id of the image `name` names on the engine; None when there is none."""
        ...

    async def build_image(
        self, context: bytes, tag: str, network: str, on_step: Callable[[BuildStep], None],
        on_line: Callable[[str], None],
    ) -> str:
        """Build the tar `context` (a Dockerfile at its root) as `tag`, reporting
        steps and log lines as they come (from a worker thread); the image's id.
        BuildFailed, with nothing of the build left behind, when a step fails."""
        ...

    async def images(self, label: str) -> list[ImageInfo]:
        """The images carrying `label`."""
        ...

    async def images_in_use(self) -> set[str]:
        """The ids of the images some container (running or not) is made from."""
        ...

    async def remove_image(self, image_id: str) -> bool:
        """Remove the image; False when it is in use or gone."""
        ...

    async def find_container(self, name: str) -> ContainerInfo | None: ...

    async def create_container(self, spec: ContainerSpec) -> ContainerInfo:
        """Create (not start); the existing container when the name is taken. ImageMissing without the image."""
        ...

    async def start_container(self, name: str) -> None: ...

    async def attach(self, container_id: str) -> OutputStream:
        """The main process's output, attached before start so nothing is lost. Never stdin."""
        ...

    async def restart_container(self, name: str, label: tuple[str, str]) -> None:
        """ContainerGone when it is no more; ForeignContainer when it lacks `label`."""
        ...

    async def stop_container(self, name: str, removed: bool, label: tuple[str, str]) -> None:
        """With `removed` (auto-remove), return once the engine has removed it too."""
        ...

    async def remove_container(self, name: str, label: tuple[str, str]) -> None: ...

    async def exec_stream(self, container_id: str, argv: list[str], on_output: OutputCallback) -> int:
        """Run `argv` at /workspace, feeding output as it comes; its exit code (-1: lost)."""
        ...

    async def oom_killed_since(self, container_id: str, since: float) -> bool: ...

    async def exec_quick(self, container_id: str, argv: list[str]) -> int:
        """A short helper command, output discarded; -1 when the container is gone."""
        ...

    async def put_archive(self, container_id: str, path: str, tar: bytes) -> None: ...

    async def get_archive(self, container_id: str, path: str, max_bytes: int) -> bytes | None:
        """A tar of `path`; None when absent; ArchiveTooLarge past `max_bytes`."""
        ...

    async def exec_capture(self, container_id: str, argv: list[str], user: str | None = None) -> tuple[int, bytes]:
        """A helper command at /workspace: (exit code, stdout)."""
        ...

    def close(self) -> None: ...
