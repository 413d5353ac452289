"""Engines besides the main Docker engine, for the engine suites.

- `remote_engine`: a second dockerd in mount and network namespaces of its
  own (tests/namespaced_engine.py, which the benchmark uses too), answering
  on a Unix socket in its private run folder. A tmpfs over /tmp hides
  pytest's workspaces from it: to it, the workspace is on another machine
  (copy mode). Its data root is kept between sessions, so the test image is
  loaded once.
- `podman_engine`: `podman system service` on a Unix socket of this session,
  driven through its Docker-compatible API, in a mount namespace of its own.

Each is started once per session and stopped at its end; neither touches the
main engine (/var/run/docker.sock) that the other tests use meanwhile, nor
leaves anything on the host: what it mounts stays in its namespaces, and a
process of its left in them once it stopped fails the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import pytest

from tests.conftest import TEST_IMAGE, containers_of
from tests.namespaced_engine import (
    EngineFailed,
    EngineUnsupported,
    end_namespace,
    namespaced_dockerd,
    private_mount_namespace,
    serving,
)


@attrs.frozen
class Engine:
    url: str
    """What DOCKER_HOST is set to for the daemon under test."""
    client: docker.DockerClient

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.url}


@contextlib.contextmanager
def _failing_the_session() -> Iterator[None]:
    """An engine that does not come up, or leaves processes behind, fails the session."""
    try:
        yield
    except EngineUnsupported as exc:
        pytest.skip(str(exc))
    except EngineFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def remote_engine(engine) -> Iterator[Engine]:
    """A Docker engine that cannot see the test workspaces, on unix:///run/cellbox-engine-XXXX/docker.sock."""
    with _failing_the_session(), namespaced_dockerd(engine, TEST_IMAGE) as found:
        yield Engine(found.url, found.client)


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
    namespace = private_mount_namespace(process) if private else None
    with _failing_the_session():
        try:
            with serving(url, process, log, what) as client:
                yield Engine(url, client)
        finally:
            # A conmon watching an exec made through the API waits 300 s
            # (exit_command_delay, as Docker keeps an exec) before it cleans the
            # exec up, even once its container is gone: nothing is left to clean.
            end_namespace(namespace, what, may_linger=frozenset({"conmon"}))


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
