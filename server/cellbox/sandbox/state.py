"""The daemon's own folder for one workspace, outside the workspace.

Everything in the workspace may be rewritten by a block, so nothing the daemon
depends on lives there:

    $XDG_STATE_HOME/cellbox/workspaces/<name>-<hash>/   (0700, the daemon's)
        blocks/   the blocks the user did not name; read-only at /cellbox/blocks
        run/      the runner's socket and one-shot token, python/cellbox_figures.py
                  (script runs' matplotlib backend) and cellbox_kernel_launch.py
                  (sessions' kernel starter); read-only at /cellbox/run
        view/     where the workspace is bind-mounted nosuid,nodev for the engine
        kernels/  one folder per session kernel, for its sockets (the kernel binds
                  them); read-write at /cellbox/kernels. The daemon opens
                  nothing there by name: see sandbox/sessions.py
        packages/ the Python user site (`pip install` in a block), the sandbox
                  user's; read-write at /cellbox/packages. The daemon opens
                  nothing in it
        environment.log, environment.json  the last environment build's log,
                  and the environment image in use (sandbox/environment.py)
        outputs/  rich outputs (plots, tables) saved as files; not in the sandbox

If the state folder itself lies inside the workspace (a workspace that is the
home folder), the user's private runtime folder is used instead. Removed while
a daemon runs (a test wiping its home), it is made again before the next run
(`intact`), and the container, which binds the removed folders, is replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import attrs

from cellbox import project, safe_files
from cellbox.container import ship
from cellbox.sandbox.prepare import VCS_FOLDERS
from cellbox.settings import trust

log = logging.getLogger(__name__)


_MS_BIND = 0x1000
_MS_REMOUNT = 0x20
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)


def state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def workspaces_root() -> Path:
    """Where the workspaces' state folders are (but a workspace holding this very folder's)."""
    return state_home() / "cellbox" / "workspaces"


@attrs.frozen
class WorkspaceState:
    root: Path
    blocks: Path
    run: Path
    view: Path
    kernels: Path
    made: tuple[str, ...] = ()
    """bound() as this daemon made or found the folders."""

    @property
    def packages(self) -> Path:
        """The workspace's Python user site (PYTHONUSERBASE): what `pip install`
        in a block puts there stays for the next blocks and containers."""
        return self.root / "packages"

    def give_packages(self, owner: tuple[int, int] | None) -> None:
        """Make `packages` the sandbox user's (a block writes it), through its own handle. Blocking."""
        fd = os.open(self.packages, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            safe_files.hand_over(fd, owner)
        finally:
            os.close(fd)

    @property
    def environment_log(self) -> Path:
        """The last environment build's log (sandbox/environment.py), for the user to open."""
        return self.root / "environment.log"

    @property
    def outputs(self) -> Path:
        """Rich outputs saved for clients that cannot render them (sandbox/displays.py); made when first used."""
        return self.root / "outputs"

    @classmethod
    def of(cls, workspace: Path) -> WorkspaceState:
        """The folder of `workspace`, made if missing, refused if not the daemon's own."""
        base = state_home() / "cellbox"
        if trust.inside(base, workspace):
            base = project.runtime_folder() / "state"
        digest = hashlib.sha256(os.fsencode(workspace)).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", workspace.name)[:24] or "root"
        root = base / "workspaces" / f"{name}-{digest}"
        state = cls(root, root / "blocks", root / "run", root / "view", root / "kernels")
        state._make()
        return attrs.evolve(state, made=state.bound())

    def bound(self) -> tuple[str, ...]:
        """device:inode (see identity) of the folders bound into the sandbox."""
        return tuple(
            identity(folder, follow=False) for folder in (self.blocks, self.run, self.kernels, self.packages)
        )

    @property
    def intact(self) -> bool:
        """Whether these are still the folders this daemon made or found (not
        removed, nor made again by someone else)."""
        return self.bound() == self.made

    def _make(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.root.lstat()
        if info.st_uid != os.geteuid() or not self.root.is_dir() or self.root.is_symlink():
            raise OSError(errno.EPERM, f"{self.root} is not a folder of this user")
        os.chmod(self.root, 0o700)
        # The container's user must read blocks and reach the socket; the
        # 0700 folder above keeps other users of this machine out.
        for folder in (self.blocks, self.run, self.view, self.kernels, self.packages):
            folder.mkdir(mode=0o755, exist_ok=True)
        # Script runs' matplotlib backend (container/figures.py): the runner
        # puts run/python on their PYTHONPATH.
        safe_files.write_regular(self.run, f"python/{ship.FIGURES_MODULE}.py", ship.figures_source().encode())
        # Sessions start their kernels by kernelspec name with it.
        safe_files.write_regular(self.run, ship.KERNEL_LAUNCHER, ship.kernel_launcher_source().encode())
        # The runner's warm Python interpreter (container/zygote.py).
        safe_files.write_regular(self.run, ship.ZYGOTE, ship.zygote_source().encode())


def can_mount() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def nosuid_view(workspace: Path, view: Path) -> Iterator[bool]:
    """While the engine starts a container: `view` shows `workspace` through a
    bind mount with nosuid,nodev, which the container's own bind inherits. A
    block running as root could otherwise leave a setuid-root program in the
    workspace for any user of the host to run. Yields whether it worked
    (it needs root; without it the workspace is mounted as it is)."""
    mounted = False
    if can_mount():
        _unmount(view)  # left by a daemon that died here
        mounted = _mount(str(workspace), str(view), _MS_BIND) and _mount(
            "", str(view), _MS_BIND | _MS_REMOUNT | _MS_NOSUID | _MS_NODEV
        )
        if not mounted:
            _unmount(view)
    try:
        yield mounted
    finally:
        if mounted:
            # The container keeps its own copy of the mount; the view is
            # needed again only for the next start.
            _unmount(view)


def _mount(source: str, target: str, flags: int) -> bool:
    if _libc.mount(source.encode() or None, target.encode(), None, flags, None) == 0:
        return True
    log.warning("cannot mount %s at %s: %s", source or "(remount)", target, os.strerror(ctypes.get_errno()))
    return False


def _unmount(target: Path) -> None:
    while _libc.umount2(str(target).encode(), _MNT_DETACH) == 0:
        pass  # mounted more than once (a crash between two starts): peel them all


def identity(path: Path, follow: bool = True) -> str:
    """device:inode of `path`, as `stat -c %d:%i` prints them inside the
    container; "" when there is nothing there. With `follow` false a symlink
    is not followed (it names the link itself)."""
    try:
        info = os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        return ""
    return f"{info.st_dev}:{info.st_ino}"


def vcs_folders(workspace: Path) -> list[str]:
    """The workspace's VCS metadata that exists as a real folder or file (a
    git worktree's `.git` is a file), never through a symlink."""
    found = []
    for name in VCS_FOLDERS:
        try:
            mode = (workspace / name).lstat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):  # a symlink is neither
            found.append(name)
    return found


_nosuid_works: bool | None = None


def nosuid_supported(workspace_state: WorkspaceState) -> bool:
    """Whether this daemon can make nosuid views (tried once, on a folder of its own)."""
    global _nosuid_works
    if _nosuid_works is None:
        if not can_mount():
            log.warning(
                "not running as root: the workspace is mounted without nosuid,nodev (blocks run as "
                "the workspace's owner, so a setuid file they make grants no more than that user has)"
            )
            _nosuid_works = False
        else:
            probe = workspace_state.view
            with nosuid_view(workspace_state.blocks, probe) as mounted:
                _nosuid_works = mounted
    return _nosuid_works
