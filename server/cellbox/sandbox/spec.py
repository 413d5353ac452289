"""What a workspace's container is made from: its name, the uid:gid its blocks
run as, and its ContainerSpec, whose fingerprint label makes a container built
from other settings (or another runner) stale. Pure: no engine calls."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import attrs

from cellbox.container import scripts as container_scripts
from cellbox.container.ship import runner_program
from cellbox.engine.protocol import ContainerInfo, ContainerSpec
from cellbox.sandbox import state
from cellbox.settings.schema import SandboxConfig
from cellbox.vocabulary import LABEL_SPEC, LABEL_WORKSPACE

SANDBOX_MAIN = container_scripts.sandbox_main_argv(runner_program())
COPY_MAIN = container_scripts.copy_main_argv()
_MAIN_DIGESTS = {
    tuple(main): hashlib.sha256("\0".join(main).encode()).hexdigest() for main in (SANDBOX_MAIN, COPY_MAIN)
}


def container_name_for(workspace: Path) -> str:
    """A readable, deterministic name: the folder's name plus a hash of its full path."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", workspace.name.lower()).strip("-.")[:30] or "workspace"
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:10]
    return f"cellbox-{slug}-{digest}"


def container_name(workspace: Path, config: SandboxConfig) -> str:
    return config.container_name or container_name_for(workspace)


def user_for(workspace: Path, config: SandboxConfig) -> str:
    """uid:gid blocks run as: by default whoever owns the workspace, so the
    files they make there are that person's, not root's."""
    if config.user != "auto":
        return config.user if ":" in config.user else f"{config.user}:{config.user}"
    owner = workspace.stat()
    return f"{owner.st_uid}:{owner.st_gid}"


def owner_for(workspace: Path, config: SandboxConfig) -> tuple[int, int]:
    """The (uid, gid) that files the daemon writes for blocks get."""
    uid, _, gid = user_for(workspace, config).partition(":")
    return int(uid), int(gid)


def is_ours(info: ContainerInfo, workspace: Path) -> bool:
    return info.labels.get(LABEL_WORKSPACE) == str(workspace)


def _user_site(config: SandboxConfig) -> dict[str, str]:
    """`pip install x` in a block installs into the workspace's user site
    (PYTHONUSERBASE, a folder of the daemon's), which the next blocks see,
    even on a PEP 668 image (Debian's Python refuses a system-wide install).
    With no network, pip fails at once instead of retrying for seconds."""
    found = {
        "PYTHONUSERBASE": container_scripts.PACKAGES_DIR, "PIP_USER": "1", "PIP_BREAK_SYSTEM_PACKAGES": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if config.network == "none":
        found["PIP_RETRIES"] = "0"
    return found


def build_spec(
    workspace: Path, config: SandboxConfig, workspace_state: state.WorkspaceState, copy: bool, bind_source: str
) -> ContainerSpec:
    """The container for `workspace` in copy or bind mode (`bind_source` is
    what the engine mounts at /workspace), labelled with its fingerprint."""
    read_only: tuple[tuple[str, str], ...] = ()
    vcs = state.vcs_folders(workspace) if not copy else []
    if not copy:
        read_only = (
            (str(workspace_state.blocks), container_scripts.BLOCKS_DIR),
            (str(workspace_state.run), container_scripts.RUN_DIR),
            *((f"{bind_source}/{name}", f"/workspace/{name}") for name in vcs),
        )
    spec = ContainerSpec(
        name=container_name(workspace, config),
        image=config.image,
        main=COPY_MAIN if copy else SANDBOX_MAIN,
        workspace_mount="copy" if copy else "bind",
        bind_source="" if copy else bind_source,
        read_only_binds=read_only,
        writable_binds=() if copy else (
            (str(workspace_state.kernels), container_scripts.KERNELS_DIR),
            (str(workspace_state.packages), container_scripts.PACKAGES_DIR),
        ),
        volumes=(container_scripts.BLOCKS_DIR,) if copy else (),
        network=config.network,
        auto_remove=config.auto_remove,
        labels={LABEL_WORKSPACE: str(workspace)},
        user=user_for(workspace, config),
        # HOME: the image's /root or / is read-only or not ours; tools
        # such as pip want a writable home. PYTHONUNBUFFERED: a block's
        # stdout is a pipe, so Python would hold a plain print() until it
        # exits; the user should see it when it is printed.
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1", **({} if copy else _user_site(config)), **config.env},
        memory=config.memory,
        cpus=config.cpus,
        pids_limit=config.pids_limit,
        open_files=config.open_files,
        max_file_size=config.max_file_size,
        tmp_size=config.tmp_size,
        read_only=config.read_only,
        cap_add=config.cap_add,
        no_new_privileges=config.no_new_privileges,
        runtime=config.runtime,
    )
    # Anything in the spec that changes makes the existing container stale,
    # the runner's own source included (by its digest, computed once: this
    # runs on every execute), so an upgraded cellbox replaces it.
    fields = attrs.astuple(attrs.evolve(spec, main=[_MAIN_DIGESTS[tuple(spec.main)]]))
    # So do the very folders it binds. The engine binds what a path names
    # when the container starts, and the container keeps that folder while it
    # runs: a workspace removed and made again at the same path (a test
    # fixture's) left blocks in the removed, empty folder, and the daemon's
    # own folders made again left the runner reading a token no daemon wrote
    # (a new client waited 30 s). By device:inode, which tells them apart
    # while it matters: the running container holds the old folder, so no
    # folder made since has its inode number. Copy mode binds nothing.
    bound = () if copy else (
        state.identity(workspace),
        *(state.identity(workspace / name, follow=False) for name in vcs),
        *workspace_state.bound(),
    )
    fingerprint = hashlib.sha256(repr((fields, bound)).encode()).hexdigest()[:16]
    return attrs.evolve(spec, labels={**spec.labels, LABEL_SPEC: fingerprint})


def made_from(info: ContainerInfo, spec: ContainerSpec) -> bool:
    """Whether the container was made from this very spec (else it is stale)."""
    return info.labels.get(LABEL_SPEC) == spec.labels[LABEL_SPEC]
