"""Unit tests for cellbox.config: defaults, files, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellbox.languages import DEFAULT_EXECUTION_POLICIES
from cellbox.settings.schema import validate_overrides
from cellbox.settings.sources import load_config
from cellbox.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.image == "python:3-slim"
    assert config.timeout == 60
    assert config.network == "none"
    assert config.auto_remove is True
    assert config.stop_container is True
    assert config.bind_dir is None
    assert config.container_name is None
    assert dict(config.execution_policies) == dict(DEFAULT_EXECUTION_POLICIES)


def test_pyproject_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.cellbox]\nimage = "python:3.12"\ntimeout = 5\n'
    )
    config = load_config(tmp_path)
    assert config.image == "python:3.12"
    assert config.timeout == 5.0
    assert config.network == "none"


def test_pyproject_without_tool_table_uses_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_config(tmp_path).image == "python:3-slim"


def test_cellbox_toml_overrides_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.cellbox]\nimage = "from-pyproject"\ntimeout = 7\n'
    )
    (tmp_path / "cellbox.toml").write_text('image = "from-cellbox"\n')
    config = load_config(tmp_path)
    assert config.image == "from-cellbox"
    assert config.timeout == 7  # keys not in cellbox.toml survive


def test_overrides_win(tmp_path: Path) -> None:
    (tmp_path / "cellbox.toml").write_text('image = "from-file"\ntimeout = 10\n')
    config = load_config(tmp_path, {"image": "from-client"})
    assert config.image == "from-client"
    assert config.timeout == 10.0


def test_partial_execution_policies_merged_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "cellbox.toml").write_text("[execution_policies]\njavascript = true\npython = false\n")
    policies = load_config(tmp_path).execution_policies
    assert policies["javascript"] is True
    assert policies["python"] is False
    assert policies["bash"] is True
    assert policies["html"] is False
    assert set(policies) == set(DEFAULT_EXECUTION_POLICIES)


def test_partial_execution_policies_from_overrides_merged(tmp_path: Path) -> None:
    overrides = validate_overrides({"executionPolicies": {"bash": False}}, "client")
    policies = load_config(tmp_path, overrides).execution_policies
    assert policies["bash"] is False
    assert policies["python"] is True


def test_validate_overrides_camel_case() -> None:
    checked = validate_overrides(
        {"bindDir": "/host/ws", "stopContainer": False, "executionPolicies": {"Python": False}},
        "initializationOptions",
    )
    assert checked == {
        "bind_dir": "/host/ws",
        "stop_container": False,
        "execution_policies": {"python": False},
    }


def test_validate_overrides_snake_case() -> None:
    checked = validate_overrides(
        {"bind_dir": "/host/ws", "stop_container": False, "auto_remove": False, "timeout": 3},
        "initializationOptions",
    )
    assert checked == {"bind_dir": "/host/ws", "stop_container": False, "auto_remove": False, "timeout": 3.0}


def test_validate_overrides_none_is_empty() -> None:
    assert validate_overrides(None, "client") == {}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"colour": "red"}, "colour"),
        ({"auto_remove": "yes"}, "auto_remove"),
        ({"autoRemove": "yes"}, "autoRemove"),
        ({"execution_policies": {"ruby": True}}, "ruby"),
        ({"execution_policies": {"python": "yes"}}, "python"),
        ({"container_name": "my box"}, "container_name"),
        ({"image": ""}, "image"),
    ],
)
def test_validate_overrides_errors_name_source_and_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_overrides(raw, "SOURCE-X")
    message = str(info.value)
    assert message.startswith("SOURCE-X: ")
    assert key in message


def test_unknown_language_error_names_setting() -> None:
    with pytest.raises(ConfigError, match=r"execution_policies.*ruby"):
        validate_overrides({"execution_policies": {"ruby": True}}, "src")


def test_validate_overrides_non_mapping() -> None:
    with pytest.raises(ConfigError, match="^src: "):
        validate_overrides(["timeout"], "src")


def test_bad_value_in_file_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "cellbox.toml").write_text("timeout = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(tmp_path / "cellbox.toml") in str(info.value)
    assert "timeout" in str(info.value)


def test_bad_value_in_pyproject_names_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.cellbox]\nauto_remove = "yes"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert "pyproject.toml" in message
    assert "[tool.cellbox]" in message
    assert "auto_remove" in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "cellbox.toml"
    path.write_text("image = \n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


def test_policy_tables_from_every_source_add_up(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.cellbox.execution_policies]\njavascript = true\n")
    (tmp_path / "cellbox.toml").write_text("[execution_policies]\npython = false\n")
    config = load_config(tmp_path, {"execution_policies": {"html": True}})
    assert config.execution_policies == {
        **DEFAULT_EXECUTION_POLICIES, "javascript": True, "python": False, "html": True,
    }


def test_copy_mode_keys() -> None:
    assert validate_overrides({"workspaceMount": "copy", "copySizeLimit": "64m"}, "client") == {
        "workspace_mount": "copy", "copy_size_limit": 64 << 20,
    }
    with pytest.raises(ConfigError, match='workspaceMount must be "auto", "bind" or "copy"'):
        validate_overrides({"workspaceMount": "nfs"}, "client")
    with pytest.raises(ConfigError, match="copy_size_limit must be a positive size"):
        validate_overrides({"copy_size_limit": 0}, "cellbox.toml")


def test_copy_mode_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert (config.workspace_mount, config.copy_size_limit) == ("auto", 256 << 20)


def test_kernel_tables_from_every_source_add_up_over_the_python_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.cellbox.kernels]\nbash = "bash"\n')
    (tmp_path / "cellbox.toml").write_text('[kernels]\nR = "ir"\n')
    config = load_config(tmp_path, validate_overrides({"kernels": {"py": "xpython"}}, "client"))
    assert dict(config.kernels) == {"python": "xpython", "bash": "bash", "r": "ir"}
    (tmp_path / "other").mkdir()
    assert dict(load_config(tmp_path / "other").kernels) == {"python": "python3"}


@pytest.mark.parametrize(
    ("kernels", "said"),
    [
        ('kernels = "ir"', "must be a table of language"),
        ('[kernels]\nr = "../../bin/sh"', "must be the name of a Jupyter kernel"),
        ('[kernels]\nr = 3', "must be the name of a Jupyter kernel"),
        ('[kernels]\n"r lang" = "ir"', "not a language name"),
    ],
)
def test_a_bad_kernel_table_says_what_a_kernel_entry_is(tmp_path: Path, kernels: str, said: str) -> None:
    (tmp_path / "cellbox.toml").write_text(kernels + "\n")
    with pytest.raises(ConfigError, match=said):
        load_config(tmp_path)
