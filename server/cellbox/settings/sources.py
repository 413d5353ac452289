"""A workspace's configuration: its sources, each weighed by who chose it.

Sources, later ones winning key by key: built-in defaults, the user's
`$XDG_CONFIG_HOME/cellbox/config.toml`, `[tool.cellbox]` in the workspace's
`pyproject.toml`, `cellbox.toml` at the workspace root, then the client's
`initializationOptions`. Each is validated by schema.py.

Who may loosen the sandbox. Trusted: the built-in defaults, the user's own
config file (outside every workspace), and the client (initializationOptions,
CLI flags). A workspace file (cellbox.toml, [tool.cellbox]) and settings an
editor read from the workspace (.vscode/settings.json) were chosen by the
repository, or written by a block: they may tighten anything, and loosen
only once the user approved the file's exact content (trust.py).
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from cellbox import safe_files
from cellbox.errors import ConfigError
from cellbox.languages import DEFAULT_EXECUTION_POLICIES, DEFAULT_KERNELS
from cellbox.settings import trust
from cellbox.settings.schema import Environment, SandboxConfig, loosens, refuse_outright, validate_overrides

log = logging.getLogger(__name__)

CONFIG_FILE = "cellbox.toml"
FILE_SIZE_LIMIT = 1 << 20
"""Largest settings file read from a workspace."""


@attrs.frozen
class WorkspaceFile:
    """A settings file in the workspace, as read for one request."""

    path: Path
    digest: str
    """SHA-256 of the bytes that were parsed: what an approval names."""
    approved: bool
    loosening: tuple[str, ...]
    """Its settings that loosen the sandbox, as `key = value` lines."""


@attrs.frozen
class ResolvedConfig:
    """A workspace's configuration, and what of it was left out for want of approval."""

    config: SandboxConfig
    files: tuple[WorkspaceFile, ...]
    """The workspace's settings files that exist."""
    ignored: tuple[str, ...]
    """Loosening settings left out, as `key = value (from SOURCE)`."""
    image_trusted: bool
    """False when the image was named by an unapproved workspace source: it is used
    if the engine has it, never pulled (a pull is traffic the name can steer)."""

    @property
    def unapproved(self) -> tuple[WorkspaceFile, ...]:
        """Files whose approval would apply settings now ignored."""
        return tuple(f for f in self.files if f.loosening and not f.approved)

    def ignored_message(self, workspace: Path) -> str:
        names = "; ".join(self.ignored)
        return (
            f"cellbox: settings that loosen the sandbox are ignored until you allow them: {names}. "
            f"Run `cellbox trust {workspace}` (or answer Allow in your editor) to allow this exact content; "
            "any later change to the file needs a new approval. Settings from your user config "
            "(~/.config/cellbox/config.toml) or your editor's user settings need none."
        )


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "cellbox" / "config.toml"


def _parse_toml(content: bytes, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read as TOML: {exc}") from None


def _read_user_config(workspace: Path) -> dict[str, Any]:
    path = user_config_path()
    if trust.inside(path, workspace):
        # The sandbox could write it: for this workspace it is no user's word.
        log.warning("ignoring %s: it lies inside the workspace %s", path, workspace)
        return {}
    try:
        # The user's own file: a link to their dotfiles is followed (where it
        # leads was checked above), but only a regular file is read.
        content = safe_files.read_named(path, FILE_SIZE_LIMIT)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, safe_files.RefusedFile) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return validate_overrides(_parse_toml(content, str(path)), str(path))


def _read_workspace_file(workspace: Path, name: str) -> tuple[bytes, dict[str, Any]] | None:
    try:
        content = safe_files.read_regular(workspace, name, FILE_SIZE_LIMIT)
    except safe_files.RefusedFile as exc:
        raise ConfigError(f"{workspace / name}: not read: {exc}. Replace it with a regular file.") from None
    except OSError as exc:
        raise ConfigError(f"{workspace / name}: cannot be read: {exc.strerror}") from None
    if content is None:
        return None
    return content, _parse_toml(content, str(workspace / name))


def resolve_config(
    workspace: Path,
    overrides: Mapping[str, Any] | None = None,
    workspace_settings: Mapping[str, Any] | None = None,
) -> ResolvedConfig:
    """The configuration of `workspace`, each source weighed by who chose it.

    Layers, later ones winning key by key: defaults, the user config, the
    workspace's `[tool.cellbox]`, its `cellbox.toml`, settings the client read
    from the workspace (`workspace_settings`), then the client's own
    `overrides` (already validated). Blocking (files): run it off the event loop.
    """
    # A partial policy (or kernel) table changes only the languages it names,
    # as in the seed, so tables from each source add up instead of replacing
    # each other.
    tables: dict[str, dict[str, Any]] = {
        "execution_policies": dict(DEFAULT_EXECUTION_POLICIES), "kernels": dict(DEFAULT_KERNELS),
    }

    def add_tables(settings: dict[str, Any]) -> None:
        for key, table in tables.items():
            table.update(settings.pop(key, {}))

    user = _read_user_config(workspace)
    refuse_outright(user, str(user_config_path()))
    add_tables(user)
    baseline = SandboxConfig(**user)
    merged: dict[str, Any] = dict(user)
    files: list[WorkspaceFile] = []
    ignored: list[str] = []
    image_trusted = True

    untrusted: list[tuple[str, dict[str, Any], WorkspaceFile | None]] = []
    for name in ("pyproject.toml", CONFIG_FILE):
        found = _read_workspace_file(workspace, name)
        if found is None:
            continue
        content, data = found
        path = workspace / name
        if name == "pyproject.toml":
            table = data.get("tool", {}).get("cellbox") if isinstance(data.get("tool"), dict) else None
            if table is None:
                continue
            source, data = f"{path} [tool.cellbox]", table
        else:
            source = str(path)
        settings = validate_overrides(data, source)
        refuse_outright(settings, source)
        content_digest = trust.digest(content)
        loosening = tuple(
            f"{key} = {_show(value)}" for key, value in settings.items() if loosens(key, value, baseline)
        )
        file = WorkspaceFile(
            path, content_digest, bool(loosening) and trust.is_approved(path, content_digest, workspace), loosening
        )
        files.append(file)
        untrusted.append((source, settings, file))
    if workspace_settings:
        settings = validate_overrides(workspace_settings, "workspace settings of the editor")
        refuse_outright(settings, "workspace settings of the editor")
        untrusted.append(("the editor's workspace settings", settings, None))

    for source, settings, from_file in untrusted:
        approved = from_file is not None and from_file.approved
        add_tables(settings)
        for key, value in settings.items():
            if not approved and loosens(key, value, baseline):
                ignored.append(f"{key} = {_show(value)} (from {source})")
                continue
            merged[key] = value
            if key == "image":
                image_trusted = approved or value == baseline.image

    client = dict(overrides or {})
    refuse_outright(client, "the client's settings")
    add_tables(client)
    if "image" in client:
        image_trusted = True
    merged.update(client)
    return ResolvedConfig(
        SandboxConfig(**{**merged, **tables}), tuple(files), tuple(ignored), image_trusted
    )


def load_config(workspace: Path, overrides: Mapping[str, Any] | None = None) -> SandboxConfig:
    """The workspace's configuration, unapproved loosening left out."""
    return resolve_config(workspace, overrides).config


def _show(value: Any) -> str:
    if isinstance(value, Environment):
        return value.describe()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)


def approval_question(resolved: ResolvedConfig, workspace: Path) -> str:
    """What an editor asks before applying a workspace file's loosening settings."""
    asks = "; ".join(f"{f.path.name}: " + ", ".join(f.loosening) for f in resolved.unapproved)
    return (
        f"cellbox: the settings of {workspace} loosen the sandbox ({asks}). Allow this exact content? "
        f"Until you do they are ignored; `cellbox trust {workspace}` allows them too. "
        "A later change to the file, by you or by code in the sandbox, needs a new approval."
    )


def trust_workspace(workspace: Path) -> tuple[WorkspaceFile, ...]:
    """Approve the current content of the workspace's settings files; the files approved."""
    if trust.inside(trust.store_folder(), workspace):
        raise ConfigError(
            f"cannot approve settings of {workspace}: the approvals folder {trust.store_folder()} lies inside it, "
            "where the sandbox could write approvals. Set XDG_DATA_HOME to a folder outside the workspace."
        )
    resolved = resolve_config(workspace)
    for file in resolved.files:
        trust.approve(file.path, file.digest)
    return resolved.files

