"""Shared fixtures: the sandbox image the tests use and container clean-up."""

from __future__ import annotations

import os

import docker
import pytest

TEST_IMAGE = os.environ.get("CELLBOX_TEST_IMAGE", "cellbox-sandbox:bookworm")
LABEL_WORKSPACE = "org.cellbox.workspace"


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


@pytest.fixture
def make_workspace(tmp_path, engine):
    """Make workspace folders using the test image; remove their containers afterwards, pass or fail."""
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


@pytest.fixture
def workspace(make_workspace):
    return make_workspace()


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
