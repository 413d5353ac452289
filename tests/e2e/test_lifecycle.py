"""One container per workspace: reuse, restart, stop, shutdown, and settings."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.conftest import TEST_IMAGE, containers_of


async def test_the_container_is_named_and_labelled_from_the_workspace(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", "true"))
    (container,) = containers_of(engine, workspace)
    assert container.name == result["container"]
    assert container.name.startswith("cellbox-ws-") and len(container.name) == len("cellbox-ws-") + 10
    assert container.labels["org.cellbox.workspace"] == str(workspace)
    mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
    # The workspace, the daemon's own folders for blocks and the runner, read-only,
    # and its folder for session kernels' sockets.
    assert mounts == {"/workspace": True, "/cellbox/blocks": False, "/cellbox/run": False, "/cellbox/kernels": True,
                      "/cellbox/packages": True}


async def test_the_container_is_created_lazily_on_the_first_execute(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)  # `serve --eager` starts it at initialize: test_early_start.py
    await daemon.command("cellbox.status", {})
    assert containers_of(engine, workspace) == []
    await daemon.execute(("sh", "true"))
    assert len(containers_of(engine, workspace)) == 1


async def test_a_second_daemon_reuses_the_running_container(workspace, start_daemon, engine):
    first = await start_daemon(workspace)
    await first.execute(("sh", "echo hello > /tmp/marker"))
    (container,) = containers_of(engine, workspace)
    second = await start_daemon(workspace)
    result = await second.execute(("sh", "cat /tmp/marker"))
    assert result["output"] == "hello\n"  # the same container, not a new one from the image
    assert [c.id for c in containers_of(engine, workspace)] == [container.id]


async def test_concurrent_first_requests_create_one_container(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    results = await asyncio.gather(*(daemon.execute(("sh", f"echo {i}")) for i in range(5)))
    assert [r["output"] for r in results] == [f"{i}\n" for i in range(5)]
    assert len(containers_of(engine, workspace)) == 1


async def test_workspaces_never_share_a_container(make_workspace, start_daemon, engine):
    first, second = make_workspace("a"), make_workspace("b")
    daemon = await start_daemon(first)
    one = await daemon.execute(("sh", "echo one > /tmp/who"), workspace=str(first))
    two = await daemon.execute(("sh", "cat /tmp/who 2>/dev/null || echo none"), workspace=str(second))
    assert one["container"] != two["container"]
    assert two["output"] == "none\n"
    assert len(containers_of(engine, first)) == len(containers_of(engine, second)) == 1


async def test_restart_restarts_the_container_and_keeps_workspace_files(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "echo kept > kept.txt"))
    (container,) = containers_of(engine, workspace)
    started_at = container.attrs["State"]["StartedAt"]
    result = await daemon.command("cellbox.restart", {})
    assert result == {"workspace": str(workspace), "container": container.name, "state": "running"}
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] != started_at
    after = await daemon.execute(("sh", "cat kept.txt"))
    assert after["output"] == "kept\n"


async def test_a_run_asked_a_moment_after_a_restart_runs_at_once(workspace, start_daemon):
    # The restarted container's runner connects with the token the restart
    # wrote, before the next run asks for it. That run used to write a new
    # token, leave the connected runner unheard, and wait 30 s for "runner did
    # not connect". The old runner is frozen (by a block: it is the block's
    # parent) so that it cannot take that token first, which is what made
    # the bug come and go.
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    frozen = asyncio.ensure_future(daemon.execute(("sh", "sleep 0.3; kill -STOP $PPID; sleep 100")))
    await asyncio.sleep(1)
    await daemon.command("cellbox.restart", {})
    await asyncio.wait_for(frozen, 15)
    await asyncio.sleep(1)  # the new runner is connected by now
    after = await asyncio.wait_for(daemon.execute(("python", "print('after the restart')")), 10)
    assert after["output"] == "after the restart\n"


async def test_restart_kills_a_running_block(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    running = asyncio.ensure_future(daemon.execute(("python", "import time\ntime.sleep(60)"), timeout=120))
    await asyncio.sleep(1.5)
    await daemon.command("cellbox.restart", {})
    result = await asyncio.wait_for(running, 15)
    assert result["exitCode"] != 0 and result["timedOut"] is False


@pytest.mark.parametrize(("command", "done"), [("cellbox.restart", "restarted"), ("cellbox.stop", "stopped")])
async def test_a_block_ended_by_a_restart_or_stop_says_so(workspace, start_daemon, command, done):
    daemon = await start_daemon(workspace)
    code = "print('started', flush=True)\nimport time\ntime.sleep(60)"
    running = asyncio.ensure_future(daemon.execute(("python", code), ("sh", "echo next"), timeout=120, runId="r1"))
    for _ in range(100):
        if any(getattr(n, "text", "") == "started\n" for n in daemon.client.cellbox_output):
            break
        await asyncio.sleep(0.05)
    await daemon.command(command, {})
    result = await asyncio.wait_for(running, 15)
    (block,) = result["blocks"]
    note = f"\ncellbox: the sandbox was {done} while this block ran, which ended it\n"
    assert (block["status"], block["output"]) == ("interrupted", "started\n" + note)
    assert result["status"] == "interrupted" and len(result["skipped"]) == 1
    streamed = "".join(n.text for n in daemon.client.cellbox_output if n.runId == "r1" and hasattr(n, "text"))
    assert streamed == block["output"]
    # A block that fails by itself afterwards is an error as before.
    after = await daemon.execute(("sh", "kill -9 $$"))
    assert (after["status"], after["exitCode"]) == ("error", 137)


async def test_stop_stops_and_the_next_execute_starts_again(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    first = await daemon.execute(("sh", "true"))
    stopped = await daemon.command("cellbox.stop", {"workspace": str(workspace)})
    assert stopped == {"workspace": str(workspace), "container": first["container"], "state": "stopped"}
    assert containers_of(engine, workspace) == []  # autoRemove (the default) removed it
    status = await daemon.command("cellbox.status", {})
    assert status["sandboxes"][0]["state"] == "absent"
    again = await daemon.execute(("sh", "echo back"))
    assert again["output"] == "back\n" and again["container"] == first["container"]


async def test_without_auto_remove_a_stopped_container_is_kept_and_restarted(make_workspace, start_daemon, engine):
    workspace = make_workspace("keep", f'image = "{TEST_IMAGE}"\nauto_remove = false\n')
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    await daemon.command("cellbox.stop", {})
    (container,) = containers_of(engine, workspace)
    assert container.status == "exited"
    status = await daemon.command("cellbox.status", {})
    assert status["sandboxes"][0]["state"] == "exited"
    result = await daemon.execute(("sh", "echo again"))
    assert result["output"] == "again\n"
    (again,) = containers_of(engine, workspace)
    assert (again.id, again.status) == (container.id, "running")  # the same container, started again


async def test_shutdown_stops_the_containers_this_daemon_started(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    assert len(containers_of(engine, workspace)) == 1
    await daemon.client.shutdown_session()
    assert containers_of(engine, workspace) == []


async def test_shutdown_keeps_containers_when_stop_container_is_false(make_workspace, start_daemon, engine):
    workspace = make_workspace("stay", f'image = "{TEST_IMAGE}"\nstop_container = false\n')
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    await daemon.client.shutdown_session()
    (container,) = containers_of(engine, workspace)
    assert container.status == "running"


@pytest.mark.parametrize("fault", ["remove", "kill", "stop"])
async def test_a_container_removed_or_killed_from_outside_comes_back(make_workspace, start_daemon, engine, fault):
    # auto_remove off, so that a killed or stopped container is still there to restart.
    workspace = make_workspace("outside", f'image = "{TEST_IMAGE}"\nauto_remove = false\n')
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (container,) = containers_of(engine, workspace)
    {"remove": lambda: container.remove(force=True), "kill": container.kill, "stop": container.stop}[fault]()
    result = await daemon.execute(("sh", "echo back"))
    assert result["output"] == "back\n"
    assert [c.status for c in containers_of(engine, workspace)] == ["running"]


async def test_changing_the_image_replaces_the_container(make_workspace, start_daemon, engine):
    workspace = make_workspace("change")
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (old,) = containers_of(engine, workspace)
    (workspace / "cellbox.toml").write_text(f'image = "{TEST_IMAGE}"\nnetwork = "none"\nauto_remove = false\n')
    await daemon.execute(("sh", "true"))
    (new,) = containers_of(engine, workspace)
    assert new.id != old.id and new.attrs["HostConfig"]["AutoRemove"] is False


async def test_bind_dir_is_what_the_engine_mounts(make_workspace, start_daemon, engine, tmp_path):
    # The docker-in-docker case: the engine knows the workspace under another
    # path. A symlink stands in for that other path here.
    workspace = make_workspace("inner")
    outer = tmp_path / "outer-view"
    outer.symlink_to(workspace)
    (workspace / "marker.txt").write_text("seen through bind_dir\n")
    daemon = await start_daemon(workspace, init_options={"bindDir": str(outer)})  # a client setting: it loosens
    result = await daemon.execute(("python", "print(open('marker.txt').read(), end='')"))
    assert result["output"] == "seen through bind_dir\n"
    (container,) = containers_of(engine, workspace)
    assert container.attrs["HostConfig"]["Binds"][0] == f"{outer}:/workspace:rw"


async def test_container_name_setting(make_workspace, start_daemon, engine):
    workspace = make_workspace("named")
    daemon = await start_daemon(workspace, init_options={"containerName": "cellbox-test-fixed-name"})
    result = await daemon.execute(("sh", "true"))
    assert result["container"] == "cellbox-test-fixed-name"
    assert [c.name for c in containers_of(engine, workspace)] == ["cellbox-test-fixed-name"]


async def test_a_client_that_just_closes_stdin_still_gets_its_containers_stopped(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    server = daemon.client._server
    server.stdin.close()  # no shutdown, no exit: an editor that crashed
    await asyncio.wait_for(server.wait(), 15)
    assert containers_of(engine, workspace) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_a_terminated_server_still_stops_its_containers(workspace, start_daemon, engine, signum):
    # code-server shutting down, or the terminal that ran `cellbox serve` closing.
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    assert len(containers_of(engine, workspace)) == 1
    running = asyncio.ensure_future(daemon.execute(("sh", "sleep 60")))
    await asyncio.sleep(0.5)
    server = daemon.client._server
    server.send_signal(signum)
    assert await asyncio.wait_for(server.wait(), 15) == 0
    assert containers_of(engine, workspace) == []
    running.cancel()
