"""Where the Docker engine is, as the docker CLI would pick it: DOCKER_HOST,
DOCKER_CONTEXT, the current context of the Docker config, or the local socket."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import attrs
import docker.tls

from cellbox.errors import EngineUnavailable


@attrs.frozen
class EngineLocation:
    """Which engine the standard Docker client configuration points at, and why."""

    url: str | None
    """None: the SDK's own default (the local socket, or DOCKER_HOST with its TLS variables)."""
    source: str
    """Where the address came from, for error messages."""
    tls: Any = None
    context: str | None = None

    def describe(self) -> str:
        return f"{self.url} ({self.source})" if self.url else self.source


def locate_engine() -> EngineLocation:
    """The engine as the docker CLI would pick it: DOCKER_HOST, else the context
    named by DOCKER_CONTEXT, else the current context of the Docker config file
    (~/.docker/config.json, or $DOCKER_CONFIG), else the local socket.

    docker.from_env() reads DOCKER_HOST only, so the contexts are resolved here.
    """
    if host := os.environ.get("DOCKER_HOST"):
        return EngineLocation(None, f"{host} (from DOCKER_HOST)")
    if name := os.environ.get("DOCKER_CONTEXT"):
        source = f"Docker context {name!r}, from DOCKER_CONTEXT"
    else:
        from docker.context.config import get_current_context_name

        name = get_current_context_name()
        source = f"current Docker context {name!r}, from {_docker_config_file()}"
    if name == "default":
        return EngineLocation(None, "unix:///var/run/docker.sock (the default; DOCKER_HOST is not set)")
    try:
        host, tls = _read_context(name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineUnavailable(
            f"The {source} cannot be read ({exc}); see `docker context ls`, or set DOCKER_HOST."
        ) from None
    return EngineLocation(host, source, tls=tls, context=name)


def _read_context(name: str) -> tuple[str, Any]:
    """The Docker endpoint and TLS settings of a context, read where the docker
    CLI keeps them: $DOCKER_CONFIG (else ~/.docker)/contexts/meta/<sha256 of
    the name>/meta.json, and its certificates under contexts/tls/.

    Not docker.context.ContextAPI: it looks for the contexts next to the
    config.json it finds, so with DOCKER_CONFIG set but no config.json there
    (a fresh `docker --config DIR context create`), it reads another folder's.
    """
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir / "contexts" / "meta" / context_id / "meta.json"
    if not meta_file.exists():
        raise ValueError(f"no context named {name!r} in {config_dir / 'contexts'}")
    endpoint = json.loads(meta_file.read_text())["Endpoints"]["docker"]
    host = endpoint.get("Host")
    if not host:
        raise ValueError(f"the context {name!r} names no Docker endpoint")
    tls_dir = config_dir / "contexts" / "tls" / context_id / "docker"
    if not tls_dir.is_dir():
        return host, False
    files = {f: str(tls_dir / f"{f}.pem") for f in ("ca", "cert", "key") if (tls_dir / f"{f}.pem").exists()}
    return host, docker.tls.TLSConfig(
        client_cert=(files["cert"], files["key"]) if "cert" in files and "key" in files else None,
        ca_cert=files.get("ca"),
        verify=not endpoint.get("SkipTLSVerify", False) and "ca" in files,
    )


def engine_address() -> str:
    """Where cellbox looks for the engine, for error messages."""
    try:
        return locate_engine().describe()
    except EngineUnavailable as exc:
        return str(exc)


def _docker_config_file() -> str:
    from docker.utils.config import find_config_file

    found = find_config_file()
    return str(found) if found else "~/.docker/config.json (absent)"


def ssh_needs_client_binary(url: str | None) -> bool:
    # The SDK speaks ssh:// through paramiko, which cellbox does not depend
    # on; without it, shell out to the `ssh` binary (it honours ~/.ssh/config).
    if not (url or os.environ.get("DOCKER_HOST", "")).startswith("ssh://"):
        return False
    return importlib.util.find_spec("paramiko") is None
