"""Engines besides the main Docker engine, for the engine suites.

- `remote_engine`: a second dockerd in mount and network namespaces of its
  own, answering on a Unix socket in its private run folder. A tmpfs over
  /tmp hides pytest's workspaces from it: to it, the workspace is on another
  machine (copy mode). Its data root is kept between sessions, so the test
  image is loaded once.
- `podman_engine`: `podman system service` on a Unix socket of this session,
  driven through its Docker-compatible API, in a mount namespace of its own.

Each is started once per session and stopped at its end; neither touches the
main engine (/var/run/docker.sock) that the other tests use meanwhile, nor
leaves anything on the host: what it mounts stays in its namespaces, and a
process of its left in them once it stopped fails the session.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import pytest

from cellbox.vocabulary import LABEL_WORKSPACE
from tests.conftest import TEST_IMAGE, containers_of

REMOTE_ENGINE_HOME = Path("/var/lib/cellbox-test-engine")
"""The remote test engine's data root (images cached between sessions) and its lock."""
START_TIMEOUT_SECONDS = 60


@attrs.frozen
class Engine:
    url: str
    """What DOCKER_HOST is set to for the daemon under test."""
    client: docker.DockerClient

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.url}


def _wait_for(url: str, process: subprocess.Popen, log: Path, what: str) -> docker.DockerClient:
    """A client of the engine at `url` once it answers (the SDK asks its version at once)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        with contextlib.suppress(docker.errors.DockerException):
            return docker.DockerClient(base_url=url, timeout=120)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"{what} did not come up (exit {process.poll()}); its log ends:\n{tail}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _remove_cellbox_containers(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": LABEL_WORKSPACE}):
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True, v=True)


@contextlib.contextmanager
def _data_root() -> Iterator[tuple[Path, int | None]]:
    """The cached data root, locked for this session; a throw-away one when
    another session (or a dockerd it left behind) holds the lock."""
    REMOTE_ENGINE_HOME.mkdir(parents=True, exist_ok=True)
    lock = os.open(REMOTE_ENGINE_HOME / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        scratch = Path(tempfile.mkdtemp(prefix="cellbox-test-engine-", dir="/var/tmp"))
        try:
            yield scratch, None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:
        yield REMOTE_ENGINE_HOME / "data", lock
    finally:
        os.close(lock)


@pytest.fixture(scope="session")
def remote_engine(engine) -> Iterator[Engine]:
    """A Docker engine that cannot see the test workspaces, on unix:///run/cellbox-engine-XXXX/docker.sock."""
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("unshare"):
        pytest.skip("the remote test engine needs root, dockerd and unshare")
    with _data_root() as (data_root, lock), tempfile.TemporaryDirectory(prefix="cellbox-engine-", dir="/run") as run:
        run_dir = Path(run)
        # The socket file is made inside the engine's mount namespace, but in
        # the host's /run, which is not remounted there: the host reaches it.
        url = f"unix://{run_dir / 'docker.sock'}"
        config = run_dir / "daemon.json"
        config.write_text("{}")  # not the host's /etc/docker/daemon.json
        log = run_dir / "dockerd.log"
        # / is made private first, so that nothing mounted in here (the tmpfs
        # over /tmp, the containers' filesystems) shows in the host's
        # namespace, and the host's tmp folders vanish from this engine's view.
        # A network namespace of its own too: a dockerd with --bridge=none
        # deletes any interface called docker0 it finds (moby's
        # removeDefaultBridgeInterface), which in the host's namespace is the
        # main engine's bridge: no container on its default network could
        # start afterwards, until that engine restarted (issue #11).
        script = 'mount -t tmpfs -o size=64m cellbox-hidden-tmp /tmp && exec "$@"'
        command = [
            "unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script, "sh",
            "dockerd", "--config-file", str(config), "-H", url,
            "--data-root", str(data_root), "--exec-root", str(run_dir / "exec"),
            "--pidfile", str(run_dir / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--userland-proxy=false",
        ]
        with log.open("wb") as log_file:
            # The lock goes to dockerd too: held as long as it lives, even if
            # this session dies without stopping it.
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=() if lock is None else (lock,),
            )
        namespace = _private_mount_namespace(process)
        try:
            with _serving(url, process, log, f"the remote test engine ({url})") as client:
                _load_image(engine, client, url)
                yield Engine(url, client)
        finally:
            _end_namespace(namespace, f"the remote test engine ({url})")


def _private_mount_namespace(process: subprocess.Popen) -> str | None:
    """The mount namespace `process` moves into ("mnt:[INODE]"), once it has;
    None if it ended first. What the engine starts lives in it too."""
    ours = os.readlink("/proc/self/ns/mnt")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            theirs = os.readlink(f"/proc/{process.pid}/ns/mnt")
            if theirs != ours:
                return theirs
        time.sleep(0.01)
    return None


def _processes_in(namespace: str) -> dict[int, list[str]]:
    """pid -> argv of every process in the mount namespace."""
    found = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and os.readlink(entry / "ns" / "mnt") == namespace:
                argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
                found[int(entry.name)] = [arg.decode(errors="replace") for arg in argv]
    return found


def _end_namespace(namespace: str | None, what: str, may_linger: frozenset[str] = frozenset()) -> None:
    """After the engine stopped, nothing may be left in its namespaces: a
    containerd or a shim would keep them, and all mounted in them, alive.
    Stragglers are given a while, then killed, and the session fails, unless
    they run a program of `may_linger`, known to outlive its engine harmlessly."""
    if namespace is None:
        return
    deadline = time.monotonic() + 30
    while True:
        left = _processes_in(namespace)
        unexpected = sorted(" ".join(argv) for argv in left.values() if Path(argv[0]).name not in may_linger)
        if not unexpected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if unexpected:
        pytest.fail(f"{what} left processes in its namespaces after it stopped (now killed): {unexpected}")


@contextlib.contextmanager
def _serving(url: str, process: subprocess.Popen, log: Path, what: str) -> Iterator[docker.DockerClient]:
    """A client of an engine process once it answers; afterwards the test
    containers on it are removed and the process stopped, pass or fail."""
    try:
        client = _wait_for(url, process, log, what)
        try:
            yield client
        finally:
            _remove_cellbox_containers(client)
            client.close()
    finally:
        _stop(process)


def _load_image(main: docker.DockerClient, remote: docker.DockerClient, url: str) -> None:
    want = main.images.get(TEST_IMAGE).id
    with contextlib.suppress(docker.errors.ImageNotFound):
        if remote.images.get(TEST_IMAGE).id == want:
            return
    saved = subprocess.Popen(["docker", "save", TEST_IMAGE], stdout=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": ""})
    subprocess.run(["docker", "load", "-q"], stdin=saved.stdout, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DOCKER_HOST": url})
    assert saved.wait() == 0


@pytest.fixture(scope="session")
def podman_engine(tmp_path_factory) -> Iterator[Engine]:
    """Podman's Docker-compatible API on a Unix socket of this session."""
    if not shutil.which("podman"):
        # A failure, not a skip: a suite that skips where CI cannot see it tests nothing.
        pytest.fail("podman is not installed: scripts/ensure-podman installs Debian's podman")
    if subprocess.run(["podman", "image", "exists", TEST_IMAGE]).returncode != 0:
        pytest.fail(f"{TEST_IMAGE} is not in podman's store: run scripts/ensure-podman")
    home = tmp_path_factory.mktemp("podman")
    sock = home / "podman.sock"
    # Podman as root asks for nofile and nproc limits of 1048576 for every
    # container. Raising a limit past the engine's own hard limit needs
    # CAP_SYS_RESOURCE, which root lacks on this machine (a VM that withholds
    # it), and podman runs with nproc capped at pid_max: ask for no more.
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    conf = home / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nproc={pid_max}:{pid_max}"]\n')
    log = home / "service.log"
    # As root, in a mount namespace of its own: the service bind-mounts its
    # storage driver's home (/var/lib/containers/storage/overlay) onto itself
    # and leaves that mount behind when it stops; there it goes with the
    # namespace. (Rootless Podman keeps its mounts in a namespace of its own.)
    # No network namespace is needed: with cellbox's default network, none,
    # Podman makes no bridge (cni-podman0) and no firewall rules (checked).
    private = os.geteuid() == 0
    command = ["unshare", "--mount", "--propagation", "private"] if private else []
    command += ["podman", "system", "service", "--time=0", f"unix://{sock}"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "CONTAINERS_CONF": str(conf)}, start_new_session=True,
        )
    url = f"unix://{sock}"
    what = f"podman system service ({url})"
    namespace = _private_mount_namespace(process) if private else None
    try:
        with _serving(url, process, log, what) as client:
            yield Engine(url, client)
    finally:
        # A conmon watching an exec made through the API waits 300 s
        # (exit_command_delay, as Docker keeps an exec) before it cleans the
        # exec up, even once its container is gone: nothing is left to clean.
        _end_namespace(namespace, what, may_linger=frozenset({"conmon"}))


@pytest.fixture
def make_engine_workspace(tmp_path):
    """make(engine, name, config) -> a workspace whose containers on `engine` are removed afterwards."""
    made: list[tuple[Engine, Path]] = []

    def make(engine: Engine, name: str = "ws", config: str | None = None) -> Path:
        workspace = (tmp_path / name).resolve()
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "cellbox.toml").write_text(config if config is not None else f'image = "{TEST_IMAGE}"\n')
        made.append((engine, workspace))
        return workspace

    yield make
    for engine, workspace in made:
        for container in containers_of(engine.client, workspace):
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True, v=True)
