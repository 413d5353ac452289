"""Declared environments' decisions, without an engine: the hash, the
Dockerfile, reading the files a declaration names, and the offline pip note."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cellbox.errors import ConfigError
from cellbox.sandbox.environment import offline_pip_note, plan, read_inputs
from cellbox.settings.schema import Environment

BASE = "sha256:" + "a" * 64


def test_the_tag_covers_the_base_the_declaration_and_the_files_content(tmp_path: Path) -> None:
    declared = Environment(packages=("numpy",))
    one = plan(declared, BASE, {"cellbox-env/requirements.txt": b"x==1\n"}, tmp_path)
    assert one.tag.startswith("cellbox-env:") and one == plan(declared, BASE, {"cellbox-env/requirements.txt": b"x==1\n"}, tmp_path)
    assert one.tag != plan(declared, "sha256:" + "b" * 64, {"cellbox-env/requirements.txt": b"x==1\n"}, tmp_path).tag
    assert one.tag != plan(declared, BASE, {"cellbox-env/requirements.txt": b"x==2\n"}, tmp_path).tag
    assert one.tag != plan(Environment(packages=("pandas",)), BASE, {"cellbox-env/requirements.txt": b"x==1\n"}, tmp_path).tag
    # The workspace it was built for is a label, not part of the hash: another workspace reuses it.
    assert one.tag == plan(declared, BASE, {"cellbox-env/requirements.txt": b"x==1\n"}, tmp_path / "other").tag


def test_the_dockerfile_installs_what_is_declared_in_order_and_quotes_it(tmp_path: Path) -> None:
    declared = Environment(
        requirements="requirements.txt", packages=("pandas==2.*", "a b"), system=("graphviz",),
        setup=("echo done",), find_links="wheels", network="none",
    )
    files = {"cellbox-env/requirements.txt": b"x\n", "cellbox-env/wheels/x-1-py3-none-any.whl": b"zip"}
    lines = plan(declared, BASE, files, tmp_path).dockerfile.splitlines()
    assert lines[0] == f"FROM {BASE}"
    assert lines[2] == "COPY cellbox-env /tmp/cellbox-env"
    assert "apt-get install" in lines[3] and "graphviz" in lines[3] and "apk add" in lines[3]
    pip = lines[4]
    assert "--find-links /tmp/cellbox-env/wheels --no-index" in pip
    assert "'pandas==2.*' 'a b' -r /tmp/cellbox-env/requirements.txt" in pip
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" in pip
    assert lines[5] == "RUN echo done"
    assert lines[6].startswith("LABEL org.cellbox.image=environment org.cellbox.environment=")


def test_a_wheelhouse_url_and_an_index_are_passed_to_pip_as_they_are(tmp_path: Path) -> None:
    declared = Environment(packages=("x",), find_links="https://example.org/wheels/", index_url="https://m.example/simple")
    pip = [line for line in plan(declared, BASE, {}, tmp_path).dockerfile.splitlines() if "pip install" in line][0]
    assert "--index-url https://m.example/simple --find-links https://example.org/wheels/ x" in pip
    assert "--no-index" not in pip and "COPY" not in plan(declared, BASE, {}, tmp_path).dockerfile


def test_the_files_it_names_are_read_beneath_the_workspace_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.whl").write_text("secret")
    workspace = tmp_path / "ws"
    (workspace / "wheels").mkdir(parents=True)
    (workspace / "wheels" / "good-1-py3-none-any.whl").write_bytes(b"wheel")
    os.symlink(outside / "secret.whl", workspace / "wheels" / "link.whl")
    os.mkfifo(workspace / "wheels" / "fifo.whl")
    (workspace / "requirements.txt").write_text("good\n")
    files = read_inputs(workspace, Environment(requirements="requirements.txt", find_links="wheels"))
    assert files == {"cellbox-env/requirements.txt": b"good\n", "cellbox-env/wheels/good-1-py3-none-any.whl": b"wheel"}
    os.symlink(outside, workspace / "away")
    with pytest.raises(ConfigError, match="find_links"):
        read_inputs(workspace, Environment(packages=("x",), find_links="away"))
    (workspace / "requirements.txt").unlink()
    os.symlink(outside / "secret.whl", workspace / "requirements.txt")
    with pytest.raises(ConfigError, match="requirements"):
        read_inputs(workspace, Environment(requirements="requirements.txt"))
    with pytest.raises(ConfigError, match="no such file"):
        read_inputs(workspace, Environment(requirements="missing.txt"))


def test_a_pip_install_that_needed_the_network_says_how_to_declare_it() -> None:
    failed = "ERROR: Could not find a version that satisfies the requirement rich (from versions: none)\n"
    note = offline_pip_note("pip install -q rich 'httpx>=0.27'\n", failed, "none")
    assert 'packages = ["rich", "httpx>=0.27"]' in note
    assert offline_pip_note("pip install rich", failed, "bridge") == ""  # a network: another reason
    assert offline_pip_note("print(1)", failed, "none") == ""
    assert offline_pip_note("pip install rich", "SyntaxError\n", "none") == ""
