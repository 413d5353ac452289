"""Copy mode's pure parts: which files go in, the tar they travel in, reading
the container's listing, and applying a tar that comes back."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from cellbox.workspace_sync import (
    WorkspaceSync,
    _Budget,
    build_tar,
    parse_listing,
    safe_relative,
    topmost,
    walk,
)


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
    with tarfile.open(fileobj=io.BytesIO(build_tar(tmp_path, ["d/e/f.sh", "ln"], (1000, 1001)))) as tar:
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
    budget = _Budget(1 << 20)
    sync._apply("d", tar_of(("d", "dir", b""), ("d/f.txt", "file", b"made"), ("d/../../escape", "file", b"x"),
                            ("d/in", "link", "f.txt"), ("d/out", "link", "../../outside")), budget)
    assert (root / "d/f.txt").read_text() == "made"
    assert os.readlink(root / "d/in") == "f.txt"
    assert not (root / "d/out").exists() and not (tmp_path / "escape").exists()
    # A folder that is a symlink leading out is not written through.
    sync._apply("out/x", tar_of(("x", "file", b"through the link")), budget)
    assert list(outside.iterdir()) == []


def test_the_budget_bounds_what_comes_back(tmp_path: Path) -> None:
    sync = sync_for(tmp_path)
    budget = _Budget(5)
    sync._apply("a", tar_of(("a", "file", b"12345678")), budget)
    assert not (tmp_path / "a").exists() and budget.skipped == ["a"]
