"""The Docker engine, behind one class: the only module that imports the docker SDK.

The SDK is blocking, so every call runs in a thread and the methods here are
async. Long-lived exec streams get their own thread pool, so that a block
running for a minute never holds up a status or restart in another workspace.
Every engine failure comes out as a CellboxError that says what to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
import docker
import docker.errors
import docker.tls
import docker.types
from docker.utils.socket import frames_iter
import requests.exceptions

from cellbox.errors import CellboxError, EngineUnavailable, ImageUnavailable, SandboxFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

# Docker's init (tini) is PID 1 of every sandbox: it reaps zombies and
# forwards SIGTERM to the main process, which exits at once, so stop and
# restart do not wait out a grace period the way the seed's `/bin/sh` did.
STOP_GRACE_SECONDS = 1

PODMAN_NPROC = 32768
"""RLIMIT_NPROC cellbox asks Podman for (see _ulimits); the smallest common pid_max."""

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
    a volume of the container's own, filled through the archive API (workspace_sync.py)."""
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


@attrs.frozen
class ContainerInfo:
    id: str
    name: str
    state: str
    """The engine's status: created, running, exited, ..."""
    image: str
    labels: Mapping[str, str]


@attrs.frozen
class EngineLocation:
    """Which engine the standard Docker client configuration points at, and why."""

    url: str | None
    """None: the SDK's own default (the local socket, or DOCKER_HOST with its TLS variables)."""
    source: str
    """Where the address came from, for error messages."""
    tls: Any = None
    context: str | None = None

    def describe(self) -> str:
        return f"{self.url} ({self.source})" if self.url else self.source


def locate_engine() -> EngineLocation:
    """The engine as the docker CLI would pick it: DOCKER_HOST, else the context
    named by DOCKER_CONTEXT, else the current context of the Docker config file
    (~/.docker/config.json, or $DOCKER_CONFIG), else the local socket.

    docker.from_env() reads DOCKER_HOST only, so the contexts are resolved here.
    """
    if host := os.environ.get("DOCKER_HOST"):
        return EngineLocation(None, f"{host} (from DOCKER_HOST)")
    if name := os.environ.get("DOCKER_CONTEXT"):
        source = f"Docker context {name!r}, from DOCKER_CONTEXT"
    else:
        from docker.context.config import get_current_context_name

        name = get_current_context_name()
        source = f"current Docker context {name!r}, from {_docker_config_file()}"
    if name == "default":
        return EngineLocation(None, "unix:///var/run/docker.sock (the default; DOCKER_HOST is not set)")
    try:
        host, tls = _read_context(name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineUnavailable(
            f"The {source} cannot be read ({exc}); see `docker context ls`, or set DOCKER_HOST."
        ) from None
    return EngineLocation(host, source, tls=tls, context=name)


def _read_context(name: str) -> tuple[str, Any]:
    """The Docker endpoint and TLS settings of a context, read where the docker
    CLI keeps them: $DOCKER_CONFIG (else ~/.docker)/contexts/meta/<sha256 of
    the name>/meta.json, and its certificates under contexts/tls/.

    Not docker.context.ContextAPI: it looks for the contexts next to the
    config.json it finds, so with DOCKER_CONFIG set but no config.json there
    (a fresh `docker --config DIR context create`), it reads another folder's.
    """
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir / "contexts" / "meta" / context_id / "meta.json"
    if not meta_file.exists():
        raise ValueError(f"no context named {name!r} in {config_dir / 'contexts'}")
    endpoint = json.loads(meta_file.read_text())["Endpoints"]["docker"]
    host = endpoint.get("Host")
    if not host:
        raise ValueError(f"the context {name!r} names no Docker endpoint")
    tls_dir = config_dir / "contexts" / "tls" / context_id / "docker"
    if not tls_dir.is_dir():
        return host, False
    files = {f: str(tls_dir / f"{f}.pem") for f in ("ca", "cert", "key") if (tls_dir / f"{f}.pem").exists()}
    return host, docker.tls.TLSConfig(
        client_cert=(files["cert"], files["key"]) if "cert" in files and "key" in files else None,
        ca_cert=files.get("ca"),
        verify=not endpoint.get("SkipTLSVerify", False) and "ca" in files,
    )


def engine_address() -> str:
    """Where cellbox looks for the engine, for error messages."""
    try:
        return locate_engine().describe()
    except EngineUnavailable as exc:
        return str(exc)


def _docker_config_file() -> str:
    from docker.utils.config import find_config_file

    return find_config_file() or "~/.docker/config.json (absent)"


def _ssh_needs_client_binary(url: str | None) -> bool:
    # The SDK speaks ssh:// through paramiko, which cellbox does not depend
    # on; without it, shell out to the `ssh` binary (it honours ~/.ssh/config).
    if not (url or os.environ.get("DOCKER_HOST", "")).startswith("ssh://"):
        return False
    try:
        import paramiko  # noqa: F401
    except ImportError:
        return True
    return False


class DockerBackend:
    def __init__(self, api_timeout: float = 30.0) -> None:
        self._api_timeout = api_timeout
        self._client: docker.DockerClient | None = None
        self._podman = False
        """Whether the engine is Podman's Docker-compatible API, which differs in small ways (see _ulimits)."""
        self._calls = ThreadPoolExecutor(max_workers=8, thread_name_prefix="engine")
        self._streams = ThreadPoolExecutor(max_workers=64, thread_name_prefix="exec")

    # ----------------------------------------------------------- plumbing

    def _connect(self) -> docker.DockerClient:
        # Connected lazily and again after a failure, so that an engine that
        # comes back is picked up without restarting the daemon.
        if self._client is None:
            location = locate_engine()
            use_ssh_client = _ssh_needs_client_binary(location.url)
            try:
                if location.url is None:
                    self._client = docker.from_env(timeout=self._api_timeout, use_ssh_client=use_ssh_client)
                else:
                    self._client = docker.DockerClient(
                        base_url=location.url, tls=location.tls, timeout=self._api_timeout,
                        use_ssh_client=use_ssh_client,
                    )
                self._podman = _is_podman(self._client)
            except docker.errors.DockerException as exc:
                self._client = None
                raise _engine_unavailable(exc) from None
            except requests.exceptions.RequestException as exc:
                self._client = None
                raise _engine_unavailable(exc) from None
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, pool: ThreadPoolExecutor | None = None) -> T:
        def guarded() -> T:
            try:
                return fn(*args)
            except CellboxError:
                raise
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                self._client = None
                raise _engine_unavailable(exc) from None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"The Docker engine refused: {_reason(exc)}") from None
            except docker.errors.DockerException as exc:
                if "Error while fetching server API version" in str(exc):
                    self._client = None
                    raise _engine_unavailable(exc) from None
                raise

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool or self._calls, guarded)

    def close(self) -> None:
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
                f"({_reason(exc)}). Build the local sandbox image with `scripts/build-image` "
                f"(it makes cellbox-sandbox:bookworm from Debian packages) and set "
                f'image = "cellbox-sandbox:bookworm" in cellbox.toml, or make {image!r} '
                f"available with `docker pull` or `docker load`."
            ) from None

    # --------------------------------------------------------- containers

    async def find_container(self, name: str) -> ContainerInfo | None:
        return await self._call(self._find, name)

    def _find(self, name: str) -> ContainerInfo | None:
        try:
            return _info(self._connect().containers.get(name))
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
            container = client.containers.create(
                spec.image,
                name=spec.name,
                entrypoint=spec.main,
                command=[],
                init=True,
                # The main process only announces its runner on stdout; no need
                # to keep a log of it on the engine's disk.
                log_config=docker.types.LogConfig(type=docker.types.LogConfig.types.NONE),
                labels=dict(spec.labels),
                **_workspace_mounts(spec),
                working_dir="/workspace",
                network_mode=spec.network,
                auto_remove=spec.auto_remove,
                user=spec.user,
                environment=dict(spec.env),
                # Limits and isolation; the engine's default seccomp profile
                # stays on because nothing here asks for another.
                mem_limit=spec.memory,
                memswap_limit=spec.memory,  # the same figure: no swap beyond the limit
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids_limit,
                ulimits=self._ulimits(spec),
                read_only=spec.read_only,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmp_size}"},
                cap_drop=["ALL"],
                cap_add=list(spec.cap_add) or None,
                security_opt=["no-new-privileges:true"] if spec.no_new_privileges else None,
                runtime=spec.runtime,
            )
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"Image {spec.image!r} is not on the Docker engine: {_reason(exc)}") from None
        except docker.errors.APIError as exc:
            # Name taken: a concurrent daemon won the race, or the container
            # exists already. Podman says so with a 500 and "already in use".
            if exc.status_code == 409 or "already in use" in _reason(exc):
                try:
                    return _info(client.containers.get(spec.name))
                except docker.errors.NotFound:
                    # Taken by one on its way out (an auto-remove after a stop):
                    # once the engine lets go of the name, create ours.
                    if not retried:
                        _wait_until_gone(client, spec.name)
                        return self._create(spec, retried=True)
            if spec.workspace_mount == "bind" and _says_path_missing(_reason(exc), spec.bind_source):
                raise BindSourceMissing(
                    f"The Docker engine at {engine_address()} cannot see the workspace's path "
                    f"{spec.bind_source} ({_reason(exc)}). If the engine runs on another machine, set "
                    'workspace_mount = "copy" (or "auto") in cellbox.toml; if it sees the folder under '
                    "another path, set bind_dir to that path."
                ) from None
            raise SandboxFailed(
                f"Could not create the sandbox container {spec.name!r} from {spec.image!r}: {_reason(exc)}"
            ) from None
        return _info(container)

    def _ulimits(self, spec: ContainerSpec) -> list[docker.types.Ulimit]:
        limits = [
            docker.types.Ulimit(name="nofile", soft=spec.open_files, hard=spec.open_files),
            docker.types.Ulimit(name="fsize", soft=spec.max_file_size, hard=spec.max_file_size),
        ]
        if self._podman:
            # Podman (as root) gives every container RLIMIT_NPROC = 1048576
            # unless the client names one; Docker sets none. Raising a limit
            # past the engine's own hard limit needs CAP_SYS_RESOURCE, which
            # root does not have everywhere (nested containers, some VMs), and
            # then every start fails. containers.conf's default_ulimits cannot
            # help: Podman drops them once a client names any ulimit, as
            # cellbox does. What bounds a sandbox's processes is pids_limit;
            # this only has to stay out of the way.
            limits.append(docker.types.Ulimit(name="nproc", soft=PODMAN_NPROC, hard=PODMAN_NPROC))
        return limits

    async def start_container(self, name: str) -> None:
        def start() -> None:
            container = self._connect().containers.get(name)
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise SandboxFailed(
                    f"The sandbox container {name!r} did not start: {_reason(exc)}{_start_hint(_reason(exc))}"
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
                raise ContainerGone(_reason(exc)) from None
            return StreamConnection(sock, self._streams)

        return await self._call(attach)

    async def restart_container(self, name: str, label: tuple[str, str]) -> None:
        """Restart; ContainerGone when the container is no more (the caller creates it anew)."""

        def restart() -> None:
            try:
                container = _get_labelled(self._connect(), name, label)
                container.restart(timeout=STOP_GRACE_SECONDS)
            except docker.errors.NotFound as exc:
                raise ContainerGone(_reason(exc)) from None
            except docker.errors.APIError as exc:
                # With auto-remove, the engine may start removing the container
                # as the restart stops it, and then refuses to start it again.
                # Podman always does: its restart is a stop, which removes an
                # auto-remove container, then a start that fails.
                reason = _reason(exc)
                if "marked for removal" not in reason and "already been removed" not in reason:
                    raise
                _wait_until_gone(self._connect(), name)
                raise ContainerGone(_reason(exc)) from None

        await self._call(restart)

    async def stop_container(self, name: str, removed: bool, label: tuple[str, str]) -> None:
        """Stop the container if it exists. With `removed` (auto-remove), return
        only once the engine has removed it too, so that a status or execute
        right after sees "absent" rather than a container on its way out."""

        def stop() -> None:
            try:
                container = _get_labelled(self._connect(), name, label)
                container.stop(timeout=STOP_GRACE_SECONDS)
                if removed:
                    container.wait(condition="removed", timeout=10)
            except docker.errors.NotFound:
                pass
            except requests.exceptions.ReadTimeout:
                raise SandboxFailed(f"{name!r} stopped but the engine did not remove it within 10 s") from None
            except docker.errors.APIError as exc:
                if exc.status_code != 404:
                    raise SandboxFailed(f"Could not stop {name!r}: {_reason(exc)}") from None

        await self._call(stop)

    async def remove_container(self, name: str, label: tuple[str, str]) -> None:
        """Remove the container `name` if it exists; ForeignContainer when it
        does not carry `label` (key, value): it is someone else's."""

        def remove() -> None:
            try:
                # v: the anonymous /workspace volume of a copy-mode sandbox goes with it.
                _get_labelled(self._connect(), name, label).remove(force=True, v=True)
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
        except docker.errors.NotFound as exc:
            raise ContainerGone(_reason(exc)) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "container ... is not running"
                raise ContainerGone(_reason(exc)) from None
            raise SandboxFailed(f"Could not run a block in the sandbox: {_reason(exc)}") from None
        # None when the engine lost track of the process (container stopped under it).
        return -1 if exit_code is None else exit_code

    async def oom_killed_since(self, container_id: str, since: float) -> bool:
        """Whether the engine saw the memory limit kill a process in the container since `since` (unix time)."""

        def ask() -> bool:
            # `until` in the past makes the engine answer at once instead of streaming.
            events = self._connect().events(
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
                return self._connect().containers.get(container_id).exec_run(argv).exit_code
            except (docker.errors.NotFound, docker.errors.APIError):
                return -1  # nothing to do in a container that is gone or stopped

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
                raise ContainerGone(_reason(exc)) from None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"Could not copy files into the sandbox: {_reason(exc)}") from None

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
                if "container" in _reason(exc).lower() and "file" not in _reason(exc).lower():
                    raise ContainerGone(_reason(exc)) from None
                return None
            except docker.errors.APIError as exc:
                raise SandboxFailed(f"Could not copy files out of the sandbox: {_reason(exc)}") from None

        return await self._call(get)

    async def exec_capture(self, container_id: str, argv: list[str], user: str | None = None) -> tuple[int, bytes]:
        """Run a helper command at /workspace and return (exit code, stdout); stderr is logged."""

        def run() -> tuple[int, bytes]:
            api = self._connect().api
            try:
                exec_id = api.exec_create(container_id, argv, workdir="/workspace", user=user or "")["Id"]
                stdout, stderr = api.exec_start(exec_id, demux=True)
                exit_code = api.exec_inspect(exec_id)["ExitCode"]
            except docker.errors.NotFound as exc:
                raise ContainerGone(_reason(exc)) from None
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise ContainerGone(_reason(exc)) from None
                raise SandboxFailed(f"A helper command failed in the sandbox: {_reason(exc)}") from None
            if stderr:
                log.info("%s: %s", argv[0], stderr.decode("utf-8", "replace").rstrip())
            return (-1 if exit_code is None else exit_code), stdout or b""

        return await self._call(run)


class ForeignContainer(SandboxFailed):
    """A container of the sandbox's name that is not labelled as this workspace's: never touched."""


def _get_labelled(client: docker.DockerClient, name: str, label: tuple[str, str]) -> Any:
    """The container `name`, only if it carries `label`: the daemon never
    stops, restarts or removes a container that is not its workspace's."""
    container = client.containers.get(name)
    key, value = label
    if (container.labels or {}).get(key) != value:
        raise ForeignContainer(
            f"A container named {name!r} exists and is not the sandbox of {value}; cellbox leaves it alone. "
            "Remove it yourself, or choose another container_name."
        )
    return container


class ArchiveTooLarge(SandboxFailed):
    """A path in the container holds more than the caller would copy."""


class BindSourceMissing(SandboxFailed):
    """The engine cannot see the workspace's path: it runs elsewhere (copy mode works there)."""


class ContainerGone(SandboxFailed):
    """The container vanished or stopped; the caller may recreate it and retry."""


class ImageMissing(ImageUnavailable):
    """The image is not on the engine (it may still be pullable)."""


class StreamConnection:
    """A hijacked engine connection carrying a process's multiplexed
    stdout/stderr. Reading blocks: `next_line` does it in a thread."""

    def __init__(self, sock: Any, pool: ThreadPoolExecutor | None = None) -> None:
        self._pool = pool
        """Where its blocking reads wait: the engine's stream pool, not the
        loop's default executor, which the daemon's file work shares (a
        read waits as long as the main process is silent)."""
        self._io = sock
        self._raw = getattr(sock, "_sock", sock)  # the real socket
        self._frames = self.frames()
        self._pending = b""

    def frames(self) -> Iterator[tuple[str, bytes]]:
        """("stdout" | "stderr", bytes) as the process writes them, until it ends."""
        try:
            for stream_id, data in frames_iter(self._io, tty=False):
                yield ("stderr" if stream_id == 2 else "stdout"), data
        except (OSError, ValueError):
            return  # closed under us: the same as the end of the stream

    def _next_line(self) -> bytes | None:
        while b"\n" not in self._pending:
            frame = next(self._frames, None)
            if frame is None:
                return None
            stream, data = frame
            if stream == "stdout":
                self._pending += data
            else:
                log.warning("container main process: %s", data.decode("utf-8", "replace").rstrip())
        line, self._pending = self._pending.split(b"\n", 1)
        return line

    async def next_line(self, timeout: float) -> bytes | None:
        """The next line the process writes on stdout; None at its end or after `timeout`."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, self._next_line), timeout)
        except TimeoutError:
            self.close()  # unblocks the reading thread
            return None

    def close(self) -> None:
        for closer in (lambda: self._raw.shutdown(socket.SHUT_RDWR), self._raw.close, self._io.close):
            try:
                closer()
            except OSError:
                pass


def _is_podman(client: docker.DockerClient) -> bool:
    components = client.version().get("Components") or []
    return any("podman" in str(component.get("Name", "")).lower() for component in components)


def _workspace_mounts(spec: ContainerSpec) -> dict[str, Any]:
    """The create() arguments that put the workspace at /workspace."""
    if spec.workspace_mount == "copy":
        # An anonymous volume: writable under a read-only root filesystem,
        # reachable by the archive API (a tmpfs is not: the engine copies
        # through its own view of the container's mounts), removed with the
        # container.
        targets = ("/workspace", *spec.volumes)
        return {"mounts": [docker.types.Mount(target, None, type="volume") for target in targets]}
    # Binds (HostConfig.Binds). Docker creates a missing source folder on its
    # own host, so a remote Docker engine shows an empty folder there: the
    # sandbox sees that the probe it wrote does not appear and falls back to
    # copy mode. Podman refuses a missing source instead (BindSourceMissing).
    # The engine orders mounts by depth, so /workspace/.git lands on /workspace.
    binds = {spec.bind_source: {"bind": "/workspace", "mode": "rw"}}
    for source, target in spec.read_only_binds:
        binds[source] = {"bind": target, "mode": "ro"}
    return {"volumes": binds}


def _says_path_missing(reason: str, path: str) -> bool:
    # Docker: 'invalid mount config for type "bind": bind source path does not exist: PATH';
    # Podman: 'statfs PATH: no such file or directory'.
    lowered = reason.lower()
    return "bind source path does not exist" in lowered or (path in reason and "no such file or directory" in lowered)


def _start_hint(reason: str) -> str:
    if "error setting rlimit" in reason:
        # Podman (as root) gives every container nofile and nproc limits of
        # 1048576 unless told otherwise; raising a limit above the engine's own
        # hard limit needs CAP_SYS_RESOURCE, which some hosts (containers, some
        # VMs) do not give even to root.
        return (
            ". The engine could not apply a resource limit (rlimit): it runs without CAP_SYS_RESOURCE "
            "and was asked for more than its own hard limit (see docs/engines.md). Lower "
            "open_files, or run the engine with CAP_SYS_RESOURCE."
        )
    return ""


def _wait_until_gone(client: docker.DockerClient, name: str, seconds: float = 10.0) -> None:
    """Until the engine has let go of the name, so that creating it anew works.
    Not `wait(condition="removed")`: Podman's answers it while its clean-up
    still holds the name ("already in use"; seen once in three CI runs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.containers.get(name)
        except docker.errors.NotFound:
            return
        time.sleep(0.05)


def _info(container: Any) -> ContainerInfo:
    image = container.attrs.get("Config", {}).get("Image") or ""
    # Podman stores the name it resolved ("localhost/x:tag" for a local
    # image, "docker.io/library/x:tag" for a pulled one); report the name as
    # it is configured, as Docker does.
    for prefix in ("localhost/", "docker.io/library/"):
        image = image.removeprefix(prefix)
    return ContainerInfo(
        id=container.id,
        name=container.name,
        state=container.status,
        image=image,
        labels=dict(container.labels or {}),
    )


def _reason(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _engine_unavailable(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable(
        f"Cannot reach the Docker engine at {engine_address()}: {exc}. "
        "Start it (e.g. `sudo systemctl start docker`, or `dockerd &` as root), "
        "or point DOCKER_HOST (or a Docker context) at a running engine."
    )
