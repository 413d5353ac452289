"""Per-workspace configuration: defaults, files, and client overrides.

Sources, later ones winning key by key: built-in defaults, `[tool.cellbox]` in
the workspace's `pyproject.toml`, `cellbox.toml` at the workspace root, then
the client's `initializationOptions`. TOML keys are snake_case, JSON keys
camelCase; both spellings are accepted everywhere. A bad value is a
ConfigError that names the source, the key and what is allowed.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from cellbox.blocks import DEFAULT_EXECUTION_POLICIES, KNOWN_LANGUAGES
from cellbox.errors import ConfigError

DEFAULT_IMAGE = "python:3-slim"
CONFIG_FILE = "cellbox.toml"


@attrs.frozen
class SandboxConfig:
    """How one workspace's sandbox is built and how its blocks run."""

    image: str = DEFAULT_IMAGE
    """Image of the sandbox container."""
    timeout: float = 60.0
    """Seconds a block may run before it is killed (>= 1)."""
    network: str = "none"
    """Engine network for the container: "none" (default), "bridge", or a named network."""
    bind_dir: str | None = None
    """Host path the engine mounts at /workspace, when it differs from the workspace's path here."""
    workspace_mount: str = "auto"
    """How the workspace reaches the container: "bind" (the engine mounts it), "copy"
    (files go through the engine's archive API: for an engine on another machine), or
    "auto" (bind when a bind mount shows the workspace, else copy)."""
    copy_size_limit: int = 256 << 20
    """Copy mode: most bytes of workspace files (after .gitignore) copied into the sandbox,
    and most bytes one run copies back."""
    container_name: str | None = None
    """Fixed container name; by default derived from the workspace path."""
    auto_remove: bool = True
    """Remove the container when it stops."""
    stop_container: bool = True
    """Stop the containers this daemon started when it shuts down."""
    execution_policies: Mapping[str, bool] = attrs.field(
        factory=lambda: dict(DEFAULT_EXECUTION_POLICIES)
    )
    """Per language: true runs its blocks, false only saves them."""

    # ---- limits and isolation (see the README's Security section)
    memory: int = 1 << 30
    """Memory limit in bytes ("1g" in TOML); no swap beyond it."""
    cpus: float = 1.0
    """CPUs the sandbox may use."""
    pids_limit: int = 256
    """Processes (and threads) at once in the sandbox."""
    open_files: int = 1024
    """Open files per process (RLIMIT_NOFILE)."""
    max_file_size: int = 1 << 30
    """Largest file a block may write, in bytes (RLIMIT_FSIZE)."""
    tmp_size: int = 256 << 20
    """Size of the tmpfs mounted at /tmp, in bytes."""
    output_limit: int = 1 << 20
    """Output kept per block, in bytes; past it the block runs on but its output is cut."""
    user: str = "auto"
    """"auto": the uid:gid owning the workspace; or an explicit "uid:gid"."""
    read_only: bool = True
    """Read-only root filesystem (only /workspace and /tmp are writable)."""
    cap_add: tuple[str, ...] = ()
    """Linux capabilities given back (all are dropped by default)."""
    no_new_privileges: bool = True
    """Forbid gaining privileges through setuid binaries."""
    runtime: str | None = None
    """The engine's container runtime, e.g. "runsc" for gVisor; default: the engine's own."""
    env: Mapping[str, str] = attrs.field(factory=dict)
    """Environment variables given to blocks, besides the image's own."""


_FIELDS = {field.name: field for field in attrs.fields(SandboxConfig)}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(value: Any) -> int:
    """Bytes from 1073741824, "1g", "512m", "1 GiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
        if size > 0:
            return size
    raise ValueError('must be a positive size: bytes, or a string such as "512m" or "1g"')


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive whole number")
    return value


def _check(key: str, value: Any) -> Any:
    """Validate one key's value; return it normalised or raise ValueError saying what is allowed."""
    if key in ("memory", "max_file_size", "tmp_size", "output_limit", "copy_size_limit"):
        return _size(value)
    if key in ("pids_limit", "open_files"):
        return _positive_int(value)
    if key == "cpus":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1024:
            raise ValueError("must be a number of CPUs above 0, e.g. 1 or 0.5")
        return float(value)
    if key == "user":
        if not isinstance(value, str) or not (value == "auto" or re.fullmatch(r"\d+(:\d+)?", value)):
            raise ValueError('must be "auto" (the workspace owner) or "uid:gid" in numbers, e.g. "1000:1000"')
        return value
    if key == "workspace_mount":
        if value not in ("auto", "bind", "copy"):
            raise ValueError('must be "auto", "bind" or "copy"')
        return value
    if key in ("read_only", "no_new_privileges"):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if key == "cap_add":
        if not isinstance(value, list) or not all(isinstance(c, str) and re.fullmatch(r"[A-Za-z_]+", c) for c in value):
            raise ValueError('must be a list of capability names, e.g. ["NET_RAW"]')
        return tuple(c.upper().removeprefix("CAP_") for c in value)
    if key == "runtime":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError('must be a runtime name known to the engine, e.g. "runsc"')
        return value
    if key == "env":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, str)
            for k, v in value.items()
        ):
            raise ValueError("must be a table of NAME = \"value\" strings")
        return dict(value)
    if key in ("image", "network"):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()
    if key in ("bind_dir", "container_name"):
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-empty string")
        if key == "container_name" and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", value):
            raise ValueError("must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (Docker's container name rule)")
        return value
    if key == "timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError("must be a finite number of seconds, at least 1")
        if value < 1:
            raise ValueError(f"must be at least 1 second (got {value})")
        return float(value)
    if key in ("auto_remove", "stop_container"):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if key == "execution_policies":
        if not isinstance(value, Mapping):
            raise ValueError("must be a table of language = true/false")
        policies = {}
        for language, runs in value.items():
            lang = str(language).lower()
            if lang not in KNOWN_LANGUAGES:
                allowed = ", ".join(sorted(KNOWN_LANGUAGES))
                raise ValueError(f"unknown language {language!r}; known: {allowed}")
            if not isinstance(runs, bool):
                raise ValueError(f"{language} must be true or false")
            policies[lang] = runs
        return policies
    raise AssertionError(key)


def validate_overrides(raw: Any, source: str) -> dict[str, Any]:
    """Check a mapping of config keys and return it snake_cased and normalised."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a table/object of settings, got {type(raw).__name__}")
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        name = _snake(str(key))
        if name not in _FIELDS:
            allowed = ", ".join(_FIELDS)
            raise ConfigError(f"{source}: unknown setting {key!r}; allowed: {allowed}")
        try:
            checked[name] = _check(name, value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key} {exc}") from None
    return checked


def _file_sources(workspace: Path) -> list[tuple[str, Mapping[str, Any]]]:
    sources = []
    pyproject = workspace / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        table = data.get("tool", {}).get("cellbox")
        if table is not None:
            sources.append((f"{pyproject} [tool.cellbox]", table))
    own = workspace / CONFIG_FILE
    if own.is_file():
        sources.append((str(own), _read_toml(own)))
    return sources


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from None


def load_config(workspace: Path, overrides: Mapping[str, Any] | None = None) -> SandboxConfig:
    """The workspace's configuration; `overrides` are already-validated client settings."""
    merged: dict[str, Any] = {}
    # A partial policy table changes only the languages it names, as in the
    # seed, so tables from each source add up instead of replacing each other.
    policies = dict(DEFAULT_EXECUTION_POLICIES)
    layers = [validate_overrides(table, source) for source, table in _file_sources(workspace)]
    for layer in [*layers, dict(overrides or {})]:
        policies.update(layer.pop("execution_policies", {}))
        merged.update(layer)
    return SandboxConfig(**merged, execution_policies=policies)
