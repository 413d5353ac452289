"""Unit tests of the sandbox's decisions, over a fake engine (fake_engine.py):
when a container is reused, replaced or made anew, when bind mode falls back
to copy mode, the retry of a block whose container vanished, how a run's end
becomes a status, and the bookkeeping of timeouts and cancels. The engine
itself is tested end to end (tests/e2e), never here."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest
from fake_engine import Behaviour, FakeEngine, prints

from cellbox.errors import ImageUnavailable, SandboxFailed
from cellbox.sandbox import run
from cellbox.sandbox.core import Sandbox
from cellbox.sandbox.request import BlockToRun, RunListener
from cellbox.sandbox.spec import container_name_for
from cellbox.vocabulary import LABEL_SPEC

PY = BlockToRun("python", "print('hi')")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def sandbox_of(workspace: Path, engine: FakeEngine, **settings: object) -> Sandbox:
    # bind_dir names the workspace itself: no nosuid view is mounted on this host.
    overrides = {"image": "fake-image", "bind_dir": str(workspace), **settings}
    return Sandbox(workspace, engine, overrides)


async def test_a_block_runs_in_a_new_container_and_the_next_reuses_it(workspace: Path) -> None:
    engine = FakeEngine()
    engine.program = lambda command: prints(f"ran {command[0]}\n")
    sandbox = sandbox_of(workspace, engine)

    first = await sandbox.execute([PY])
    second = await sandbox.execute([PY])

    assert (first.status, first.output) == ("ok", "ran python\n")
    assert second.status == "ok"
    name = container_name_for(workspace)
    assert engine.asked("create_container") == [name]
    assert engine.asked("start_container") == [name]
    assert engine.asked("exec_stream") == [name, name]


async def test_a_container_made_from_other_settings_is_replaced(workspace: Path) -> None:
    engine = FakeEngine()
    earlier = sandbox_of(workspace, engine, env={"A": "1"})
    await earlier.execute([PY])
    earlier.close()  # its daemon went away
    old = engine.containers[container_name_for(workspace)].info

    result = await sandbox_of(workspace, engine, env={"A": "2"}).execute([PY])

    new = engine.containers[container_name_for(workspace)].info
    assert result.status == "ok"
    assert engine.asked("remove_container") == [container_name_for(workspace)]
    assert new.id != old.id and new.labels[LABEL_SPEC] != old.labels[LABEL_SPEC]
    assert engine.containers[new.name].spec.env["A"] == "2"


async def test_a_workspace_made_again_at_its_path_gets_a_new_container(workspace: Path) -> None:
    # A running container keeps the folder its bind named when it started;
    # its files deleted, the folder is still the one shown, but made again
    # at the same path it is not (tests/e2e/test_cleaned_workspace.py).
    engine = FakeEngine()
    sandbox = sandbox_of(workspace, engine)
    (workspace / "old.txt").write_text("old\n")
    await sandbox.execute([PY])
    first = engine.containers[container_name_for(workspace)].info.id
    (workspace / "old.txt").unlink()
    await sandbox.execute([PY])
    assert engine.asked("remove_container") == []

    held = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)  # as the container's mount holds it
    try:
        workspace.rmdir()
        workspace.mkdir()
        result = await sandbox.execute([PY])
    finally:
        os.close(held)

    assert result.status == "ok"
    assert engine.asked("remove_container") == [container_name_for(workspace)]
    assert engine.containers[container_name_for(workspace)].info.id != first


async def test_the_daemons_folder_removed_under_it_is_made_again(workspace: Path) -> None:
    engine = FakeEngine()
    sandbox = sandbox_of(workspace, engine)
    await sandbox.execute([PY])
    first = engine.containers[container_name_for(workspace)].info.id
    folders = await sandbox.state()
    held = [os.open(f, os.O_RDONLY | os.O_DIRECTORY) for f in (folders.blocks, folders.run, folders.kernels)]
    try:  # as the container's mounts hold them
        shutil.rmtree(folders.root)
        result = await sandbox.execute([PY])
    finally:
        for fd in held:
            os.close(fd)

    assert result.status == "ok"
    assert (await sandbox.state()).blocks.is_dir()
    assert engine.containers[container_name_for(workspace)].info.id != first  # bound to the new folders


async def test_a_container_replaced_beside_another_daemon_is_started(workspace: Path) -> None:
    engine = FakeEngine()
    await sandbox_of(workspace, engine, env={"A": "1"}).execute([PY])  # still attached: holds the runner socket

    result = await sandbox_of(workspace, engine, env={"A": "2"}).execute([PY])

    assert result.status == "ok"
    assert engine.containers[container_name_for(workspace)].info.state == "running"


async def test_a_container_with_the_same_settings_is_adopted(workspace: Path) -> None:
    engine = FakeEngine()
    earlier = sandbox_of(workspace, engine)
    await earlier.execute([PY])
    earlier.close()
    original = engine.containers[container_name_for(workspace)].info

    await sandbox_of(workspace, engine).execute([PY])  # the next daemon's Sandbox, same settings

    assert engine.asked("remove_container") == []
    assert engine.containers[container_name_for(workspace)].info.id == original.id


async def test_a_foreign_container_of_that_name_is_never_touched(workspace: Path) -> None:
    engine = FakeEngine()
    engine.add_foreign(container_name_for(workspace))
    sandbox = sandbox_of(workspace, engine)

    with pytest.raises(SandboxFailed, match="not the sandbox of"):
        await sandbox.execute([PY])
    info = await sandbox.info()

    assert info.state == "foreign"
    assert engine.asked("remove_container") == [] and engine.asked("exec_stream") == []


async def test_auto_falls_back_to_copy_when_the_engine_cannot_see_the_folder(workspace: Path) -> None:
    engine = FakeEngine()
    engine.sees_bind_sources = False
    (workspace / "data.txt").write_text("x")
    sandbox = sandbox_of(workspace, engine, workspace_mount="auto")

    result = await sandbox.execute([PY])

    container = engine.containers[container_name_for(workspace)]
    assert result.status == "ok"
    assert container.spec.workspace_mount == "copy"
    assert "data.txt" in container.files  # the workspace went in through the archive API


async def test_auto_falls_back_to_copy_when_the_bind_mount_shows_another_folder(workspace: Path) -> None:
    engine = FakeEngine()
    engine.shows_workspace = False  # a remote Docker makes an empty folder of its own
    sandbox = sandbox_of(workspace, engine, workspace_mount="auto")

    result = await sandbox.execute([PY])

    assert result.status == "ok"
    assert engine.containers[container_name_for(workspace)].spec.workspace_mount == "copy"
    assert engine.asked("remove_container") == [container_name_for(workspace)]  # the bind one went


async def test_bind_mode_says_what_to_do_when_the_engine_shows_another_folder(workspace: Path) -> None:
    engine = FakeEngine()
    engine.shows_workspace = False
    sandbox = sandbox_of(workspace, engine, workspace_mount="bind")

    with pytest.raises(SandboxFailed, match='workspace_mount = "copy"'):
        await sandbox.execute([PY])


async def test_a_block_whose_container_vanished_is_retried_once_in_a_new_one(workspace: Path) -> None:
    engine = FakeEngine()
    sandbox = sandbox_of(workspace, engine)
    await sandbox.execute([PY])
    engine.vanishing_execs = 1

    result = await sandbox.execute([PY])

    name = container_name_for(workspace)
    assert result.status == "ok"
    assert engine.asked("create_container") == [name, name]


async def test_a_container_the_engine_calls_running_but_cannot_use_is_made_anew(workspace: Path) -> None:
    engine = FakeEngine()
    earlier = sandbox_of(workspace, engine)
    await earlier.restart()
    earlier.close()
    name = container_name_for(workspace)
    engine.broken.add(name)

    result = await sandbox_of(workspace, engine).execute([PY])  # a daemon that finds it so

    assert result.status == "ok"
    assert engine.asked("remove_container") == [name]
    assert engine.asked("create_container")[-1] == name and engine.asked("exec_stream") == [name]


async def test_the_retry_gives_up_after_a_second_loss(workspace: Path) -> None:
    engine = FakeEngine()
    sandbox = sandbox_of(workspace, engine)
    await sandbox.execute([PY])
    engine.vanishing_execs = 2

    with pytest.raises(SandboxFailed, match="could not run the block"):
        await sandbox.execute([PY])


async def test_a_timeout_kills_the_run_and_says_so(workspace: Path) -> None:
    engine = FakeEngine()
    engine.program = lambda command: Behaviour([("stdout", b"working\n")], hangs=True)
    sandbox = sandbox_of(workspace, engine)

    result = await sandbox.execute([PY, PY], timeout=0.2)

    block = result.blocks[0]
    assert (block.status, block.exit_code, block.timed_out) == ("timeout", 124, True)
    assert block.output == "working\n\nTimeout"
    assert len(result.blocks) == 1, "the run stops at the block that failed"
    assert len(engine.killed) == 1


async def test_a_cancel_kills_the_running_block_and_skips_the_rest(workspace: Path) -> None:
    engine = FakeEngine()
    engine.program = lambda command: Behaviour(hangs=True)
    sandbox = sandbox_of(workspace, engine)
    cancelled = asyncio.Event()

    class CancelOnStart(RunListener):
        def block_started(self, index: int, block: BlockToRun) -> None:
            asyncio.get_running_loop().call_later(0.1, cancelled.set)

    result = await sandbox.execute([PY, PY], timeout=30, cancelled=cancelled, listener=CancelOnStart())

    assert [(b.status, b.exit_code) for b in result.blocks] == [("cancelled", 130)]
    assert result.blocks[0].output.endswith("Cancelled")
    assert len(engine.killed) == 1


async def test_a_run_cancelled_before_its_turn_runs_nothing(workspace: Path) -> None:
    engine = FakeEngine()
    cancelled = asyncio.Event()
    cancelled.set()

    result = await sandbox_of(workspace, engine).execute([PY], cancelled=cancelled)

    assert [(b.status, b.executed) for b in result.blocks] == [("cancelled", False)]
    assert engine.asked("create_container") == []


async def test_an_unexplained_kill_is_oom_only_when_the_engine_saw_one(workspace: Path, monkeypatch) -> None:
    monkeypatch.setattr(run, "OOM_EVENT_WAIT_SECONDS", 0.3)
    engine = FakeEngine()
    engine.program = lambda command: Behaviour(exit_code=137)
    sandbox = sandbox_of(workspace, engine)

    unexplained = await sandbox.execute([PY])
    engine.oom_since.append(time.time())
    oom = await sandbox.execute([PY])

    assert unexplained.status == "error"
    assert oom.status == "oom"


@pytest.mark.parametrize(("action", "said"), [("restart", "restarted"), ("stop", "stopped")])
async def test_a_block_the_sandbox_s_restart_or_stop_ended_says_so(
    workspace: Path, action: str, said: str, monkeypatch
) -> None:
    monkeypatch.setattr(run, "OOM_EVENT_WAIT_SECONDS", 0.3)
    engine = FakeEngine()
    engine.program = lambda command: Behaviour([("stdout", b"working\n")], hangs=True)
    sandbox = sandbox_of(workspace, engine)
    running = asyncio.ensure_future(sandbox.execute([PY, PY], timeout=30))
    while not engine.asked("exec_stream"):
        await asyncio.sleep(0.01)

    await getattr(sandbox, action)()
    result = await running

    assert [(b.status, b.exit_code) for b in result.blocks] == [("interrupted", 137)]
    assert result.blocks[0].output == f"working\n\ncellbox: the sandbox was {said} while this block ran, which ended it\n"
    assert [s.block_index for s in result.skipped] == [1]
    # A kill nobody here asked for stays unexplained (the engine is asked about oom).
    engine.program = lambda command: Behaviour(exit_code=137)
    assert (await sandbox.execute([PY])).status != "interrupted"


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (run.RunOutcome(0, "", False, 0.0), "ok"),
        (run.RunOutcome(1, "", False, 0.0), "error"),
        (run.RunOutcome(124, "", False, 0.0, timed_out=True), "timeout"),
        (run.RunOutcome(130, "", False, 0.0, cancelled=True), "cancelled"),
        (run.RunOutcome(153, "", False, 0.0), "output_limit"),  # 128 + SIGXFSZ
        (run.RunOutcome(137, "", False, 0.0, oom_kills=1), "oom"),
        (run.RunOutcome(137, "", False, 0.0, oom_kills=0), "error"),
        (run.RunOutcome(137, "", False, 0.0, interrupted=True), "error"),
        (run.RunOutcome(137, "", False, 0.0), None),  # only the engine can tell
    ],
)
def test_how_a_run_ends_is_told(outcome: run.RunOutcome, status: str | None) -> None:
    assert run.status_of(outcome) == status


async def test_an_image_named_by_an_unapproved_file_is_never_pulled(workspace: Path) -> None:
    engine = FakeEngine(images=())
    engine.registry.add("elsewhere:1")
    (workspace / "cellbox.toml").write_text('image = "elsewhere:1"\n')
    sandbox = Sandbox(workspace, engine, {"bind_dir": str(workspace)})

    with pytest.raises(ImageUnavailable, match="does not pull an image"):
        await sandbox.execute([PY])
    assert engine.asked("pull_image") == []


async def test_an_image_the_user_named_is_pulled(workspace: Path) -> None:
    engine = FakeEngine(images=())
    engine.registry.add("mine:1")

    result = await sandbox_of(workspace, engine, image="mine:1").execute([PY])

    assert result.status == "ok" and engine.asked("pull_image") == ["mine:1"]


async def test_restart_restarts_the_running_container_and_stop_stops_it(workspace: Path) -> None:
    engine = FakeEngine()
    sandbox = sandbox_of(workspace, engine, auto_remove=False)
    await sandbox.execute([PY])
    name = container_name_for(workspace)

    restarted = await sandbox.restart()
    stopped = await sandbox.stop()

    assert (restarted.state, stopped.state) == ("running", "stopped")
    assert engine.asked("restart_container") == [name] and engine.asked("stop_container") == [name]
    assert (await sandbox.info()).state == "exited"
