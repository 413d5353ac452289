"""Small questions to the Docker engine and how its answers are read: is it
Podman, is a container's name free yet, is a container this workspace's, and
its refusals in words a user can act on."""

from __future__ import annotations

import errno
import re
import time
from typing import Any

import docker
import docker.errors

from cellbox.engine.location import engine_address
from cellbox.engine.protocol import ForeignContainer
from cellbox.errors import EngineUnavailable

EXEC_START_FAILED = 126
"""An exec's exit code when the runtime could not start its command at all."""
RUNTIME_SAYS_STOPPED = b"cannot exec in a stopped state"
"""What runc answers an exec into a container whose main process is gone."""


def never_started(api: Any, container_id: str, exit_code: int | None, runtime_output: bytes | None = None) -> bool:
    """Whether an exec that ended with `exit_code` never ran its command
    because the container had stopped under it: taken by auto-removal just
    after a restart (seen in copy mode), or called running by the engine while
    its runtime says "cannot exec in a stopped state" (Docker 20.10 after a
    restart, seen once in CI). The exec's output counts only where it cannot
    be the command's own (`runtime_output`: given for our helpers, never for
    a block's)."""
    if exit_code != EXEC_START_FAILED:
        return False
    if runtime_output is not None and RUNTIME_SAYS_STOPPED in runtime_output:
        return True
    return not api.inspect_container(container_id)["State"]["Running"]


def is_podman(client: docker.DockerClient) -> bool:
    components = client.version().get("Components") or []
    return any("podman" in str(component.get("Name", "")).lower() for component in components)


def wait_until_gone(client: docker.DockerClient, name: str, seconds: float = 10.0) -> None:
    """Until the engine has let go of the name, so that creating it anew works.
    Not `wait(condition="removed")`: Podman's answers it while its clean-up
    still holds the name ("already in use"; seen once in three CI runs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.containers.get(name)
        except docker.errors.NotFound:
            return
        time.sleep(0.05)


def reason_of(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def engine_unavailable(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable(
        f"Cannot reach the Docker engine at {engine_address()}: {plain_reason(exc)}. "
        "Start it (e.g. `sudo systemctl start docker`, or `dockerd &` as root), "
        "or point DOCKER_HOST (or a Docker context) at a running engine."
    )


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)")
_IN_WORDS = {
    errno.ENOENT: "no socket or file there",
    errno.ECONNREFUSED: "nothing listens there (connection refused)",
    errno.EACCES: "permission denied (is your user allowed to use the engine, e.g. in the docker group?)",
    errno.ETIMEDOUT: "no answer in time",
    errno.EHOSTUNREACH: "the host cannot be reached",
}


def plain_reason(exc: BaseException) -> str:
    """Why a connection failed, in words ("nothing listens there"), from the
    nest of exceptions requests and docker wrap it in, whose text is a Python
    tuple such as ('Connection aborted.', FileNotFoundError(2, '...'))."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.errno, int):
            return _IN_WORDS.get(current.errno, current.strerror or str(current))
        if isinstance(current, TimeoutError) or "timed out" in type(current).__name__.lower():
            return _IN_WORDS[errno.ETIMEDOUT]
        pending.extend([*current.args, current.__cause__, current.__context__])
        pending.extend(getattr(current, attribute, None) for attribute in ("reason", "original_error"))
    text = str(exc).removeprefix("Error while fetching server API version: ")
    if match := _ERRNO_TEXT.search(text):
        return match.group(1).strip()
    if "timed out" in text.lower():
        return _IN_WORDS[errno.ETIMEDOUT]
    return text


def get_labelled(client: docker.DockerClient, name: str, label: tuple[str, str]) -> Any:
    """The container `name`, only if it carries `label`: the daemon never
    stops, restarts or removes a container that is not its workspace's."""
    container = client.containers.get(name)
    key, value = label
    if (container.labels or {}).get(key) != value:
        raise ForeignContainer(
            f"A container named {name!r} exists and is not the sandbox of {value}; cellbox leaves it alone. "
            "Remove it yourself, or choose another container_name."
        )
    return container


