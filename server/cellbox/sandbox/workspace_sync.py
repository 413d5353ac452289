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

Everything in the workspace, and everything a run sends back, may be hostile,
so every path is opened through safe_files: resolved by the kernel beneath the
workspace (a link leading out is never followed), files read only while they
are regular and within a cap, files and links written in a handle on their
folder and renamed into place, modes stripped to 0o777 and owners and times
set on the new file's own handle. Symlinks are judged with every link on the
way followed, chains included: one leading out is not sent in, not copied
back, and after each pull every symlink copy mode knows of is judged again,
as a later link can change where an earlier one leads (`x -> .`, then
`u1 -> x/..`); those leading out are removed, and the block's output says so.
`.gitignore` files that are not regular files within IGNORE_FILE_LIMIT are
skipped with a warning.

Deletions go both ways, but a run's deletion only removes a local file still
as it was sent: a file edited here in the meantime is kept (and sent again).
Files a run makes are copied back even when `.gitignore` ignores them, as a
bind mount would show them. Only DockerBackend talks to the engine; the
filesystem work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import posixpath
import shlex
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import pathspec

from cellbox import safe_files
from cellbox.container import scripts as container_scripts
from cellbox.engine.docker import ArchiveTooLarge, DockerBackend
from cellbox.errors import SandboxFailed

log = logging.getLogger(__name__)

CONTAINER_ROOT = "/workspace"
ALWAYS_SKIPPED = (".git", ".cellbox")
"""Top-level folders never copied either way: the repository's history, and cellbox's own files."""
SIZE_LIMIT_KEY = "copy_size_limit"
IGNORE_FILE_LIMIT = 1 << 20
"""Most bytes of one .gitignore read (git's own are a few KiB); a larger one is skipped."""


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


class _Once:
    """Warnings said once per sync: a planted file would otherwise be logged before every run."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def warn(self, message: str) -> None:
        if message in self._said:
            log.debug("%s", message)
        else:
            self._said.add(message)
            log.warning("%s", message)


class IgnoreRules:
    """The workspace's .gitignore files: the root's and every nested one, each
    applying below its own folder, the deepest match winning (as git does).

    Each is read with safe_files (beneath the workspace, a regular file, at
    most IGNORE_FILE_LIMIT bytes). One that is not (a link leading out, a
    FIFO, a device, an oversized file) is skipped with a warning, and the run
    goes on without its rules: git does the same for a .gitignore it will not
    follow, and the rules keep nothing secret (a bind mount would show every
    file), they only keep copies small, and copy_size_limit still bounds them.
    Stopping every run instead would let a repository switch copy mode off."""

    def __init__(self, root: Path, warnings: _Once | None = None) -> None:
        self._root = root
        self._warnings = warnings or _Once()
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def _spec(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._specs:
            rel = f"{folder}/.gitignore" if folder else ".gitignore"
            spec = None
            try:
                data = safe_files.read_regular(self._root, rel, IGNORE_FILE_LIMIT)
            except safe_files.RefusedFile as exc:
                self._warnings.warn(f"copy mode: not reading {rel}: {exc}; its rules do not apply")
            except OSError as exc:
                log.info("copy mode: cannot read %s: %s", rel, exc)
            else:
                if data is not None:
                    spec = pathspec.GitIgnoreSpec.from_lines(data.decode("utf-8", "replace").splitlines())
            self._specs[folder] = spec
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


def walk(root: Path, warnings: _Once | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every file and symlink that copy mode sends,
    not descending into ignored or always-skipped folders, nor into symlinks:
    each folder is listed through a handle opened beneath the workspace."""
    rules = IgnoreRules(root, warnings)
    pending = [""]
    while pending:
        folder = pending.pop()
        entries: list[tuple[str, os.stat_result]] = []
        try:
            with safe_files.folder(root, folder) as folder_fd:
                for entry in os.scandir(folder_fd):
                    with contextlib.suppress(OSError):
                        entries.append((entry.name, entry.stat(follow_symlinks=False)))
        except (OSError, safe_files.RefusedFile) as exc:
            log.info("copy mode: cannot list %s: %s", folder or ".", exc)
            continue
        for name, stats in entries:
            rel = f"{folder}/{name}" if folder else name
            if is_skipped(rel):
                continue
            if stat.S_ISDIR(stats.st_mode):
                if not rules.ignored(rel, is_dir=True):
                    pending.append(rel)
            elif (stat.S_ISREG(stats.st_mode) or stat.S_ISLNK(stats.st_mode)) and not rules.ignored(rel, is_dir=False):
                yield rel, stats


@attrs.frozen
class Packed:
    """A tar for the container, and what went into it."""

    tar: bytes
    sent: list[str]
    """The paths in it."""
    refused: list[str]
    """Paths left out as they are not what copy mode sends (a symlink leading
    out, a file that is no longer a regular one); the log says which."""


def build_tar(
    root: Path, paths: Iterable[str], owner: tuple[int, int], max_bytes: int, warnings: _Once | None = None
) -> Packed:
    """A tar of `paths` (relative to `root`) and every folder above them, all
    owned by `owner` (the sandbox's uid:gid) so that blocks can change them.

    Nothing is read through a link leading out: each file is read with
    safe_files (beneath the workspace, and only while it is a regular file),
    a symlink goes in as a symlink only when it resolves inside the workspace
    once every link is followed, and a path under a folder that is a symlink
    here is left to that link. safe_files.TooLarge when the bytes actually
    read pass `max_bytes` (files can grow after they were listed)."""
    warnings = warnings or _Once()
    buffer = io.BytesIO()
    folders: dict[str, bool] = {}
    """Folder -> whether it is a real folder here (and so went into the tar)."""
    sent: list[str] = []
    refused: list[str] = []
    left = max_bytes
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            try:
                if not _add_folders_above(tar, root, rel, owner, folders):
                    log.debug("copy mode: not sending %s: a folder above it is a symlink here", rel)
                    continue
                stats = safe_files.lstat_beneath(root, rel)
                if stats is None:
                    continue  # gone since it was listed
                info = tarfile.TarInfo(rel)
                _own(info, owner, stats.st_mtime)
                if stat.S_ISLNK(stats.st_mode):
                    target = _read_link(root, rel)
                    if target is None or safe_files.resolve_beneath(root, rel) is None:
                        warnings.warn(f"copy mode: not sending {rel}: a symlink that leads outside the workspace")
                        refused.append(rel)
                        continue
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                    tar.addfile(info)
                else:
                    data = safe_files.read_regular(root, rel, left)
                    if data is None:
                        continue
                    left -= len(data)
                    info.mode = stats.st_mode & 0o777
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            except safe_files.TooLarge:
                raise
            except safe_files.RefusedFile as exc:
                warnings.warn(f"copy mode: not sending {rel}: {exc}")
                refused.append(rel)
                continue
            except OSError as exc:
                log.info("copy mode: cannot send %s: %s", rel, exc)
                continue
            sent.append(rel)
    return Packed(buffer.getvalue(), sent, refused)


def _add_folders_above(
    tar: tarfile.TarFile, root: Path, rel: str, owner: tuple[int, int], folders: dict[str, bool]
) -> bool:
    """Put the folders above `rel` in the tar (once each); False when one of
    them is not a real folder here (a symlink, or gone)."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if folder not in folders:
            stats = safe_files.lstat_beneath(root, folder)
            folders[folder] = stats is not None and stat.S_ISDIR(stats.st_mode)
            if folders[folder]:
                assert stats is not None
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                _own(info, owner, stats.st_mtime)
                tar.addfile(info)
        if not folders[folder]:
            return False
    return True


def _read_link(root: Path, rel: str) -> str | None:
    """What the symlink at workspace path `rel` says; None if it is no longer one."""
    parent, _, name = rel.rpartition("/")
    try:
        with safe_files.folder(root, parent) as folder_fd:
            return os.readlink(name, dir_fd=folder_fd)
    except OSError:
        return None


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
    """Keeps one copy-mode container's /workspace in step with the workspace.

    The engine calls are made on the event loop (DockerBackend's methods are
    async); every filesystem step (walking, reading, building and unpacking
    tars) runs in a worker thread, one at a time, awaited before the next
    engine call. Runs are serialised per workspace (sandbox.py), so a push and
    a pull never overlap and `_sent` is only touched by one step at a time."""

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
        self._kept_out: set[str] = set()
        """Symlinks the container has and the workspace does not, as they lead
        outside it: not fetched again until a run makes them anew."""
        self._warnings = _Once()
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
        plan = await asyncio.to_thread(self._plan_push, list(extra))
        if plan.deleted:
            quoted = " ".join(shlex.quote(rel) for rel in plan.deleted)
            await self._backend.exec_capture(self.container_id, ["sh", "-c", f"rm -f -- {quoted}"])
            for rel in plan.deleted:
                self._sent.pop(rel, None)
        if plan.packed is not None and plan.packed.sent:
            await self._backend.put_archive(self.container_id, CONTAINER_ROOT, plan.packed.tar)
            for rel in plan.packed.sent:
                self._sent[rel] = plan.current[rel]

    def _plan_push(self, extra: list[str]) -> _PushPlan:
        """What push sends and deletes (in a worker thread: it walks and reads the workspace)."""
        current: dict[str, FileState] = {}
        total = 0
        for rel, stats in walk(self._root, self._warnings):
            current[rel] = state_of(stats)
            total += stats.st_size
        # The block's own file, and files sent earlier but not walked now
        # (ignored since, or given back by a run in an ignored folder), count
        # as long as they exist here, inside the workspace.
        deleted: list[str] = []
        for rel in [*extra, *(self._sent.keys() - current.keys() - set(extra))]:
            try:
                stats = safe_files.lstat_beneath(self._root, rel)
            except (OSError, safe_files.RefusedFile):
                continue
            if stats is not None:
                current[rel] = state_of(stats)
            elif rel in self._sent:
                deleted.append(rel)
        if total > self.size_limit:
            raise self._too_large(
                f"The workspace {self._root} holds {_mb(total)} of files to copy into the sandbox "
                f"(after .gitignore), more than {SIZE_LIMIT_KEY} ({_mb(self.size_limit)})."
            )
        changed = sorted(rel for rel, state in current.items() if self._sent.get(rel) != state)
        if not changed:
            return _PushPlan(deleted, current, None)
        try:
            packed = build_tar(self._root, changed, self._owner, self.size_limit, self._warnings)
        except safe_files.TooLarge:
            raise self._too_large(
                f"The files to copy from the workspace {self._root} into the sandbox grew past "
                f"{SIZE_LIMIT_KEY} ({_mb(self.size_limit)}) while they were read."
            ) from None
        # A path sent before and refused now (a symlink that leads out since,
        # a file that became a FIFO) is no longer what the container has.
        deleted += [rel for rel in packed.refused if rel in self._sent]
        return _PushPlan(deleted, current, packed)

    @staticmethod
    def _too_large(what: str) -> SandboxFailed:
        return SandboxFailed(f"{what} Add large folders to .gitignore, or raise {SIZE_LIMIT_KEY} in cellbox.toml.")

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
        self._kept_out = {rel for rel in self._kept_out & changes.present if rel not in self._sent}
        known_folders = {posixpath.dirname(rel) for rel in self._sent}
        wanted: list[str] = []
        for rel in changes.changed if changes.stamp_found else sorted(changes.present):
            if is_skipped(rel):
                continue
            if rel in changes.present or not _is_known_folder(rel, known_folders):
                wanted.append(rel)  # a file, or a folder that is new as a whole
        # A name not seen before is new even when its mtime is old (a file
        # renamed or moved by the run).
        unseen = changes.present - self._sent.keys() - self._kept_out
        wanted += [rel for rel in unseen if not is_skipped(rel)]
        report = _PullReport(_Budget(self.size_limit))
        # Deletions first: a file or symlink the run replaced by a folder of
        # the same name must be gone before the folder is made here.
        gone = [rel for rel in self._sent.keys() - changes.present if not is_skipped(rel)]
        if gone:
            await asyncio.to_thread(self._delete_if_unchanged, gone)
        for rel in topmost(wanted):
            try:
                tar = await self._backend.get_archive(self.container_id, f"{CONTAINER_ROOT}/{rel}", report.budget.left)
            except ArchiveTooLarge:
                report.budget.skipped.append(rel)
                continue
            if tar is None:
                continue  # gone again before we asked
            await asyncio.to_thread(self._apply, rel, tar, report)
        await asyncio.to_thread(self._drop_links_leading_out, report)
        return report.note(self.size_limit)

    def _apply(self, rel: str, tar_bytes: bytes, report: _PullReport) -> None:
        """Unpack a tar the engine made of /workspace/REL into the workspace:
        every path resolved beneath the workspace, each file written whole and
        renamed into place, each symlink kept only if it leads inside."""
        base = posixpath.dirname(rel)
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                target = safe_relative(posixpath.join(base, member.name))
                if target is None or is_skipped(target):
                    log.warning("copy mode: not copying back %r: outside the workspace", member.name)
                    continue
                try:
                    self._apply_member(tar, member, target, report)
                except (OSError, safe_files.RefusedFile) as exc:
                    log.warning("copy mode: not copying back %s: %s", target, exc)
                    report.failed.append(target)

    def _apply_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: str, report: _PullReport) -> None:
        if member.isdir():
            safe_files.make_folder(self._root, target, self._owner)
        elif member.isreg():
            if not report.budget.take(member.size, target):
                return
            data = tar.extractfile(member)
            assert data is not None
            # Setuid, setgid and sticky bits never come back (mode & 0o777).
            stats = safe_files.replace_regular(self._root, target, data, member.mode, member.mtime, self._owner)
            self._sent[target] = state_of(stats)
        elif member.issym():
            # Checked now, against the workspace as it is, and again once the
            # whole pull is applied (_drop_links_leading_out): a later link
            # can change where this one leads.
            leads_to = None if posixpath.isabs(member.linkname) else safe_files.resolve_beneath(
                self._root, posixpath.join(posixpath.dirname(target), member.linkname)
            )
            if leads_to is None:
                log.warning("copy mode: not copying back %s -> %s: it leads outside the workspace", target, member.linkname)
                report.made_outside.append(target)
                self._kept_out.add(target)
                return
            stats = safe_files.write_symlink(self._root, target, member.linkname, self._owner)
            self._sent[target] = state_of(stats)
            self._kept_out.discard(target)
            report.links.add(target)
        else:
            log.warning("copy mode: not copying back %r: not a file, folder or symlink", target)

    def _drop_links_leading_out(self, report: _PullReport) -> None:
        """The pull's last step: every symlink copy mode knows of (written by
        this pull or an earlier one, or sent in from here) is resolved again,
        now that all of this pull is in place, and removed if it leads outside.
        `x -> .` then `u1 -> x/..` passes one link at a time: u1 is the
        workspace's parent. All are judged first, then removed: removing u1
        first would leave `u2 -> u1/..` dangling, and so inside, by chance of
        the order."""
        leading_out = [
            (rel, state) for rel, state in sorted(self._sent.items())
            if state.is_link and safe_files.resolve_beneath(self._root, rel) is None
        ]
        for rel, state in leading_out:
            del self._sent[rel]
            self._kept_out.add(rel)
            try:
                removed = safe_files.remove_beneath(self._root, rel, only_if=lambda info: state_of(info) == state)
            except (OSError, safe_files.RefusedFile):
                removed = False  # its folder leads out now: the link is not in the workspace
            if not removed:
                continue
            log.warning("copy mode: removed %s: after the run, it leads outside the workspace", rel)
            (report.made_outside if rel in report.links else report.removed).append(rel)

    def _delete_if_unchanged(self, paths: list[str]) -> None:
        """Apply a run's deletions (in a worker thread): each file or symlink
        only if it is still as it was sent."""
        for rel in paths:
            expected = self._sent.pop(rel)
            with contextlib.suppress(OSError, safe_files.RefusedFile):
                safe_files.remove_beneath(self._root, rel, only_if=lambda info: state_of(info) == expected)


@attrs.frozen
class _PushPlan:
    deleted: list[str]
    """Paths the container has and should not."""
    current: dict[str, FileState]
    packed: Packed | None


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


@attrs.define
class _PullReport:
    """What one pull left out, for the note the block's output ends with."""

    budget: _Budget
    links: set[str] = attrs.Factory(set)
    """Symlinks this pull wrote."""
    made_outside: list[str] = attrs.Factory(list)
    """Symlinks the run made that lead outside the workspace: not copied back."""
    removed: list[str] = attrs.Factory(list)
    """Symlinks that were here before the run and lead outside it since: removed."""
    failed: list[str] = attrs.Factory(list)
    """Paths refused or that could not be written (the log says why)."""

    def note(self, size_limit: int) -> str:
        lines = []
        if self.budget.skipped:
            lines.append(
                f"cellbox: {len(self.budget.skipped)} file(s) made by the run were not copied back to the "
                f"workspace ({SIZE_LIMIT_KEY} is {_mb(size_limit)}): {_some(self.budget.skipped)}"
            )
        if self.made_outside:
            lines.append(
                f"cellbox: {len(self.made_outside)} symlink(s) made by the run point outside the workspace "
                f"and were not copied back: {_some(self.made_outside)}"
            )
        if self.removed:
            lines.append(
                f"cellbox: {len(self.removed)} symlink(s) in the workspace pointed outside it after the run "
                f"and were removed: {_some(self.removed)}"
            )
        if self.failed:
            lines.append(
                f"cellbox: {len(self.failed)} path(s) made by the run could not be copied back "
                f"(the daemon's log says why): {_some(self.failed)}"
            )
        return "".join(f"\n{line}\n" for line in lines)


def _some(paths: list[str]) -> str:
    shown = ", ".join(sorted(paths)[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


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
