"""Copy mode: the workspace reaches a sandbox through the engine's archive API.

When the engine cannot see the workspace's path (it runs on another machine),
the container gets a /workspace volume of its own instead of a bind mount.
This module owns keeping the two in step:

- which files go in: the workspace's files, `.gitignore` rules honoured (the
  root's and nested ones), `.git/` and `.cellbox/` never, within a size limit;
  plus the block files sandbox.py writes into `.cellbox/`;
- what the container was given, by size and mtime, so that before each run
  only what changed here goes in, and what was deleted here is deleted there;
- after each run, what the run created, changed or deleted (a stamp file that
  the run's wrapper touches, then `find -newer` in one quick exec), copied
  back into the workspace: regular files, folders and symlinks that stay
  inside it, never a path that climbs out or is absolute; when the daemon runs
  as root, owned by the user blocks run as (as sandbox.py's `_save` does).

Deletions go both ways, but a run's deletion only removes a local file still
as it was sent: a file edited here in the meantime is kept (and sent again).
Files a run makes are copied back even when `.gitignore` ignores them, as a
bind mount would show them. Only DockerBackend talks to the engine.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import shlex
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import attrs
import pathspec

from cellbox import container_scripts
from cellbox.backend import ArchiveTooLarge, DockerBackend
from cellbox.errors import SandboxFailed

log = logging.getLogger(__name__)

CONTAINER_ROOT = "/workspace"
ALWAYS_SKIPPED = (".git", ".cellbox")
"""Top-level folders never copied either way: the repository's history, and cellbox's own files."""
SIZE_LIMIT_KEY = "copy_size_limit"


@attrs.frozen
class FileState:
    """A local file as it was when the container last got it (or gave it back)."""

    size: int
    mtime_ns: int
    is_link: bool = False


@attrs.frozen
class RunChanges:
    """What a run did to the container's /workspace, from the listing after it."""

    changed: list[str]
    """Paths (relative, '/'-separated) newer than the run's stamp: files and folders."""
    present: set[str]
    """Every file and symlink there now."""
    stamp_found: bool


def state_of(stats: os.stat_result) -> FileState:
    return FileState(stats.st_size, stats.st_mtime_ns, stat.S_ISLNK(stats.st_mode))


def is_skipped(rel: str) -> bool:
    return rel.split("/", 1)[0] in ALWAYS_SKIPPED


class IgnoreRules:
    """The workspace's .gitignore files: the root's and every nested one, each
    applying below its own folder, the deepest match winning (as git does)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def _spec(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._specs:
            path = self._root / folder / ".gitignore" if folder else self._root / ".gitignore"
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                self._specs[folder] = pathspec.GitIgnoreSpec.from_lines(lines)
            except OSError:
                self._specs[folder] = None
        return self._specs[folder]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        decision = False
        for depth in range(len(parts)):
            spec = self._spec("/".join(parts[:depth]))
            if spec is None:
                continue
            below = "/".join(parts[depth:]) + ("/" if is_dir else "")
            verdict = spec.check_file(below).include
            if verdict is not None:
                decision = verdict
        return decision


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every file and symlink that copy mode sends,
    not descending into ignored or always-skipped folders."""
    rules = IgnoreRules(root)
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(root / folder if folder else root))
        except OSError as exc:
            log.info("copy mode: cannot list %s: %s", folder or ".", exc)
            continue
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if is_skipped(rel):
                continue
            try:
                stats = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(stats.st_mode):
                if not rules.ignored(rel, is_dir=True):
                    pending.append(rel)
            elif (stat.S_ISREG(stats.st_mode) or stat.S_ISLNK(stats.st_mode)) and not rules.ignored(rel, is_dir=False):
                yield rel, stats


def build_tar(root: Path, paths: Iterable[str], owner: tuple[int, int]) -> bytes:
    """A tar of `paths` (relative to `root`) and every folder above them, all
    owned by `owner` (the sandbox's uid:gid) so that blocks can change them."""
    buffer = io.BytesIO()
    folders_done: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders_done:
                    folders_done.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    _own(info, owner, (root / folder).stat().st_mtime)
                    tar.addfile(info)
            path = root / rel
            stats = path.lstat()
            info = tarfile.TarInfo(rel)
            _own(info, owner, stats.st_mtime)
            if stat.S_ISLNK(stats.st_mode):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
                tar.addfile(info)
            else:
                info.mode = stats.st_mode & 0o777
                info.size = stats.st_size
                with path.open("rb") as data:
                    tar.addfile(info, data)
    return buffer.getvalue()


def _own(info: tarfile.TarInfo, owner: tuple[int, int], mtime: float) -> None:
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    info.mtime = mtime


def parse_listing(output: bytes) -> RunChanges:
    """Read what container_scripts.COPY_LIST printed: NUL-separated paths
    ("./a/b"), the changed ones, an empty entry, then every file present,
    then "stamp" or "nostamp"."""
    entries = output.split(b"\0")
    try:
        split = entries.index(b"")
    except ValueError:
        split = len(entries)
    changed = [_relative(e) for e in entries[:split]]
    rest = entries[split + 1:]
    stamp_found = bool(rest) and rest[-1].strip() == b"stamp"
    present = {_relative(e) for e in rest[:-1] if e}
    return RunChanges([c for c in changed if c], {p for p in present if p}, stamp_found)


def _relative(entry: bytes) -> str:
    path = entry.decode("utf-8", "surrogateescape")
    return path[2:] if path.startswith("./") else ("" if path == "." else path)


def topmost(paths: Iterable[str]) -> list[str]:
    """The paths that are not inside another one of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(parent + "/") for parent in kept):
            kept.append(path)
    return kept


class WorkspaceSync:
    """Keeps one copy-mode container's /workspace in step with the workspace."""

    def __init__(
        self,
        backend: DockerBackend,
        container_id: str,
        workspace: Path,
        owner: tuple[int, int],
        size_limit: int,
    ) -> None:
        self.container_id = container_id
        self._backend = backend
        self._root = workspace
        self._owner = owner
        self.size_limit = size_limit
        self._sent: dict[str, FileState] = {}
        """Relative path -> the local file's state when the container last had the same content."""
        self._prepared = False

    async def prepare(self) -> None:
        """Make the fresh volume at /workspace writable by the sandbox's user.

        A new volume's root belongs to root, and every capability is dropped,
        so root in the container cannot chown it; as its owner it can still
        chmod it. Only the volume's root is concerned: what we copy in carries
        the sandbox user's ownership in the tar.
        """
        if self._prepared:
            return
        if self._owner != (0, 0):
            await self._backend.exec_capture(self.container_id, ["chmod", "0777", CONTAINER_ROOT], user="0")
        self._prepared = True

    # ----------------------------------------------------------- to the container

    async def push(self, extra: Iterable[str] = ()) -> None:
        """Send what changed here since the last push, and `extra` (the block's
        own file, wherever it is); delete there what was deleted here."""
        await self.prepare()
        current: dict[str, FileState] = {}
        total = 0
        for rel, stats in walk(self._root):
            current[rel] = state_of(stats)
            total += stats.st_size
        for rel in extra:
            try:
                current[rel] = state_of((self._root / rel).lstat())
            except OSError:
                continue
        # Files sent earlier but not walked now (ignored since, or given back
        # by a run in an ignored folder) count as long as they exist here.
        deleted: list[str] = []
        for rel in self._sent.keys() - current.keys():
            try:
                current[rel] = state_of((self._root / rel).lstat())
            except FileNotFoundError:
                deleted.append(rel)
            except OSError:
                continue
        if total > self.size_limit:
            raise SandboxFailed(
                f"The workspace {self._root} holds {_mb(total)} of files to copy into the sandbox "
                f"(after .gitignore), more than {SIZE_LIMIT_KEY} ({_mb(self.size_limit)}). Add large "
                f"folders to .gitignore, or raise {SIZE_LIMIT_KEY} in cellbox.toml."
            )
        changed = sorted(rel for rel, state in current.items() if self._sent.get(rel) != state)
        if deleted:
            quoted = " ".join(shlex.quote(rel) for rel in deleted)
            await self._backend.exec_capture(self.container_id, ["sh", "-c", f"rm -f -- {quoted}"])
            for rel in deleted:
                del self._sent[rel]
        if changed:
            await self._backend.put_archive(self.container_id, CONTAINER_ROOT, build_tar(self._root, changed, self._owner))
            for rel in changed:
                self._sent[rel] = current[rel]

    # --------------------------------------------------------- back from the container

    async def pull(self) -> str:
        """Copy back what the last run created or changed, and apply its
        deletions. Returns a note for the user when something was left out."""
        code, listing = await self._backend.exec_capture(
            self.container_id, ["sh", "-c", container_scripts.COPY_LIST, "cellbox-list", container_scripts.COPY_STAMP]
        )
        if code != 0:
            raise SandboxFailed(f"Could not list the sandbox's files after the run (exit code {code})")
        changes = parse_listing(listing)
        known_folders = {posixpath.dirname(rel) for rel in self._sent}
        wanted: list[str] = []
        for rel in changes.changed if changes.stamp_found else sorted(changes.present):
            if is_skipped(rel):
                continue
            if rel in changes.present or not _is_known_folder(rel, known_folders):
                wanted.append(rel)  # a file, or a folder that is new as a whole
        # A name not seen before is new even when its mtime is old (a file
        # renamed or moved by the run).
        wanted += [rel for rel in changes.present - self._sent.keys() if not is_skipped(rel)]
        budget = _Budget(self.size_limit)
        for rel in topmost(wanted):
            try:
                tar = await self._backend.get_archive(self.container_id, f"{CONTAINER_ROOT}/{rel}", budget.left)
            except ArchiveTooLarge:
                budget.skipped.append(rel)
                continue
            if tar is None:
                continue  # gone again before we asked
            self._apply(rel, tar, budget)
        for rel in self._sent.keys() - changes.present:
            if not is_skipped(rel):
                self._delete_if_unchanged(rel)
        if budget.skipped:
            return (
                f"\ncellbox: {len(budget.skipped)} file(s) made by the run were not copied back to the "
                f"workspace ({SIZE_LIMIT_KEY} is {_mb(self.size_limit)}): {', '.join(budget.skipped[:5])}\n"
            )
        return ""

    def _apply(self, rel: str, tar_bytes: bytes, budget: _Budget) -> None:
        """Unpack a tar the engine made of /workspace/REL into the workspace, safely."""
        base = posixpath.dirname(rel)
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                target = safe_relative(posixpath.join(base, member.name))
                if target is None or is_skipped(target):
                    log.warning("copy mode: not copying back %r: outside the workspace", member.name)
                    continue
                if not self._parent_inside(target):
                    log.warning("copy mode: not copying back %r: its folder leads outside the workspace", target)
                    continue
                if member.isdir():
                    self._make_folder(target)
                elif member.isreg():
                    if not budget.take(member.size, target):
                        continue
                    data = tar.extractfile(member)
                    assert data is not None
                    self._write_file(target, data, member)
                elif member.issym() and self._link_stays_inside(target, member.linkname):
                    self._write_link(target, member.linkname)
                else:
                    log.warning("copy mode: not copying back %r: not a file, folder or inner symlink", target)

    def _parent_inside(self, rel: str) -> bool:
        parent = (self._root / rel).parent
        real = Path(os.path.realpath(parent))
        return real == self._root or self._root in real.parents

    def _link_stays_inside(self, rel: str, link: str) -> bool:
        if posixpath.isabs(link):
            return False
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        return resolved != ".." and not resolved.startswith("../")

    def _make_folder(self, rel: str) -> None:
        path = self._root / rel
        if path.is_symlink():
            path.unlink()
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            self._give(path)

    def _write_file(self, rel: str, data: IO[bytes], member: tarfile.TarInfo) -> None:
        path = self._root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            log.warning("copy mode: not copying back %r over a folder", rel)
            return
        # Written beside it and renamed over it: never through a symlink that
        # sits at that name, and never half-written.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".cellbox-copy-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := data.read(1 << 20):
                    out.write(chunk)
            os.chmod(temporary, member.mode & 0o777)
            os.utime(temporary, (member.mtime, member.mtime))
            self._give(Path(temporary))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._sent[rel] = state_of(path.lstat())

    def _write_link(self, rel: str, link: str) -> None:
        path = self._root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            return
        temporary = path.with_name(f".cellbox-link-{os.getpid()}-{path.name}")
        with contextlib.suppress(OSError):
            temporary.unlink()
        os.symlink(link, temporary)
        if os.geteuid() == 0:
            os.lchown(temporary, *self._owner)
        os.replace(temporary, path)
        self._sent[rel] = state_of(path.lstat())

    def _delete_if_unchanged(self, rel: str) -> None:
        path = self._root / rel
        try:
            if state_of(path.lstat()) == self._sent[rel] and self._parent_inside(rel):
                path.unlink()
        except OSError:
            pass
        del self._sent[rel]

    def _give(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, *self._owner, follow_symlinks=False)


class _Budget:
    """Bytes a single pull may still copy back."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.skipped: list[str] = []

    def take(self, size: int, rel: str) -> bool:
        if size > self.left:
            self.skipped.append(rel)
            return False
        self.left -= size
        return True


def safe_relative(name: str) -> str | None:
    """`name` as a clean relative path inside the workspace, or None if it is
    absolute, climbs out with '..', or is the workspace itself."""
    if not name or name.startswith("/"):
        return None
    clean = posixpath.normpath(name)
    if clean in (".", "") or clean.startswith("../") or clean == ".." or posixpath.isabs(clean):
        return None
    return clean


def _is_known_folder(rel: str, known_folders: set[str]) -> bool:
    return any(folder == rel or folder.startswith(rel + "/") for folder in known_folders)


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"
