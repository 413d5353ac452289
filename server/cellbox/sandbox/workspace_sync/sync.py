"""Keeping one copy-mode container's /workspace in step with the workspace.

WorkspaceSync pushes what changed here before each run (walked by
selection.py, packed by packing.py) and pulls back what the run changed
after it (listed by listing.py, unpacked here, reported by report.py),
keeping a record of what the container was given.
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
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from cellbox import safe_files
from cellbox.container import scripts as container_scripts
from cellbox.engine.protocol import ArchiveTooLarge, Engine
from cellbox.errors import SandboxFailed
from cellbox.sandbox.workspace_sync.listing import parse_listing, safe_relative, topmost
from cellbox.sandbox.workspace_sync.packing import Packed, build_tar
from cellbox.sandbox.workspace_sync.report import SIZE_LIMIT_KEY, Budget, PullReport, mb
from cellbox.sandbox.workspace_sync.selection import WarnOnce, is_skipped, walk

log = logging.getLogger(__name__)

CONTAINER_ROOT = "/workspace"


@attrs.frozen
class FileState:
    """A local file as it was when the container last got it (or gave it back)."""

    size: int
    mtime_ns: int
    is_link: bool = False


def state_of(stats: os.stat_result) -> FileState:
    return FileState(stats.st_size, stats.st_mtime_ns, stat.S_ISLNK(stats.st_mode))


def _still(expected: FileState) -> Callable[[os.stat_result], bool]:
    """Whether a file is still as it was sent (else it was edited here meanwhile)."""
    return lambda info: state_of(info) == expected


class WorkspaceSync:
    """Keeps one copy-mode container's /workspace in step with the workspace.

    The engine calls are made on the event loop (the Engine's methods are
    async); every filesystem step (walking, reading, building and unpacking
    tars) runs in a worker thread, one at a time, awaited before the next
    engine call. Runs are serialised per workspace (sandbox/core.py), so a push and
    a pull never overlap and `_sent` is only touched by one step at a time."""

    def __init__(
        self,
        backend: Engine,
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
        self._warnings = WarnOnce()
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
                found = safe_files.lstat_beneath(self._root, rel)
            except (OSError, safe_files.RefusedFile):
                continue
            if found is not None:
                current[rel] = state_of(found)
            elif rel in self._sent:
                deleted.append(rel)
        if total > self.size_limit:
            raise self._too_large(
                f"The workspace {self._root} holds {mb(total)} of files to copy into the sandbox "
                f"(after .gitignore), more than {SIZE_LIMIT_KEY} ({mb(self.size_limit)})."
            )
        changed = sorted(rel for rel, state in current.items() if self._sent.get(rel) != state)
        if not changed:
            return _PushPlan(deleted, current, None)
        try:
            packed = build_tar(self._root, changed, self._owner, self.size_limit, self._warnings)
        except safe_files.TooLarge:
            raise self._too_large(
                f"The files to copy from the workspace {self._root} into the sandbox grew past "
                f"{SIZE_LIMIT_KEY} ({mb(self.size_limit)}) while they were read."
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
        report = PullReport(Budget(self.size_limit))
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

    def _apply(self, rel: str, tar_bytes: bytes, report: PullReport) -> None:
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

    def _apply_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: str, report: PullReport) -> None:
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

    def _drop_links_leading_out(self, report: PullReport) -> None:
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
                removed = safe_files.remove_beneath(self._root, rel, only_if=_still(state))
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
                safe_files.remove_beneath(self._root, rel, only_if=_still(expected))


@attrs.frozen
class _PushPlan:
    deleted: list[str]
    """Paths the container has and should not."""
    current: dict[str, FileState]
    packed: Packed | None


def _is_known_folder(rel: str, known_folders: set[str]) -> bool:
    return any(folder == rel or folder.startswith(rel + "/") for folder in known_folders)
