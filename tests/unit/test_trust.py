"""Unit tests for the trust model of settings (config.resolve_config, trust.py):
who may loosen the sandbox, and what an approval covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellbox.settings import trust
from cellbox.settings.schema import SandboxConfig, loosens, validate_overrides
from cellbox.settings.sources import resolve_config, trust_workspace
from cellbox.errors import ConfigError

LOOSENING = {
    "network": "bridge", "user": "0:0", "cap_add": ["NET_RAW"], "no_new_privileges": False,
    "read_only": False, "runtime": "runc", "bind_dir": "/etc", "workspace_mount": "bind",
    "container_name": "someone-elses", "memory": "4g", "cpus": 2, "pids_limit": 100000,
    "open_files": 65536, "max_file_size": "10g", "tmp_size": "4g", "output_limit": "100m",
    "copy_size_limit": "10g",
}
TIGHTENING = {"memory": "128m", "cpus": 0.5, "pids_limit": 64, "timeout": 5, "image": "local:image", "network": "none"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def toml(settings: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(f'"{x}"' for x in v) + "]"
        return str(v)

    return "".join(f"{k} = {value(v)}\n" for k, v in settings.items())


@pytest.mark.parametrize("key", sorted(LOOSENING))
def test_every_loosening_key_is_loosening(key: str) -> None:
    value = validate_overrides({key: LOOSENING[key]}, "test")[key]
    assert loosens(key, value, SandboxConfig())


@pytest.mark.parametrize("key", sorted(TIGHTENING))
def test_tightening_is_not(key: str) -> None:
    value = validate_overrides({key: TIGHTENING[key]}, "test")[key]
    assert not loosens(key, value, SandboxConfig())


@pytest.mark.parametrize("name", ["cellbox.toml", "pyproject.toml"])
def test_a_workspace_file_cannot_loosen_until_approved(workspace: Path, name: str) -> None:
    text = toml(LOOSENING)
    (workspace / name).write_text("[tool.cellbox]\n" + text if name == "pyproject.toml" else text)
    resolved = resolve_config(workspace)
    assert resolved.config == SandboxConfig()
    assert len(resolved.ignored) == len(LOOSENING)
    assert all(f"(from {workspace / name}" in line for line in resolved.ignored)
    assert f"cellbox trust {workspace}" in resolved.ignored_message(workspace)
    assert [f.path for f in resolved.unapproved] == [workspace / name]

    trust_workspace(workspace)
    approved = resolve_config(workspace)
    assert approved.ignored == () and approved.unapproved == ()
    assert approved.config.network == "bridge" and approved.config.user == "0:0"


def test_a_changed_file_loses_its_approval(workspace: Path) -> None:
    (workspace / "cellbox.toml").write_text('network = "bridge"\n')
    trust_workspace(workspace)
    assert resolve_config(workspace).config.network == "bridge"
    (workspace / "cellbox.toml").write_text('network = "bridge"\nuser = "0:0"\n')  # as a block would
    resolved = resolve_config(workspace)
    assert (resolved.config.network, resolved.config.user) == ("none", "auto")
    assert len(resolved.ignored) == 2


def test_tightening_needs_no_approval(workspace: Path) -> None:
    (workspace / "cellbox.toml").write_text(toml(TIGHTENING))
    resolved = resolve_config(workspace)
    assert resolved.ignored == () and resolved.unapproved == ()
    assert (resolved.config.memory, resolved.config.timeout, resolved.config.image) == (128 << 20, 5, "local:image")


def test_an_image_from_an_unapproved_file_is_not_trusted_to_pull(workspace: Path) -> None:
    (workspace / "cellbox.toml").write_text('image = "evil.example/steal:secret"\n')
    resolved = resolve_config(workspace)
    assert resolved.config.image == "evil.example/steal:secret" and not resolved.image_trusted
    assert resolve_config(workspace, {"image": "mine"}).image_trusted


def test_the_client_and_the_user_config_may_loosen(workspace: Path, tmp_path: Path, monkeypatch) -> None:
    assert resolve_config(workspace, validate_overrides({"network": "bridge"}, "client")).config.network == "bridge"
    config_home = tmp_path / "config"
    (config_home / "cellbox").mkdir(parents=True)
    (config_home / "cellbox" / "config.toml").write_text('memory = "4g"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    (workspace / "cellbox.toml").write_text('memory = "2g"\n')  # tighter than the user's own: fine
    assert resolve_config(workspace).config.memory == 2 << 30


def test_a_user_config_linked_to_dotfiles_is_read(workspace: Path, tmp_path: Path, monkeypatch) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "cellbox.toml").write_text('network = "bridge"\n')
    config_home = tmp_path / "config"
    (config_home / "cellbox").mkdir(parents=True)
    (config_home / "cellbox" / "config.toml").symlink_to(dotfiles / "cellbox.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    assert resolve_config(workspace).config.network == "bridge"


def test_a_user_config_inside_the_workspace_is_not_the_user_s(workspace: Path, monkeypatch) -> None:
    (workspace / "cellbox").mkdir()
    (workspace / "cellbox" / "config.toml").write_text('network = "bridge"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workspace))
    assert resolve_config(workspace).config.network == "none"


def test_editor_workspace_settings_are_a_workspace_source(workspace: Path) -> None:
    resolved = resolve_config(workspace, {}, validate_overrides({"network": "bridge", "timeout": 9}, "t"))
    assert (resolved.config.network, resolved.config.timeout) == ("none", 9)
    assert "the editor's workspace settings" in resolved.ignored[0]


@pytest.mark.parametrize("setting", ['network = "host"', 'network = "container:other"', 'cap_add = ["ALL"]'])
def test_refused_from_every_source(workspace: Path, setting: str) -> None:
    (workspace / "cellbox.toml").write_text(setting + "\n")
    with pytest.raises(ConfigError, match="refused"):
        resolve_config(workspace)
    key, _, value = setting.partition(" = ")
    client = validate_overrides({key: eval(value.replace("true", "True"))}, "client")
    (workspace / "cellbox.toml").unlink()
    with pytest.raises(ConfigError, match="refused"):
        resolve_config(workspace, client)


def test_planted_settings_files_are_refused(workspace: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.toml"
    secret.write_text('network = "bridge"\n')
    (workspace / "cellbox.toml").symlink_to(secret)
    with pytest.raises(ConfigError, match="outside the workspace"):
        resolve_config(workspace)
    (workspace / "cellbox.toml").unlink()
    import os

    os.mkfifo(workspace / "pyproject.toml")
    with pytest.raises(ConfigError, match="not a regular file"):
        resolve_config(workspace)


def test_the_approvals_cannot_live_inside_the_workspace(workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(workspace))
    (workspace / "cellbox.toml").write_text('network = "bridge"\n')
    with pytest.raises(ConfigError, match="inside it"):
        trust_workspace(workspace)
    trust.approve(workspace / "cellbox.toml", trust.digest(b'network = "bridge"\n'))  # as a block would
    assert resolve_config(workspace).config.network == "none"
