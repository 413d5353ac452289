"""Every setting of a workspace's sandbox: its default, the values it allows,
and whether a value loosens the sandbox.

TOML keys are snake_case, JSON keys camelCase; both spellings are accepted
everywhere. A bad value is a ConfigError that names the source, the key and
what is allowed. Some values are refused from every source (the host's
network, every capability); which of the others a source may set is for
sources.py to decide, by who chose it.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from cellbox.errors import ConfigError
from cellbox.languages import (
    DEFAULT_EXECUTION_POLICIES,
    DEFAULT_KERNELS,
    KERNEL_NAME,
    KNOWN_LANGUAGES,
    closest_language,
    normalize_language,
)
from cellbox.vocabulary import MIN_TIMEOUT_SECONDS

DEFAULT_IMAGE = "python:3-slim"


@attrs.frozen
class SandboxConfig:
    """How one workspace's sandbox is built and how its blocks run."""

    image: str = DEFAULT_IMAGE
    """Image of the sandbox container."""
    timeout: float = 60.0
    """Seconds a block may run before it is killed (>= 1)."""
    mode: str = "script"
    """"script": each block runs in a fresh process (the default); "session": blocks
    of a language with a kernel (see kernels) run in a Jupyter kernel per document
    (or per named session) that keeps their state between blocks."""
    kernels: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_KERNELS))
    """Per language, the Jupyter kernel in the image its blocks run in, in session
    mode: python = "python3" (ipykernel) unless changed; e.g. bash = "bash", r = "ir".
    A language with a kernel and no interpreter of cellbox's (r) runs in its kernel
    in either mode."""
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
    warm_python: bool = True
    """Start a script-mode Python block by forking the sandbox's warm interpreter
    (already started, so ~10 ms sooner) rather than as a new `python FILE`; the
    block's process is as fresh either way (see the README). false: always spawn."""
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
    environment: Environment | None = None
    """Packages declared for the workspace: the sandbox starts from an image
    built from `image` with them (sandbox/environment.py). From a workspace
    file it needs approval: building runs code, with the network."""


@attrs.frozen
class Environment:
    """The `[environment]` table: what a workspace's sandbox image adds to its base."""

    requirements: str | None = None
    """A requirements file, relative to the workspace."""
    packages: tuple[str, ...] = ()
    """pip requirement specifiers, e.g. "pandas==2.*"."""
    system: tuple[str, ...] = ()
    """Debian (apt) or Alpine (apk) packages, when the base image has one of them."""
    setup: tuple[str, ...] = ()
    """Shell commands run last, as root, in the image being built."""
    index_url: str | None = None
    """A package index other than PyPI (a mirror)."""
    find_links: str | None = None
    """A wheelhouse: a folder of the workspace, or a URL."""
    network: str = "default"
    """The build's network: the engine's "default", or "none" (an offline wheelhouse)."""

    def describe(self) -> str:
        """The declaration in one line, for messages and the approval question."""
        said = [
            f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}"
            for key, value in attrs.asdict(self).items() if value not in (None, (), "default")
        ]
        return "{ " + ", ".join(said) + " }"


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
    if key == "mode":
        if value not in ("script", "session"):
            raise ValueError(
                'must be "script" (a fresh process per block) or "session" (a kernel per document that keeps state)'
            )
        return value
    if key == "timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, at least {MIN_TIMEOUT_SECONDS}")
        if value < MIN_TIMEOUT_SECONDS:
            raise ValueError(f"must be at least {MIN_TIMEOUT_SECONDS} second (got {value})")
        return float(value)
    if key in ("auto_remove", "stop_container", "warm_python"):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if key == "environment":
        return _environment(value)
    if key == "kernels":
        if not isinstance(value, Mapping):
            raise ValueError('must be a table of language = "kernel name", e.g. { bash = "bash", r = "ir" }')
        kernels = {}
        for language, name in value.items():
            lang = normalize_language(str(language))
            if not re.fullmatch(r"[a-z][a-z0-9_+#-]*", lang):
                raise ValueError(f"has {language!r}, which is not a language name")
            if not isinstance(name, str) or not re.fullmatch(KERNEL_NAME, name):
                raise ValueError(
                    f"{language} must be the name of a Jupyter kernel in the image (letters, digits, . _ -), "
                    'as `jupyter kernelspec list` shows it, e.g. "python3" or "ir"'
                )
            kernels[lang] = name
        return kernels
    if key == "execution_policies":
        if not isinstance(value, Mapping):
            raise ValueError("must be a table of language = true/false")
        policies = {}
        for language, runs in value.items():
            lang = str(language).lower()
            if lang not in KNOWN_LANGUAGES:
                allowed = ", ".join(sorted(KNOWN_LANGUAGES))
                guess = closest_language(lang)
                hint = f" (did you mean {guess}?)" if guess else ""
                raise ValueError(f"unknown language {language!r}{hint}; known: {allowed}")
            if not isinstance(runs, bool):
                raise ValueError(f"{language} must be true or false")
            policies[lang] = runs
        return policies
    raise AssertionError(key)


_ENVIRONMENT_KEYS = {field.name for field in attrs.fields(Environment)}
_SHELL_WORDS = re.compile(r"[^\x00-\x1f]+")
"""A package name or command: printable, on one line (each becomes a RUN line of a Dockerfile)."""


def _environment(value: Any) -> Environment | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError('must be a table, e.g. [environment] packages = ["numpy"]')
    checked: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = _snake(str(raw_key))
        if key not in _ENVIRONMENT_KEYS:
            raise ValueError(f"has an unknown key {raw_key!r}; allowed: {', '.join(sorted(_ENVIRONMENT_KEYS))}")
        if key in ("packages", "system", "setup"):
            if not isinstance(item, list) or not all(isinstance(i, str) and _SHELL_WORDS.fullmatch(i) for i in item):
                raise ValueError(f"{raw_key} must be a list of strings, each on one line")
            checked[key] = tuple(item)
        elif key == "network":
            if item not in ("default", "none"):
                raise ValueError(f'{raw_key} must be "default" (the engine\'s build network) or "none"')
            checked[key] = item
        elif key in ("index_url",):
            if not isinstance(item, str) or not re.fullmatch(r"https?://\S+", item):
                raise ValueError(f"{raw_key} must be an http(s) URL")
            checked[key] = item
        else:  # requirements, find_links: a path in the workspace (find_links: or a URL)
            if not isinstance(item, str) or not _SHELL_WORDS.fullmatch(item) or not item.strip():
                raise ValueError(f"{raw_key} must be a path relative to the workspace")
            if key == "find_links" and re.match(r"https?://", item):
                checked[key] = item
                continue
            parts = item.replace("\\", "/").split("/")
            if item.startswith("/") or ".." in parts:
                raise ValueError(
                    f"{raw_key} must be a path inside the workspace (relative, no '..'): {item!r}; "
                    "files the environment names travel with its build"
                )
            checked[key] = "/".join(part for part in parts if part not in ("", "."))
    environment = Environment(**checked)
    if not (environment.requirements or environment.packages or environment.system or environment.setup):
        raise ValueError("declares nothing to install: give requirements, packages, system or setup")
    return environment


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
            raise ConfigError(f"{source}: unknown setting {key!r}{_did_you_mean(str(key))}; allowed: {allowed}")
        try:
            checked[name] = _check(name, value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key} {exc}") from None
    return checked


def _did_you_mean(key: str) -> str:
    """" (did you mean 'image'?)" for a misspelt key, in the key's own style
    (snake_case in TOML, camelCase in JSON); "" when no setting is close."""
    found = difflib.get_close_matches(_snake(key), list(_FIELDS), n=1, cutoff=0.7)
    if not found:
        return ""
    meant = found[0]
    if any(c.isupper() for c in key):
        head, *rest = meant.split("_")
        meant = head + "".join(part.title() for part in rest)
    return f" (did you mean {meant!r}?)"


REFUSED_NETWORKS = ("host",)
"""Network modes refused from every source: the host's own network stack."""
REFUSED_NETWORK_PREFIXES = ("container:",)
"""...and joining another container's network stack."""


_RAISED_IS_LOOSER = (
    "memory", "cpus", "pids_limit", "open_files", "max_file_size", "tmp_size", "output_limit", "copy_size_limit",
)
_CHANGED_IS_LOOSER = ("user", "runtime", "bind_dir", "workspace_mount", "container_name")


def loosens(key: str, value: Any, baseline: SandboxConfig) -> bool:
    """Whether setting `key` to `value` weakens the sandbox compared with `baseline`.

    Keys not named here (image, timeout, env, execution policies, auto_remove,
    stop_container) change nothing about what a block can reach; an image is
    still never pulled on an unapproved file's word (ResolvedConfig.image_trusted).
    An environment other than the baseline's is built by running its commands
    (as root, with the network): a loosening.
    """
    current = getattr(baseline, key)
    if key == "environment":
        return value is not None and value != current
    if key == "network":
        return value != "none" and value != current
    if key in _RAISED_IS_LOOSER:
        return value > current
    if key in _CHANGED_IS_LOOSER:
        return value != current
    if key in ("no_new_privileges", "read_only"):
        return current and not value
    if key == "cap_add":
        return not set(value) <= set(current)
    return False


def refuse_outright(settings: Mapping[str, Any], source: str) -> None:
    """ConfigError for values no source may set, trusted or not: the host's
    or another container's network stack, every capability."""
    network = settings.get("network")
    if isinstance(network, str) and (network in REFUSED_NETWORKS or network.startswith(REFUSED_NETWORK_PREFIXES)):
        raise ConfigError(
            f"{source}: network = {network!r} is refused: it gives the sandbox the host's or another "
            'container\'s network stack. Use "none" (the default), "bridge" or a network of your own.'
        )
    if "ALL" in settings.get("cap_add", ()):
        raise ConfigError(
            f'{source}: cap_add = ["ALL"] is refused: that is a privileged container. Name the capabilities you need.'
        )

