"""A second dockerd in mount and network namespaces of its own, without pytest:
the remote engine of the copy-mode tests (tests/e2e/engines.py wraps it in a
fixture) and of the benchmark (bench/run.py).

It answers on a Unix socket in its private run folder. A tmpfs over /tmp
hides the host's temporary folders from it: to it, a workspace made there is
on another machine (copy mode). Its data root is kept between sessions, so an
image is loaded into it once. Nothing it mounts shows on the host, and a
process of its left in its namespaces once it stopped is an error.
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

from cellbox.vocabulary import LABEL_WORKSPACE

REMOTE_ENGINE_HOME = Path("/var/lib/cellbox-test-engine")
"""The remote test engine's data root (images cached between sessions) and its lock."""
START_TIMEOUT_SECONDS = 60


class EngineFailed(Exception):
    """An engine did not come up, or left processes behind when it stopped."""


class EngineUnsupported(EngineFailed):
    """This machine cannot run a namespaced engine (not root, or no dockerd or unshare)."""


@attrs.frozen
class NamespacedEngine:
    url: str
    """unix:///run/cellbox-engine-XXXX/docker.sock, reachable from the host."""
    client: docker.DockerClient


def wait_for(url: str, process: subprocess.Popen, log: Path, what: str) -> docker.DockerClient:
    """A client of the engine at `url` once it answers (the SDK asks its version at once)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        with contextlib.suppress(docker.errors.DockerException):
            return docker.DockerClient(base_url=url, timeout=120)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-3000:]
            raise EngineFailed(f"{what} did not come up (exit {process.poll()}); its log ends:\n{tail}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def remove_cellbox_containers(client: docker.DockerClient) -> None:
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


@contextlib.contextmanager
def namespaced_dockerd(main: docker.DockerClient, image: str) -> Iterator[NamespacedEngine]:
    """A Docker engine that cannot see the host's /tmp, with `image` (copied
    from the `main` engine) loaded; stopped, with its cellbox containers, afterwards."""
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("unshare"):
        raise EngineUnsupported("the namespaced engine needs root, dockerd and unshare")
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
        what = f"the namespaced engine ({url})"
        with log.open("wb") as log_file:
            # The lock goes to dockerd too: held as long as it lives, even if
            # this session dies without stopping it.
            # Without the caller's XDG folders: runc keeps its exec state
            # under $XDG_RUNTIME_DIR, and a caller's in /tmp (the benchmark's)
            # is hidden from the engine by the tmpfs ("OCI runtime exec
            # failed: open .../runc-process...: no such file or directory").
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=() if lock is None else (lock,),
                env={name: value for name, value in os.environ.items() if not name.startswith("XDG_")},
            )
        namespace = private_mount_namespace(process)
        try:
            with serving(url, process, log, what) as client:
                load_image(main, client, url, image)
                yield NamespacedEngine(url, client)
        finally:
            end_namespace(namespace, what)


def private_mount_namespace(process: subprocess.Popen) -> str | None:
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


def end_namespace(namespace: str | None, what: str, may_linger: frozenset[str] = frozenset()) -> None:
    """After the engine stopped, nothing may be left in its namespaces: a
    containerd or a shim would keep them, and all mounted in them, alive.
    Stragglers are given a while, then killed, and EngineFailed raised, unless
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
        raise EngineFailed(f"{what} left processes in its namespaces after it stopped (now killed): {unexpected}")


@contextlib.contextmanager
def serving(url: str, process: subprocess.Popen, log: Path, what: str) -> Iterator[docker.DockerClient]:
    """A client of an engine process once it answers; afterwards the cellbox
    containers on it are removed and the process stopped, pass or fail."""
    try:
        client = wait_for(url, process, log, what)
        try:
            yield client
        finally:
            remove_cellbox_containers(client)
            client.close()
    finally:
        stop(process)


def load_image(main: docker.DockerClient, remote: docker.DockerClient, url: str, image: str) -> None:
    want = main.images.get(image).id
    with contextlib.suppress(docker.errors.ImageNotFound):
        if remote.images.get(image).id == want:
            return
    saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": ""})
    subprocess.run(["docker", "load", "-q"], stdin=saved.stdout, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DOCKER_HOST": url})
    assert saved.wait() == 0
