"""Unit tests for cellbox.sandbox.spec.container_name_for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellbox.sandbox.spec import container_name_for

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def test_deterministic() -> None:
    path = Path("/home/user/My Project")
    assert container_name_for(path) == container_name_for(Path("/home/user/My Project"))


def test_prefix_and_slug() -> None:
    name = container_name_for(Path("/home/user/myproject"))
    assert name.startswith("cellbox-")
    assert "myproject" in name


def test_slug_of_awkward_folder_name() -> None:
    name = container_name_for(Path("/home/user/My Project"))
    assert name.startswith("cellbox-my-project-")


def test_same_folder_name_different_paths_differ() -> None:
    a = container_name_for(Path("/home/alice/project"))
    b = container_name_for(Path("/home/bob/project"))
    assert a != b
    assert "project" in a and "project" in b


@pytest.mark.parametrize(
    "path",
    [
        "/home/user/project",
        "/home/user/My Project",
        "/tmp/ünïcødé wörk",
        "/tmp/...",
        "/tmp/-leading",
        "/tmp/" + "x" * 100,
        "/",
    ],
)
def test_valid_docker_name(path: str) -> None:
    assert DOCKER_NAME.fullmatch(container_name_for(Path(path)))
