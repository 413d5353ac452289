"""Copy mode without an engine: which files go in, the tar they travel in,
reading the container's listing, and applying tars that come back, built by
hand as the engine would, from a workspace and a sandbox that may be hostile."""

from __future__ import annotations

import io
import logging
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from cellbox import safe_files
from cellbox.container import scripts as container_scripts
from cellbox.safe_files import TooLarge
from cellbox.sandbox.workspace_sync import WorkspaceSync
from cellbox.sandbox.workspace_sync.listing import parse_listing, safe_relative, topmost
from cellbox.sandbox.workspace_sync.packing import build_tar
from cellbox.sandbox.workspace_sync.report import Budget as _Budget
from cellbox.sandbox.workspace_sync.report import PullReport as _PullReport
from cellbox.sandbox.workspace_sync.selection import IGNORE_FILE_LIMIT, walk
from cellbox.sandbox.workspace_sync.sync import FileState, state_of


def tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_walk_honours_gitignore_files_and_skips_git_and_cellbox(tmp_path: Path) -> None:
    tree(tmp_path, {
        ".gitignore": "*.log\nbuild/\n", "a.py": "", "x.log": "", "build/out": "", "src/build": "",
        "src/.gitignore": "*.tmp\n!keep.tmp\n", "src/a.tmp": "", "src/keep.tmp": "", "src/deep/b.tmp": "",
        ".git/config": "", ".cellbox/tmp_code_1.py": "",
    })
    (tmp_path / "link").symlink_to("a.py")
    found = sorted(rel for rel, _ in walk(tmp_path))
    # `build/` matches folders only: the file src/build stays.
    assert found == [".gitignore", "a.py", "link", "src/.gitignore", "src/build", "src/keep.tmp"]


def test_the_tar_gives_files_and_their_folders_to_the_sandbox_user(tmp_path: Path) -> None:
    tree(tmp_path, {"d/e/f.sh": "echo"})
    os.chmod(tmp_path / "d/e/f.sh", 0o755)
    (tmp_path / "ln").symlink_to("d/e/f.sh")
    packed = build_tar(tmp_path, ["d/e/f.sh", "ln"], (1000, 1001), 1 << 20)
    assert packed.sent == ["d/e/f.sh", "ln"]
    with tarfile.open(fileobj=io.BytesIO(packed.tar)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["d", "d/e", "d/e/f.sh", "ln"]
    assert all((m.uid, m.gid) == (1000, 1001) for m in members.values())
    assert members["d"].isdir() and members["d/e/f.sh"].mode == 0o755
    assert members["ln"].issym() and members["ln"].linkname == "d/e/f.sh"


def test_the_listing_is_read_in_its_three_parts() -> None:
    changes = parse_listing(b".\0./new\0./new/f\0./a\0\0./a\0./new/f\0./old\0stamp")
    assert changes.changed == ["new", "new/f", "a"]
    assert changes.present == {"a", "new/f", "old"}
    assert changes.stamp_found
    assert parse_listing(b"\0./a\0nostamp") == parse_listing(b"\0./a\0nostamp")
    lost = parse_listing(b"\0./a\0nostamp")
    assert (lost.changed, lost.present, lost.stamp_found) == ([], {"a"}, False)


def test_paths_that_leave_the_workspace_are_refused() -> None:
    assert safe_relative("a/b") == "a/b"
    assert safe_relative("a/../b") == "b"
    for bad in ("/etc/passwd", "../x", "a/../../x", ".", ""):
        assert safe_relative(bad) is None
    assert topmost(["a/b", "a", "c/d", "c/e/f", "c/e"]) == ["a", "c/d", "c/e"]


def tar_of(*members: tuple[str, str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sync_for(root: Path) -> WorkspaceSync:
    owner = (root.stat().st_uid, root.stat().st_gid)
    return WorkspaceSync(backend=None, container_id="c", workspace=root, owner=owner, size_limit=1 << 20)  # type: ignore[arg-type]


def test_applying_a_tar_writes_files_and_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "out").symlink_to(outside)
    sync = sync_for(root)
    report = _PullReport(_Budget(1 << 20))
    sync._apply("d", tar_of(("d", "dir", b""), ("d/f.txt", "file", b"made"), ("d/../../escape", "file", b"x"),
                            ("d/in", "link", "f.txt"), ("d/out", "link", "../../outside")), report)
    assert (root / "d/f.txt").read_text() == "made"
    assert os.readlink(root / "d/in") == "f.txt"
    assert not (root / "d/out").exists() and not (tmp_path / "escape").exists()
    # A folder that is a symlink leading out is not written through.
    sync._apply("out/x", tar_of(("x", "file", b"through the link")), report)
    assert list(outside.iterdir()) == []


def test_the_budget_bounds_what_comes_back(tmp_path: Path) -> None:
    sync = sync_for(tmp_path)
    report = _PullReport(_Budget(5))
    sync._apply("a", tar_of(("a", "file", b"12345678")), report)
    assert not (tmp_path / "a").exists() and report.budget.skipped == ["a"]


# ------------------------------------------------------------- hostile workspaces


def chain_tar(*links: tuple[str, str]) -> bytes:
    return tar_of(*((name, "link", target) for name, target in links))


def links_leading_out(root: Path) -> list[str]:
    """Every symlink in the workspace whose target, resolved by the kernel, is not inside it."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                real = Path(os.path.realpath(path))
                if real != root and root not in real.parents:
                    found.append(str(path.relative_to(root)))
    return sorted(found)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A canary file beside the workspace."""
    canary = tmp_path / "canary"
    canary.write_text("the canary\n")
    canary.chmod(0o600)
    return canary


def test_a_gitignore_that_is_not_a_small_regular_file_is_skipped(tmp_path: Path, caplog) -> None:
    for name, make in {
        "zero": lambda p: p.symlink_to("/dev/zero"),
        "fifo": lambda p: os.mkfifo(p),
        "big": lambda p: p.write_text("*.txt\n" + "#" * IGNORE_FILE_LIMIT),
        "out": lambda p: p.symlink_to("../../outside-ignore"),
    }.items():
        (tmp_path / name).mkdir()
        tree(tmp_path / name, {"a.txt": ""})
        make(tmp_path / name / ".gitignore")
    (tmp_path / "outside-ignore").write_text("*.txt\n")
    with caplog.at_level(logging.WARNING):
        found = sorted(rel for rel, _ in walk(tmp_path))
    # Their rules do not apply (a.txt is sent); the links themselves are walked
    # (and left out when the tar is made); the FIFO is not a file to send.
    assert found == ["big/.gitignore", "big/a.txt", "fifo/a.txt", "out/.gitignore", "out/a.txt",
                     "outside-ignore", "zero/.gitignore", "zero/a.txt"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in ("zero", "fifo", "big", "out"):
        assert f"not reading {name}/.gitignore" in warned


def test_walk_does_not_descend_into_links(tmp_path: Path) -> None:
    tree(tmp_path, {"real/f": ""})
    (tmp_path / "here").symlink_to("real")
    (tmp_path / "up").symlink_to("..")
    assert sorted(rel for rel, _ in walk(tmp_path)) == ["here", "real/f", "up"]


def test_the_tar_leaves_out_links_leading_out_and_what_is_not_a_file(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "ws"
    tree(root, {"a.txt": "a", "d/f": "f"})
    (root / "secret").symlink_to(outside)
    (root / "rel-secret").symlink_to("../canary")
    (root / "x").symlink_to(".")
    (root / "u1").symlink_to("x/..")
    (root / "sneaky").symlink_to("u1/canary")
    (root / "in").symlink_to("d/f")
    os.mkfifo(root / "fifo")
    (root / "dl").symlink_to("d")
    paths = ["a.txt", "d/f", "secret", "rel-secret", "x", "u1", "sneaky", "in", "fifo", "dl/f"]
    packed = build_tar(root, paths, (0, 0), 1 << 20)
    assert packed.sent == ["a.txt", "d/f", "x", "in"]
    assert sorted(packed.refused) == ["fifo", "rel-secret", "secret", "sneaky", "u1"]
    assert b"the canary" not in packed.tar
    with tarfile.open(fileobj=io.BytesIO(packed.tar)) as tar:
        assert sorted(tar.getnames()) == ["a.txt", "d", "d/f", "in", "x"]  # no "dl": a link here


def test_the_size_cap_counts_the_bytes_read(tmp_path: Path) -> None:
    tree(tmp_path, {"a": "x" * 60, "b": "y" * 60})
    assert build_tar(tmp_path, ["a"], (0, 0), 100).sent == ["a"]
    with pytest.raises(TooLarge):
        build_tar(tmp_path, ["a", "b"], (0, 0), 100)


def test_a_chain_made_in_one_pull_is_not_kept(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    sync = sync_for(root)
    report = _PullReport(_Budget(1 << 20))
    # As the engine would send them: each topmost path in a tar of its own.
    sync._apply("x", chain_tar(("x", ".")), report)
    sync._apply("u1", chain_tar(("u1", "x/..")), report)
    sync._apply("u2", chain_tar(("u2", "u1/..")), report)
    sync._apply("d", tar_of(("d", "dir", b""), ("d/up", "link", ".."), ("d/esc", "link", "up/..")), report)
    sync._drop_links_leading_out(report)
    assert links_leading_out(root) == []
    assert os.readlink(root / "x") == "." and os.readlink(root / "d/up") == ".."
    # u1 was refused when it came, so here u2 is `u1/..` with no u1: the
    # workspace itself, should u1 ever be made a folder.
    assert os.readlink(root / "u2") == "u1/.." and not os.path.lexists(root / "u1")
    assert sorted(report.made_outside) == ["d/esc", "u1"]
    note = report.note(1 << 20)
    assert "2 symlink(s) made by the run point outside the workspace and were not copied back: d/esc, u1" in note


def test_a_link_made_harmless_then_turned_outside_is_removed_by_the_final_pass(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    sync = sync_for(root)
    report = _PullReport(_Budget(1 << 20))
    # u1 comes first, while x does not exist: `x/..` is the workspace then.
    sync._apply("u1", chain_tar(("u1", "x/..")), report)
    assert os.readlink(root / "u1") == "x/.."
    sync._apply("x", chain_tar(("x", ".")), report)
    sync._drop_links_leading_out(report)
    assert links_leading_out(root) == [] and not os.path.lexists(root / "u1")
    assert report.made_outside == ["u1"]
    # A later pull that makes x again turns a link of an earlier pull outside.
    first = _PullReport(_Budget(1 << 20))
    sync._apply("y", chain_tar(("y", "z/..")), first)
    sync._drop_links_leading_out(first)
    assert os.path.lexists(root / "y") and first.note(1) == ""
    later = _PullReport(_Budget(1 << 20))
    sync._apply("z", chain_tar(("z", ".")), later)
    sync._drop_links_leading_out(later)
    assert not os.path.lexists(root / "y") and later.removed == ["y"]
    assert "1 symlink(s) in the workspace pointed outside it after the run and were removed: y" in later.note(1)


def test_files_come_back_beneath_the_workspace_only(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    before = outside.stat()
    (root / "x").symlink_to(".")
    (root / "u1").symlink_to("x/..")  # planted here, not by a pull
    (root / "over").symlink_to(outside)
    sync = sync_for(root)
    report = _PullReport(_Budget(1 << 20))
    sync._apply("u1/canary", tar_of(("canary", "file", b"pwned")), report)
    sync._apply("u1", tar_of(("u1", "dir", b""), ("u1/canary", "file", b"pwned")), report)
    sync._apply("over", tar_of(("over", "file", b"pwned")), report)
    suid = io.BytesIO()
    with tarfile.open(fileobj=suid, mode="w") as tar:
        info = tarfile.TarInfo("tool")
        info.size, info.mode, info.mtime = 2, 0o6777, 1_000_000
        tar.addfile(info, io.BytesIO(b"#!"))
    sync._apply("tool", suid.getvalue(), report)
    after = outside.stat()
    assert outside.read_text() == "the canary\n"
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before.st_mode, before.st_uid, before.st_mtime_ns)
    # `over` was replaced, not written through; the folder u1 replaced the link.
    assert (root / "over").read_bytes() == b"pwned" and not (root / "over").is_symlink()
    assert (root / "u1").is_dir() and (root / "u1/canary").read_bytes() == b"pwned"
    assert report.failed == ["u1/canary"]  # the first try, through the link
    assert stat.S_IMODE((root / "tool").stat().st_mode) == 0o777 and (root / "tool").stat().st_mtime == 1_000_000


def test_a_deletion_never_follows_a_link_out(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    sync = sync_for(root)
    (root / "x").symlink_to(".")
    (root / "u1").symlink_to("x/..")
    sync._sent["u1/canary"] = state_of(outside.lstat())
    sync._sent["kept.txt"] = FileState(1, 1)
    tree(root, {"kept.txt": "edited here", "gone.txt": "as sent"})
    sync._sent["gone.txt"] = state_of((root / "gone.txt").lstat())
    sync._delete_if_unchanged(["u1/canary", "kept.txt", "gone.txt"])
    assert outside.exists() and (root / "kept.txt").exists() and not (root / "gone.txt").exists()
    assert sync._sent == {}


class FakeEngine:
    """The backend calls copy mode makes, against a dict of tars by path."""

    def __init__(self, listing: bytes = b"", archives: dict[str, bytes] | None = None) -> None:
        self.listing = listing
        self.archives = archives or {}
        self.put: list[bytes] = []
        self.commands: list[list[str]] = []

    async def exec_capture(self, container_id: str, argv: list[str], user: str | None = None) -> tuple[int, bytes]:
        self.commands.append(argv)
        return 0, self.listing if argv[2] == container_scripts.COPY_LIST else b""

    async def put_archive(self, container_id: str, path: str, tar: bytes) -> None:
        self.put.append(tar)

    async def get_archive(self, container_id: str, path: str, max_bytes: int) -> bytes | None:
        return self.archives.get(path.removeprefix("/workspace/"))


async def test_push_sends_no_link_leading_out_and_works_off_the_loop(tmp_path: Path, outside: Path, monkeypatch) -> None:
    root = tmp_path / "ws"
    tree(root, {"a.txt": "a"})
    (root / "secret").symlink_to(outside)
    (root / "x").symlink_to(".")
    (root / "u1").symlink_to("x/..")
    (root / ".gitignore").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe")
    engine = FakeEngine()
    sync = WorkspaceSync(engine, "c", root, (0, 0), 1 << 20)  # type: ignore[arg-type]
    threads = []
    real_read = safe_files.read_regular
    monkeypatch.setattr(safe_files, "read_regular", lambda *a: threads.append(threading.current_thread()) or real_read(*a))
    await sync.push()
    (tar_bytes,) = engine.put
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert sorted(tar.getnames()) == ["a.txt", "x"]
    assert b"the canary" not in tar_bytes
    assert threads and threading.main_thread() not in threads
    # A link sent before that leads out since is deleted there.
    (root / "x").unlink()
    (root / "x").symlink_to("..")
    await sync.push()
    assert engine.commands[-1] == ["sh", "-c", "rm -f -- x"] and "x" not in sync._sent


async def test_pull_applies_a_chain_and_removes_what_leads_out(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    listing = b"./u1\0./x\0./u2\0./f\0\0./u1\0./x\0./u2\0./f\0stamp"
    engine = FakeEngine(listing, {
        "x": chain_tar(("x", ".")), "u1": chain_tar(("u1", "x/..")), "u2": chain_tar(("u2", "u1/..")),
        "f": tar_of(("f", "file", b"made")),
    })
    sync = WorkspaceSync(engine, "c", root, (0, 0), 1 << 20)  # type: ignore[arg-type]
    note = await sync.pull()
    assert "2 symlink(s) made by the run point outside the workspace and were not copied back: u1, u2" in note
    assert links_leading_out(root) == [] and (root / "f").read_text() == "made"
    assert sorted(sync._sent) == ["f", "x"]
    # Unchanged since, they are not fetched (nor reported) again.
    engine.listing = b"\0./u1\0./x\0./u2\0./f\0stamp"
    engine.archives.clear()
    assert await sync.pull() == ""
