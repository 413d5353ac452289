"""safe_files: every workspace path resolved beneath the workspace, regular
files only, size caps, and writes that replace instead of writing through."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from cellbox import safe_files
from cellbox.safe_files import RefusedFile, TooLarge, beneath

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
OWNER = (4321, 4322)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace, with a canary file and folder outside it, beside it."""
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "canary").write_text("outside\n")
    (tmp_path / "canary").chmod(0o600)
    (tmp_path / "outdir").mkdir()
    return root


@pytest.fixture(params=["openat2", "no symlinks"])
def kernel(request, monkeypatch) -> str:
    """Both ways of resolving: openat2, and the fallback that follows no link."""
    if request.param == "no symlinks":
        monkeypatch.setattr(beneath, "_have_openat2", False)
    return request.param


def chain(root: Path) -> None:
    """Links that each look inside, whose chain leads out: u1 and u2 are the workspace's parent."""
    (root / "x").symlink_to(".")
    (root / "u1").symlink_to("x/..")
    (root / "u2").symlink_to("u1/..")


# ------------------------------------------------------------------ read_regular


def test_a_regular_file_is_read_and_a_missing_one_is_none(ws: Path, kernel: str) -> None:
    (ws / "d").mkdir()
    (ws / "d/f").write_bytes(b"data")
    assert safe_files.read_regular(ws, "d/f", 100) == b"data"
    assert safe_files.read_regular(ws, "d/missing", 100) is None
    assert safe_files.read_regular(ws, "d/f/below", 100) is None  # under a file


def test_links_inside_are_followed_with_openat2(ws: Path) -> None:
    (ws / "real").write_bytes(b"inner")
    (ws / "link").symlink_to("real")
    (ws / "sub").mkdir()
    (ws / "sub/up").symlink_to("../real")
    assert safe_files.read_regular(ws, "link", 100) == b"inner"
    assert safe_files.read_regular(ws, "sub/up", 100) == b"inner"


def test_without_openat2_no_link_is_followed(ws: Path, monkeypatch) -> None:
    monkeypatch.setattr(beneath, "_have_openat2", False)
    (ws / "real").write_bytes(b"inner")
    (ws / "link").symlink_to("real")
    with pytest.raises(RefusedFile):
        safe_files.read_regular(ws, "link", 100)


@pytest.mark.parametrize("target", ["../canary", "{outside}/canary", "../ws/../canary", "/etc/shadow"])
def test_links_leading_out_are_refused(ws: Path, kernel: str, target: str) -> None:
    (ws / "secret").symlink_to(target.format(outside=ws.parent))
    with pytest.raises(RefusedFile, match="leads outside"):
        safe_files.read_regular(ws, "secret", 100)


def test_a_chain_of_links_that_each_look_inside_is_refused(ws: Path, kernel: str) -> None:
    chain(ws)
    for rel in ("u1/canary", "u2/canary", "x/u1/canary", "x/../canary"):
        with pytest.raises(RefusedFile):
            safe_files.read_regular(ws, rel, 100)


def test_a_folder_leading_out_is_refused(ws: Path, kernel: str) -> None:
    (ws / "out").symlink_to(ws.parent / "outdir")
    (ws.parent / "outdir/f").write_text("x")
    with pytest.raises(RefusedFile):
        safe_files.read_regular(ws, "out/f", 100)


def test_a_fifo_is_refused_without_hanging(ws: Path, kernel: str) -> None:
    os.mkfifo(ws / ".gitignore")
    with pytest.raises(RefusedFile, match="not a regular file"):
        safe_files.read_regular(ws, ".gitignore", 100)


def test_dev_zero_is_refused_by_a_link_and_as_a_device(ws: Path, kernel: str) -> None:
    (ws / ".gitignore").symlink_to("/dev/zero")
    with pytest.raises(RefusedFile):
        safe_files.read_regular(ws, ".gitignore", 100)
    if os.geteuid() == 0:
        os.mknod(ws / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        with pytest.raises(RefusedFile, match="not a regular file"):
            safe_files.read_regular(ws, "zero", 100)


def test_the_size_cap(ws: Path) -> None:
    (ws / "big").write_bytes(b"x" * 101)
    assert safe_files.read_regular(ws, "big", 101) == b"x" * 101
    with pytest.raises(TooLarge):
        safe_files.read_regular(ws, "big", 100)
    assert issubclass(TooLarge, RefusedFile)


# ----------------------------------------------------------------- write_regular


def test_write_regular_makes_folders_and_skips_same_content(ws: Path, kernel: str) -> None:
    assert safe_files.write_regular(ws, "a/b/c.py", b"print(1)") is True
    assert (ws / "a/b/c.py").read_bytes() == b"print(1)"
    assert safe_files.write_regular(ws, "a/b/c.py", b"print(1)") is False
    assert safe_files.write_regular(ws, "a/b/c.py", b"print(2)") is True
    assert (ws / "a/b/c.py").read_bytes() == b"print(2)"


@as_root
def test_write_regular_gives_what_it_makes_to_the_owner(ws: Path) -> None:
    (ws / "a").mkdir()
    safe_files.write_regular(ws, "a/b/c/f.py", b"x", OWNER)
    for rel in ("a/b", "a/b/c", "a/b/c/f.py"):
        info = (ws / rel).stat()
        assert (info.st_uid, info.st_gid) == OWNER, rel
    assert (ws / "a").stat().st_uid == 0  # was there already: left as it was


def test_write_regular_never_writes_outside(ws: Path, kernel: str) -> None:
    chain(ws)
    (ws / "out").symlink_to(ws.parent / "outdir")
    (ws / "file").symlink_to("../canary")
    for rel in ("u1/canary", "u2/new", "out/new", "out/deeper/new", "file"):
        with pytest.raises(RefusedFile):
            safe_files.write_regular(ws, rel, b"pwned")
    assert (ws.parent / "canary").read_text() == "outside\n"
    assert list((ws.parent / "outdir").iterdir()) == []


def test_write_regular_refuses_a_fifo(ws: Path) -> None:
    os.mkfifo(ws / "f.py")
    with pytest.raises(RefusedFile):
        safe_files.write_regular(ws, "f.py", b"x")


# ------------------------------------------------- is_regular_beneath, resolves_inside


def test_is_regular_beneath_and_resolves_inside(ws: Path) -> None:
    chain(ws)
    (ws / "f").write_text("")
    os.mkfifo(ws / "fifo")
    assert safe_files.is_regular_beneath(ws, "f") and safe_files.is_regular_beneath(ws, "x/f")
    assert not safe_files.is_regular_beneath(ws, "fifo")
    assert not safe_files.is_regular_beneath(ws, "u1/canary")
    assert safe_files.resolves_inside(ws, "x/new") and safe_files.resolves_inside(ws, "f")
    assert not safe_files.resolves_inside(ws, "u1") and not safe_files.resolves_inside(ws, "u2/anything")


# ---------------------------------------------------------------- resolve_beneath


def test_resolve_beneath_follows_chains(ws: Path) -> None:
    chain(ws)
    (ws / "d").mkdir()
    (ws / "d/up").symlink_to("..")  # the root: inside
    (ws / "d/out").symlink_to("up/..")  # through a folder: outside
    (ws / "abs").symlink_to(str(ws))  # absolute, even to the workspace itself
    (ws / "loop").symlink_to("loop")
    assert safe_files.resolve_beneath(ws, "x") == "."
    assert safe_files.resolve_beneath(ws, "x/x/d") == "d"
    assert safe_files.resolve_beneath(ws, "d/up") == "."
    for rel in ("u1", "u2", "x/u1", "d/out", "abs", "loop", "..", "d/../.."):
        assert safe_files.resolve_beneath(ws, rel) is None, rel


def test_resolve_beneath_takes_what_is_missing_as_folders_to_be(ws: Path) -> None:
    (ws / "dangling").symlink_to("missing/file")
    (ws / "climbs").symlink_to("missing/../..")
    (ws / "f").write_text("")
    assert safe_files.resolve_beneath(ws, "dangling") == "missing/file"
    assert safe_files.resolve_beneath(ws, "climbs") is None
    assert safe_files.resolve_beneath(ws, "missing/../f") == "f"
    assert safe_files.resolve_beneath(ws, "f/../f") == "f"


# ----------------------------------------------------- writing: replace, link, folder


def test_replace_regular_replaces_a_link_instead_of_writing_through_it(ws: Path, kernel: str) -> None:
    (ws / "f").symlink_to(ws.parent / "canary")
    info = safe_files.replace_regular(ws, "f", io.BytesIO(b"new"), 0o6755, mtime=1_000_000)
    assert stat.S_ISREG(info.st_mode) and (ws / "f").read_bytes() == b"new"
    assert stat.S_IMODE(info.st_mode) == 0o755  # no setuid, setgid
    assert info.st_mtime == 1_000_000
    assert (ws.parent / "canary").read_text() == "outside\n"
    assert [p.name for p in ws.iterdir()] == ["f"]  # no temporary file left


def test_replace_regular_never_leaves_the_workspace(ws: Path, kernel: str) -> None:
    chain(ws)
    (ws / "out").symlink_to(ws.parent / "outdir")
    for rel in ("u1/canary", "u2/x", "out/f", "out/new/f"):
        with pytest.raises(RefusedFile):
            safe_files.replace_regular(ws, rel, io.BytesIO(b"pwned"), 0o644)
    assert (ws.parent / "canary").read_text() == "outside\n"
    assert list((ws.parent / "outdir").iterdir()) == []


def test_replace_regular_refuses_a_folder_and_cleans_up_after_an_error(ws: Path) -> None:
    (ws / "d").mkdir()
    with pytest.raises(RefusedFile, match="is a folder"):
        safe_files.replace_regular(ws, "d", io.BytesIO(b"x"), 0o644)

    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("the tar ended early")

    with pytest.raises(OSError, match="ended early"):
        safe_files.replace_regular(ws, "d/f", Broken(), 0o644)  # type: ignore[arg-type]
    assert list((ws / "d").iterdir()) == []


@as_root
def test_what_is_written_belongs_to_the_owner_and_only_it(ws: Path) -> None:
    canary = ws.parent / "canary"
    before = canary.stat()
    (ws / "l").symlink_to(canary)
    safe_files.replace_regular(ws, "new/f", io.BytesIO(b"x"), 0o644, owner=OWNER)
    safe_files.write_symlink(ws, "l", "../canary", OWNER)
    safe_files.make_folder(ws, "made/deeper", OWNER)
    for rel in ("new", "new/f", "l", "made", "made/deeper"):
        info = os.lstat(ws / rel)
        assert (info.st_uid, info.st_gid) == OWNER, rel
    after = canary.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_write_symlink_replaces_a_file_or_link_and_refuses_a_folder(ws: Path, kernel: str) -> None:
    (ws / "f").write_text("file")
    safe_files.write_symlink(ws, "f", "elsewhere")
    assert os.readlink(ws / "f") == "elsewhere"
    safe_files.write_symlink(ws, "d/l", "../f")
    assert os.readlink(ws / "d/l") == "../f"
    with pytest.raises(RefusedFile):
        safe_files.write_symlink(ws, "d", "x")
    chain(ws)
    with pytest.raises(RefusedFile):
        safe_files.write_symlink(ws, "u1/planted", "x")
    assert not (ws.parent / "planted").exists()


def test_make_folder_replaces_a_link_and_refuses_a_file(ws: Path, kernel: str) -> None:
    (ws / "x").symlink_to(".")
    assert safe_files.make_folder(ws, "x") is True
    assert (ws / "x").is_dir() and not (ws / "x").is_symlink()
    assert safe_files.make_folder(ws, "x") is False
    (ws / "f").write_text("")
    with pytest.raises(RefusedFile):
        safe_files.make_folder(ws, "f")
    (ws / "out").symlink_to(ws.parent / "outdir")
    with pytest.raises(RefusedFile):
        safe_files.make_folder(ws, "out/new")
    assert list((ws.parent / "outdir").iterdir()) == []


def test_remove_beneath_removes_the_link_never_its_target(ws: Path, kernel: str) -> None:
    (ws / "l").symlink_to(ws.parent / "canary")
    (ws / "d").mkdir()
    (ws / "f").write_text("kept")
    assert safe_files.remove_beneath(ws, "l") is True
    assert (ws.parent / "canary").exists() and not os.path.lexists(ws / "l")
    assert safe_files.remove_beneath(ws, "d") is False and (ws / "d").is_dir()
    assert safe_files.remove_beneath(ws, "f", only_if=lambda info: info.st_size == 0) is False
    assert safe_files.remove_beneath(ws, "missing") is False
    chain(ws)
    with pytest.raises(RefusedFile):
        safe_files.remove_beneath(ws, "u1/canary")
    assert (ws.parent / "canary").exists()


def test_lstat_beneath_does_not_follow_the_last_link(ws: Path) -> None:
    (ws / "l").symlink_to(ws.parent / "canary")
    info = safe_files.lstat_beneath(ws, "l")
    assert info is not None and stat.S_ISLNK(info.st_mode)
    assert safe_files.lstat_beneath(ws, "missing") is None
    chain(ws)
    with pytest.raises(RefusedFile):
        safe_files.lstat_beneath(ws, "u1/canary")
