"""How a ContainerSpec becomes arguments of Docker's create(), and how the
engine's refusals are read: what mounts, limits and isolation a sandbox is
given, and which hints its errors carry."""

from __future__ import annotations

from typing import Any

import docker.types

from cellbox.engine.protocol import ContainerInfo, ContainerSpec

PODMAN_NPROC = 32768
"""RLIMIT_NPROC cellbox asks Podman for (see ulimits); the smallest common pid_max."""


def create_arguments(spec: ContainerSpec, podman: bool) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for `spec`."""
    return dict(
        image=spec.image,
        name=spec.name,
        entrypoint=spec.main,
        command=[],
        init=True,
        # The main process only announces its runner on stdout; no need
        # to keep a log of it on the engine's disk.
        log_config=docker.types.LogConfig(type=docker.types.LogConfig.types.NONE),
        labels=dict(spec.labels),
        **_workspace_mounts(spec),
        working_dir="/workspace",
        network_mode=spec.network,
        auto_remove=spec.auto_remove,
        user=spec.user,
        environment=dict(spec.env),
        # Limits and isolation; the engine's default seccomp profile
        # stays on because nothing here asks for another.
        mem_limit=spec.memory,
        memswap_limit=spec.memory,  # the same figure: no swap beyond the limit
        nano_cpus=int(spec.cpus * 1e9),
        pids_limit=spec.pids_limit,
        ulimits=ulimits(spec, podman),
        read_only=spec.read_only,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmp_size}"},
        cap_drop=["ALL"],
        cap_add=list(spec.cap_add) or None,
        security_opt=["no-new-privileges:true"] if spec.no_new_privileges else None,
        runtime=spec.runtime,
    )


def ulimits(spec: ContainerSpec, podman: bool) -> list[docker.types.Ulimit]:
    limits = [
        docker.types.Ulimit(name="nofile", soft=spec.open_files, hard=spec.open_files),
        docker.types.Ulimit(name="fsize", soft=spec.max_file_size, hard=spec.max_file_size),
    ]
    if podman:
        # Podman (as root) gives every container RLIMIT_NPROC = 1048576
        # unless the client names one; Docker sets none. Raising a limit
        # past the engine's own hard limit needs CAP_SYS_RESOURCE, which
        # root does not have everywhere (nested containers, some VMs), and
        # then every start fails. containers.conf's default_ulimits cannot
        # help: Podman drops them once a client names any ulimit, as
        # cellbox does. What bounds a sandbox's processes is pids_limit;
        # this only has to stay out of the way.
        limits.append(docker.types.Ulimit(name="nproc", soft=PODMAN_NPROC, hard=PODMAN_NPROC))
    return limits


def _workspace_mounts(spec: ContainerSpec) -> dict[str, Any]:
    """The create() arguments that put the workspace at /workspace."""
    if spec.workspace_mount == "copy":
        # An anonymous volume: writable under a read-only root filesystem,
        # reachable by the archive API (a tmpfs is not: the engine copies
        # through its own view of the container's mounts), removed with the
        # container.
        targets = ("/workspace", *spec.volumes)
        return {"mounts": [docker.types.Mount(target, None, type="volume") for target in targets]}
    # Binds (HostConfig.Binds). Docker creates a missing source folder on its
    # own host, so a remote Docker engine shows an empty folder there: the
    # sandbox sees that the probe it wrote does not appear and falls back to
    # copy mode. Podman refuses a missing source instead (BindSourceMissing).
    # The engine orders mounts by depth, so /workspace/.git lands on /workspace.
    binds = {spec.bind_source: {"bind": "/workspace", "mode": "rw"}}
    for source, target in spec.read_only_binds:
        binds[source] = {"bind": target, "mode": "ro"}
    for source, target in spec.writable_binds:
        binds[source] = {"bind": target, "mode": "rw"}
    return {"volumes": binds}


def says_path_missing(reason: str, path: str) -> bool:
    # Docker: 'invalid mount config for type "bind": bind source path does not exist: PATH';
    # Podman: 'statfs PATH: no such file or directory'.
    lowered = reason.lower()
    return "bind source path does not exist" in lowered or (path in reason and "no such file or directory" in lowered)


def start_hint(reason: str) -> str:
    if "error setting rlimit" in reason:
        # Podman (as root) gives every container nofile and nproc limits of
        # 1048576 unless told otherwise; raising a limit above the engine's own
        # hard limit needs CAP_SYS_RESOURCE, which some hosts (containers, some
        # VMs) do not give even to root.
        return (
            ". The engine could not apply a resource limit (rlimit): it runs without CAP_SYS_RESOURCE "
            "and was asked for more than its own hard limit (see docs/engines.md). Lower "
            "open_files, or run the engine with CAP_SYS_RESOURCE."
        )
    return ""


def info_of(container: Any) -> ContainerInfo:
    image = container.attrs.get("Config", {}).get("Image") or ""
    # Podman stores the name it resolved ("localhost/x:tag" for a local
    # image, "docker.io/library/x:tag" for a pulled one); report the name as
    # it is configured, as Docker does.
    for prefix in ("localhost/", "docker.io/library/"):
        image = image.removeprefix(prefix)
    return ContainerInfo(
        id=container.id,
        name=container.name,
        state=container.status,
        image=image,
        labels=dict(container.labels or {}),
    )
