"""A workspace cleaned between runs (issue 16, item 4): every file deleted,
or the folder itself removed and made again at the same path, as a test
fixture does, while its container keeps running. The next run of any client
sees the workspace as it now is, at once.

The engine binds a folder by what its path names when the container starts
and keeps that folder while it runs, so a folder made again at the same path
is not what a running container shows: blocks ran in the removed, empty
folder (and could not write there), and a `docker exec` into it was refused.
The daemon's own folders are bound the same way: made again, the runner
never saw the new token and a new client waited 30 s for "runner did not
connect"; removed under a live daemon, it refused every run. A workspace
emptied in place (the first test) always worked; it stays as a guard.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.conftest import TEST_IMAGE, containers_of

CONFIG = f'image = "{TEST_IMAGE}"\nstop_container = false\n'
LOOK = "cat marker.txt; ls -A; echo written > by-block.txt"
RUN_TIMEOUT = 60
"""Bounds each run, so that a broken sandbox fails the test instead of hanging it."""


def make_again(workspace, marker: str) -> None:
    """What a test fixture does: the folder removed, then made anew at the same path."""
    shutil.rmtree(workspace)
    workspace.mkdir()
    (workspace / "cellbox.toml").write_text(CONFIG)
    (workspace / "marker.txt").write_text(marker + "\n")


async def run(daemon, code: str = LOOK):
    return await asyncio.wait_for(daemon.execute(("sh", code)), RUN_TIMEOUT)


async def first_run(make_workspace, start_daemon, name: str):
    """A workspace and a daemon whose container is up."""
    workspace = make_workspace(name, CONFIG)
    daemon = await start_daemon(workspace)
    await run(daemon, "true")
    return workspace, daemon


async def leave(daemon) -> None:
    """The daemon exits; with stop_container = false its container keeps running."""
    await daemon.client.shutdown_session()
    await daemon.client.stop()


def remove_the_daemons_folder(private_xdg) -> None:
    """The daemon's own folders for the workspace (blocks, runner socket and token), as wiping a test's home does."""
    shutil.rmtree(private_xdg / "xdg_state_home" / "cellbox")


def assert_sees_the_new_workspace(result, workspace, marker: str) -> None:
    assert (result["exitCode"], result["output"]) == (0, f"{marker}\ncellbox.toml\nmarker.txt\n")
    assert (workspace / "by-block.txt").read_text() == "written\n"  # and writes there, as the host sees it
    (workspace / "by-block.txt").unlink()


async def test_every_file_deleted_hidden_and_ignored_ones_too(make_workspace, start_daemon):
    # `git clean -xfd` with an ignored folder and hidden ones: the folder stays.
    workspace = make_workspace("cleaned", CONFIG)
    for name in ("build/out.o", ".hidden/notes", ".cache/x/y"):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text("old\n")
    (workspace / ".gitignore").write_text("build/\n")
    daemon = await start_daemon(workspace)
    assert (await run(daemon, "ls -A"))["output"] == ".cache\n.gitignore\n.hidden\nbuild\ncellbox.toml\n"
    for entry in list(workspace.iterdir()):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (workspace / "cellbox.toml").write_text(CONFIG)
    (workspace / "marker.txt").write_text("kept folder\n")
    assert_sees_the_new_workspace(await run(daemon), workspace, "kept folder")
    other = await start_daemon(workspace)
    assert_sees_the_new_workspace(await run(other), workspace, "kept folder")


async def test_the_same_daemon_runs_in_a_workspace_made_again(make_workspace, start_daemon, engine):
    workspace, daemon = await first_run(make_workspace, start_daemon, "again")
    make_again(workspace, "the new folder")
    assert_sees_the_new_workspace(await run(daemon), workspace, "the new folder")
    assert [c.status for c in containers_of(engine, workspace)] == ["running"]  # one container, not two


async def test_a_second_daemon_runs_in_a_workspace_made_again_while_the_first_holds_the_runner(
    make_workspace, start_daemon
):
    workspace, first = await first_run(make_workspace, start_daemon, "shared")
    make_again(workspace, "seen by the second")
    second = await start_daemon(workspace)
    assert_sees_the_new_workspace(await run(second), workspace, "seen by the second")
    assert_sees_the_new_workspace(await run(first), workspace, "seen by the second")


async def test_a_new_daemon_runs_in_a_workspace_made_again_after_the_first_left_its_container_running(
    make_workspace, start_daemon, engine
):
    workspace, first = await first_run(make_workspace, start_daemon, "left")
    await leave(first)
    assert [c.status for c in containers_of(engine, workspace)] == ["running"]  # stop_container = false
    make_again(workspace, "after the first left")
    second = await start_daemon(workspace)
    assert_sees_the_new_workspace(await run(second), workspace, "after the first left")


async def test_a_daemon_whose_own_folder_was_removed_under_it_runs_the_next_block(
    make_workspace, start_daemon, private_xdg
):
    # Its blocks, runner socket and token were there: every run was refused
    # ("Filename is not valid") until the daemon was restarted.
    workspace, daemon = await first_run(make_workspace, start_daemon, "own")
    remove_the_daemons_folder(private_xdg)
    (workspace / "marker.txt").write_text("still here\n")
    assert_sees_the_new_workspace(await run(daemon), workspace, "still here")
    other = await start_daemon(workspace)
    assert_sees_the_new_workspace(await run(other), workspace, "still here")
    assert_sees_the_new_workspace(await run(daemon), workspace, "still here")


@pytest.mark.parametrize("made_again", ["workspace", "daemon's folder"])
async def test_a_new_client_after_everything_was_deleted_runs_at_once(
    make_workspace, start_daemon, engine, private_xdg, made_again
):
    workspace, first = await first_run(make_workspace, start_daemon, "wiped")
    await leave(first)
    remove_the_daemons_folder(private_xdg)
    if made_again == "workspace":
        make_again(workspace, "all new")
    else:
        (workspace / "marker.txt").write_text("all new\n")
    second = await start_daemon(workspace)
    assert_sees_the_new_workspace(await run(second), workspace, "all new")
    result = await run(second, "python3 -c 'print(6 * 7)'")
    assert (result["exitCode"], result["output"]) == (0, "42\n")
