"""Shared fixtures: the sandbox image the tests use, container clean-up, and
a guard that the session leaves the host as it found it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs
import docker
import pytest
import requests

from cellbox.sandbox.environment import LABEL_ENVIRONMENT
from cellbox.sandbox.environment import LABEL_WORKSPACE as LABEL_ENVIRONMENT_WORKSPACE
from cellbox.vocabulary import LABEL_WORKSPACE

T = TypeVar("T")

TEST_IMAGE = os.environ.get("CELLBOX_TEST_IMAGE", "cellbox-sandbox:bookworm")
CONTAINER_INTERFACE_PREFIX = "veth"
"""Host ends of containers' network links: they come and go with the
containers of any test (or of anyone else using the engine meanwhile)."""


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    return docker.from_env()


def containers_of(engine: docker.DockerClient, workspace) -> list:
    """Every container, running or not, that cellbox made for `workspace`."""
    return engine.containers.list(all=True, filters={"label": f"{LABEL_WORKSPACE}={workspace}"})


def remove_containers_of(engine: docker.DockerClient, workspace) -> None:
    for container in containers_of(engine, workspace):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


def environment_images(engine: docker.DockerClient, workspace) -> list:
    """The environment images (cellbox-env:<hash>) cellbox built for `workspace`."""
    return [
        image for image in engine.images.list(filters={"label": LABEL_ENVIRONMENT})
        if image.labels.get(LABEL_ENVIRONMENT_WORKSPACE) == str(workspace)
    ]


@pytest.fixture
def make_workspace(tmp_path, engine):
    """Make workspace folders using the test image; remove their containers
    and environment images afterwards, pass or fail."""
    made = []

    def make(name: str = "ws", config: str | None = None):
        workspace = (tmp_path / name).resolve()
        workspace.mkdir(parents=True, exist_ok=True)
        if config is None:
            config = f'image = "{TEST_IMAGE}"\n'
        if config:
            (workspace / "cellbox.toml").write_text(config)
        made.append(workspace)
        return workspace

    yield make
    for workspace in made:
        remove_containers_of(engine, workspace)
        for image in environment_images(engine, workspace):
            engine.images.remove(image.id, force=True)


@pytest.fixture
def workspace(make_workspace):
    return make_workspace()


@attrs.frozen
class HostState:
    """What a test session must leave as it found it."""

    interfaces: frozenset[str]
    """The host's network interfaces (/sys/class/net), containers' veth ends aside."""
    engine_networks: frozenset[str] | None
    """"NAME (ID)" of each of the main engine's networks; None when it did not answer."""


def host_state() -> HostState:
    interfaces = frozenset(
        name for name in os.listdir("/sys/class/net") if not name.startswith(CONTAINER_INTERFACE_PREFIX)
    )
    networks = _ask_main_engine(lambda client: frozenset(f"{n.name} ({n.id[:12]})" for n in client.networks.list()))
    return HostState(interfaces, networks)


def _ask_main_engine(question: Callable[[docker.DockerClient], T]) -> T | None:
    """question(client) of the main engine; None when it does not answer, so
    that unit-only runs need no Docker."""
    try:
        client = docker.from_env(timeout=10)
    except docker.errors.DockerException:
        return None
    try:
        return question(client)
    except (docker.errors.DockerException, requests.RequestException):
        return None
    finally:
        client.close()


def changes(before: HostState, after: HostState) -> list[str]:
    """What differs, in words, e.g. "network interface vanished: docker0"."""
    found = _set_changes("network interface", before.interfaces, after.interfaces)
    if before.engine_networks is not None and after.engine_networks is None:
        found.append("the main engine answered before the session and no longer does")
    elif before.engine_networks is not None:
        found += _set_changes("main engine network", before.engine_networks, after.engine_networks)
    return found


def _set_changes(what: str, before: frozenset[str], after: frozenset[str]) -> list[str]:
    found = []
    if vanished := before - after:
        found.append(f"{what} vanished: {', '.join(sorted(vanished))}")
    if appeared := after - before:
        found.append(f"{what} appeared: {', '.join(sorted(appeared))}")
    return found


def leaked_containers(basetemp: Path) -> list[str]:
    """Containers (and environment images) the main engine still has for this session's workspaces.

    Every test's workspace lives under the session's basetemp (tmp_path), so
    a container labelled with a workspace there is this session's leak;
    containers of other sessions sharing the engine meanwhile are not.
    """

    def survivors(client: docker.DockerClient) -> list[str]:
        labelled = client.containers.list(all=True, filters={"label": LABEL_WORKSPACE})
        return [
            f"container {c.name} survived (workspace {c.labels[LABEL_WORKSPACE]})"
            for c in labelled
            if Path(c.labels[LABEL_WORKSPACE]).is_relative_to(basetemp)
        ]

    def built_images(client: docker.DockerClient) -> list[str]:
        built = client.images.list(filters={"label": LABEL_ENVIRONMENT})
        return [
            f"environment image {(i.tags or [i.id])[0]} survived (workspace {i.labels[LABEL_ENVIRONMENT_WORKSPACE]})"
            for i in built
            if Path(i.labels.get(LABEL_ENVIRONMENT_WORKSPACE, "/")).is_relative_to(basetemp)
        ]

    return (_ask_main_engine(survivors) or []) + (_ask_main_engine(built_images) or [])


@pytest.fixture(scope="session", autouse=True)
def host_left_as_found(tmp_path_factory):
    """Fail the run when the session changed the host's network interfaces
    or the main engine's networks, or left a container behind.

    Autouse and session-wide, so it is set up before, and torn down after,
    every other session fixture, the other engines included: it sees the
    host once they have stopped. Issue #11: a second dockerd of the
    copy-mode suite once deleted the host's docker0.
    """
    basetemp = tmp_path_factory.getbasetemp().resolve()
    before = host_state()
    yield
    problems = changes(before, host_state()) + leaked_containers(basetemp)
    if problems:
        pytest.fail("The test session did not leave the host as it found it:\n  " + "\n  ".join(problems))
@pytest.fixture(autouse=True)
def private_xdg(tmp_path_factory, monkeypatch):
    """The daemon's state, approvals and user config in folders of the test's
    own, never the real home's (spawned daemons inherit the environment)."""
    base = tmp_path_factory.mktemp("xdg")
    for name in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        folder = base / name.lower()
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    return base
