"""The Docker engine (the Engine of protocol.py), behind one class.

The SDK is blocking, so every call runs in a thread and the methods here are
async. Long-lived exec streams get their own thread pool, so that a block
running for a minute never holds up a status or restart in another workspace.
Every engine failure comes out as a CellboxError that says what to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from cellbox.engine import builds
from cellbox.engine.answers import (
    engine_unavailable,
    get_labelled,
    is_podman,
    never_started,
    reason_of,
    wait_until_gone,
)
from cellbox.engine.container_options import create_arguments, info_of, says_path_missing, start_hint
from cellbox.engine.location import engine_address, locate_engine, ssh_needs_client_binary
from cellbox.engine.protocol import (
    ArchiveTooLarge,
    BindSourceMissing,
    BuildStep,
    ContainerGone,
    ContainerInfo,
    ContainerSpec,
    ImageInfo,
    ImageMissing,
    OutputCallback,
)
from cellbox.engine.streams import StreamConnection
from cellbox.errors import CellboxError, ImageUnavailable, SandboxFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

# Docker's init (tini) is PID 1 of every sandbox: it reaps zombies and
# forwards SIGTERM to the main process, which exits at once, so stop and
# restart do not wait out a grace period the way the seed's `/bin/sh` did.
# The grace is still long: when it runs out before the engine has taken the
# exit in (a loaded machine), Docker 20.10's kill path returns early (moby
# #43403) and a restart then races the old exit's handling: the new container
# was taken by auto-removal, or called running while its runtime said
# "stopped" (each seen once in a full CI run with a grace of 1 s).
STOP_GRACE_SECONDS = 10
QUICK_CALL_THREADS = 32


class DockerBackend:
    def __init__(self, api_timeout: int = 30) -> None:
        self._api_timeout = api_timeout
        self._client: docker.DockerClient | None = None
        self._podman = False
        """Whether the engine is Podman's Docker-compatible API, which differs in small ways (see _ulimits)."""
        # Quick calls wait on the engine, not on this process: 20 workspaces
        # coming up at once make ~60 of them (create, attach, start), and 8
        # threads made them queue behind each other.
        self._calls = ThreadPoolExecutor(max_workers=QUICK_CALL_THREADS, thread_name_prefix="engine")
        self._streams = ThreadPoolExecutor(max_workers=64, thread_name_prefix="exec")
        self._attached_streams: weakref.WeakSet[StreamConnection] = weakref.WeakSet()
        """Main processes' output streams still open, closed with the engine."""

    # ----------------------------------------------------------- plumbing

    def _connect(self) -> docker.DockerClient:
        # Connected lazily and again after a failure, so that an engine that
        # comes back is picked up without restarting the daemon.
        if self._client is None:
            location = locate_engine()
            use_ssh_client = ssh_needs_client_binary(location.url)
            try:
                if location.url is None:
                    self._client = docker.from_env(timeout=self._api_timeout, use_ssh_client=use_ssh_client)
                else:
                    self._client = docker.DockerClient(
                        base_url=location.url, tls=location.tls, timeout=self._api_timeout,
                        use_ssh_client=use_ssh_client,
                    )
                self._podman = is_podman(self._client)
            except docker.errors.DockerException as exc:
                self._client = None
                raise engine_unavailable(exc) from None
            except requests.exceptions.RequestException as exc:
                self._client = None
                raise engine_unavailable(exc) from None
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, pool: ThreadPoolExecutor | None = None) -> T:
        def guarded() -> T:
            try:
                return fn(*args)
            except CellboxError:
                raise
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                self._client = None
                raise engine_unavailable(exc) from None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"The Docker engine refused: {reason_of(exc)}") from None
            except docker.errors.DockerException as exc:
                if "Error while fetching server API version" in str(exc):
                    self._client = None
                    raise engine_unavailable(exc) from None
                raise

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool or self._calls, guarded)

    def close(self) -> None:
        # A thread blocked reading a main process's output would hold the
        # interpreter's exit (it joins the pools' threads): a removed
        # container's stream is not always ended by a slow engine (seen: a
        # `cellbox serve` that never exited after `exit`). Closing unblocks it.
        for stream in list(self._attached_streams):
            stream.close()
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._streams.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------- images

    async def pull_image(self, image: str) -> None:
        """Pull `image`; ImageUnavailable, saying how to build one, when no registry has it."""
        await self._call(self._pull, image)

    def _pull(self, image: str) -> None:
        try:
            self._connect().images.pull(image)
        except docker.errors.APIError as exc:
            raise ImageUnavailable(
                f"Image {image!r} is not on the Docker engine and could not be pulled "
                f"({reason_of(exc)}). Build the local sandbox image with `scripts/build-image` "
                f"(it makes cellbox-sandbox:bookworm from Debian packages) and set "
                f'image = "cellbox-sandbox:bookworm" in cellbox.toml, or make {image!r} '
                f"available with `docker pull` or `docker load`."
            ) from None

    async def image_id(self, name: str) -> str | None:
        return await self._call(lambda: builds.image_id(self._connect(), name))

    async def build_image(
        self, context: bytes, tag: str, network: str, on_step: Callable[[BuildStep], None],
        on_line: Callable[[str], None],
    ) -> str:
        # A build holds a stream for minutes: not in the pool of quick calls.
        return await self._call(
            lambda: builds.build(self._connect(), context, tag, network, on_step, on_line), pool=self._streams
        )

    async def images(self, label: str) -> list[ImageInfo]:
        return await self._call(lambda: builds.images(self._connect(), label))

    async def images_in_use(self) -> set[str]:
        return await self._call(lambda: builds.images_in_use(self._connect()))

    async def remove_image(self, image_id: str) -> bool:
        return await self._call(lambda: builds.remove_image(self._connect(), image_id))

    # --------------------------------------------------------- containers

    async def find_container(self, name: str) -> ContainerInfo | None:
        return await self._call(self._find, name)

    def _find(self, name: str) -> ContainerInfo | None:
        try:
            return info_of(self._connect().containers.get(name))
        except docker.errors.NotFound:
            return None

    async def create_container(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the sandbox (not started); if another daemon just created it, return that one.

        Raises ImageMissing when the image is not on the engine.
        """
        return await self._call(self._create, spec)

    def _create(self, spec: ContainerSpec, retried: bool = False) -> ContainerInfo:
        client = self._connect()
        try:
            container = client.containers.create(**create_arguments(spec, self._podman))
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"Image {spec.image!r} is not on the Docker engine: {reason_of(exc)}") from None
        except docker.errors.APIError as exc:
            # Name taken: a concurrent daemon won the race, or the container
            # exists already. Podman says so with a 500 and "already in use".
            if exc.status_code == 409 or "already in use" in reason_of(exc):
                try:
                    return info_of(client.containers.get(spec.name))
                except docker.errors.NotFound:
                    # Taken by one on its way out (an auto-remove after a stop):
                    # once the engine lets go of the name, create ours.
                    if not retried:
                        wait_until_gone(client, spec.name)
                        return self._create(spec, retried=True)
            if spec.workspace_mount == "bind" and says_path_missing(reason_of(exc), spec.bind_source):
                raise BindSourceMissing(
                    f"The Docker engine at {engine_address()} cannot see the workspace's path "
                    f"{spec.bind_source} ({reason_of(exc)}). If the engine runs on another machine, set "
                    'workspace_mount = "copy" (or "auto") in cellbox.toml; if it sees the folder under '
                    "another path, set bind_dir to that path."
                ) from None
            raise SandboxFailed(
                f"Could not create the sandbox container {spec.name!r} from {spec.image!r}: {reason_of(exc)}"
            ) from None
        return info_of(container)

    async def start_container(self, name: str) -> None:
        def start() -> None:
            try:
                # The low-level call: one request, where the model's get+start made two.
                self._connect().api.start(name)
            except docker.errors.APIError as exc:
                raise SandboxFailed(
                    f"The sandbox container {name!r} did not start: {reason_of(exc)}{start_hint(reason_of(exc))}"
                ) from None

        await self._call(start)

    async def attach(self, container_id: str) -> StreamConnection:
        """Attach to the output of the container's main process.

        Attaching before start loses nothing the process prints at start-up.
        Never stdin: the engine closes a container's stdin for good when an
        attached client hangs up (seen with Docker 20.10), whatever StdinOnce says.
        """

        def attach() -> StreamConnection:
            try:
                sock = self._connect().api.attach_socket(
                    container_id, params={"stdin": 0, "stdout": 1, "stderr": 1, "stream": 1}
                )
            except docker.errors.NotFound as exc:
                raise ContainerGone(reason_of(exc)) from None
            stream = StreamConnection(sock, self._streams)
            self._attached_streams.add(stream)
            return stream

        return await self._call(attach)

    async def restart_container(self, name: str, label: tuple[str, str]) -> None:
        """Restart; ContainerGone when the container is no more (the caller creates it anew)."""

        def restart() -> None:
            try:
                container = get_labelled(self._connect(), name, label)
                container.restart(timeout=STOP_GRACE_SECONDS)
            except docker.errors.NotFound as exc:
                raise ContainerGone(reason_of(exc)) from None
            except docker.errors.APIError as exc:
                # With auto-remove, the engine may start removing the container
                # as the restart stops it, and then refuses to start it again.
                # Podman always does: its restart is a stop, which removes an
                # auto-remove container, then a start that fails.
                reason = reason_of(exc)
                if "marked for removal" not in reason and "already been removed" not in reason:
                    raise
                wait_until_gone(self._connect(), name)
                raise ContainerGone(reason_of(exc)) from None

        await self._call(restart)

    async def stop_container(self, name: str, removed: bool, label: tuple[str, str]) -> None:
        """Stop the container if it exists. With `removed` (auto-remove), return
        only once the engine has removed it too, so that a status or execute
        right after sees "absent" rather than a container on its way out."""

        def stop() -> None:
            try:
                container = get_labelled(self._connect(), name, label)
                container.stop(timeout=STOP_GRACE_SECONDS)
                if removed:
                    container.wait(condition="removed", timeout=10)
            except docker.errors.NotFound:
                pass
            except requests.exceptions.ReadTimeout:
                raise SandboxFailed(f"{name!r} stopped but the engine did not remove it within 10 s") from None
            except docker.errors.APIError as exc:
                if exc.status_code != 404:
                    raise SandboxFailed(f"Could not stop {name!r}: {reason_of(exc)}") from None

        await self._call(stop)

    async def remove_container(self, name: str, label: tuple[str, str]) -> None:
        """Remove the container `name` if it exists; ForeignContainer when it
        does not carry `label` (key, value): it is someone else's."""

        def remove() -> None:
            try:
                # v: the anonymous /workspace volume of a copy-mode sandbox goes with it.
                get_labelled(self._connect(), name, label).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # 409: removal already in progress
                    raise

        await self._call(remove)

    # --------------------------------------------------------------- exec

    async def exec_stream(self, container_id: str, argv: list[str], on_output: OutputCallback) -> int:
        """Run `argv` in the container at /workspace, feeding output as it comes; return its exit code.

        The engine cannot kill an exec (moby #9098): callers stop one by killing
        its processes inside the container, which ends this stream.
        """
        return await self._call(self._exec_stream, container_id, argv, on_output, pool=self._streams)

    def _exec_stream(self, container_id: str, argv: list[str], on_output: OutputCallback) -> int:
        api = self._connect().api
        try:
            exec_id = api.exec_create(container_id, argv, workdir="/workspace")["Id"]
            for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
                if stdout:
                    on_output("stdout", stdout)
                if stderr:
                    on_output("stderr", stderr)
            exit_code = api.exec_inspect(exec_id)["ExitCode"]
            if never_started(api, container_id, exit_code):  # not its output: a block may print anything
                raise ContainerGone("the container stopped before the block could start")
        except docker.errors.NotFound as exc:
            raise ContainerGone(reason_of(exc)) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "container ... is not running"
                raise ContainerGone(reason_of(exc)) from None
            raise SandboxFailed(f"Could not run a block in the sandbox: {reason_of(exc)}") from None
        # None when the engine lost track of the process (container stopped under it).
        return -1 if exit_code is None else exit_code

    async def oom_killed_since(self, container_id: str, since: float) -> bool:
        """Whether the engine saw the memory limit kill a process in the container since `since` (unix time)."""

        def ask() -> bool:
            # `until` in the past makes the engine answer at once instead of streaming.
            # The API takes fractional seconds; the SDK's stubs say int.
            events = self._connect().events(  # type: ignore[call-overload]
                since=since, until=time.time(), decode=True,
                filters={"container": container_id, "event": "oom"},
            )
            try:
                return any(True for _ in events)
            finally:
                events.close()

        return await self._call(ask)

    async def exec_quick(self, container_id: str, argv: list[str]) -> int:
        """Run a short helper command and wait for it, output discarded."""

        def run() -> int:
            try:
                code = self._connect().containers.get(container_id).exec_run(argv).exit_code
            except (docker.errors.NotFound, docker.errors.APIError):
                return -1  # nothing to do in a container that is gone or stopped
            return -1 if code is None else code

        return await self._call(run)


    # ------------------------------------------------------------ archive

    async def put_archive(self, container_id: str, path: str, tar: bytes) -> None:
        """Unpack an uncompressed tar at `path` in the container (its owners and modes kept).

        Works on a created container too, and into a volume under a read-only
        root filesystem; `path` must exist.
        """

        def put() -> None:
            try:
                self._connect().api.put_archive(container_id, path, tar)
            except docker.errors.NotFound as exc:
                raise ContainerGone(reason_of(exc)) from None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"Could not copy files into the sandbox: {reason_of(exc)}") from None

        await self._call(put)

    async def get_archive(self, container_id: str, path: str, max_bytes: int) -> bytes | None:
        """A tar of `path` (a file, or a folder with all it holds); None when it
        does not exist; ArchiveTooLarge, read no further, when its content
        passes `max_bytes`."""

        def get() -> bytes | None:
            api = self._connect().api
            try:
                chunks, _stat = api.get_archive(container_id, path)
                received = bytearray()
                # Headers take 512 bytes a member (more with long names): allow for them.
                allowed = max_bytes + (1 << 20)
                for chunk in chunks:
                    received += chunk
                    if len(received) > allowed:
                        chunks.close()
                        raise ArchiveTooLarge(f"{path} holds more than {max_bytes} bytes")
                return bytes(received)
            except docker.errors.NotFound as exc:
                # The same 404 says "no such container" and "no such path".
                if "container" in reason_of(exc).lower() and "file" not in reason_of(exc).lower():
                    raise ContainerGone(reason_of(exc)) from None
                return None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"Could not copy files out of the sandbox: {reason_of(exc)}") from None

        return await self._call(get)

    async def exec_capture(self, container_id: str, argv: list[str], user: str | None = None) -> tuple[int, bytes]:
        """Run a helper command at /workspace and return (exit code, stdout); stderr is logged."""

        def run() -> tuple[int, bytes]:
            api = self._connect().api
            try:
                exec_id = api.exec_create(container_id, argv, workdir="/workspace", user=user or "")["Id"]
                stdout, stderr = api.exec_start(exec_id, demux=True)
                exit_code = api.exec_inspect(exec_id)["ExitCode"]
                # Our helpers never exit 126 themselves, so the runtime's words
                # count here; "no python3" would be the wrong lesson.
                if never_started(api, container_id, exit_code, (stdout or b"") + (stderr or b"")):
                    raise ContainerGone("the container stopped before the command could start")
            except docker.errors.NotFound as exc:
                raise ContainerGone(reason_of(exc)) from None
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise ContainerGone(reason_of(exc)) from None
                raise SandboxFailed(f"A helper command failed in the sandbox: {reason_of(exc)}") from None
            if stderr:
                log.info("%s: %s", argv[0], stderr.decode("utf-8", "replace").rstrip())
            return (-1 if exit_code is None else exit_code), stdout or b""

        return await self._call(run)
