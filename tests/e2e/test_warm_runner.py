"""The fast path: blocks start from the warm runner in the container, which is
replaced when it dies or wedges; images without Python fall back to docker exec."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import containers_of
from tests.e2e.test_execution import surviving

BUSYBOX_IMAGE = "cellbox-test-busybox:latest"
PARENT = "cat /proc/$PPID/cmdline | tr '\\0' ' '"


def runner_pids(engine, workspace) -> list[str]:
    (container,) = containers_of(engine, workspace)
    listing = container.exec_run(["ps", "-eo", "pid=,args="]).output.decode()
    rows = [line.strip().split(None, 1) for line in listing.splitlines()]
    return [pid for pid, args in rows if args.startswith("python3 -I -S -c")]


async def test_blocks_are_started_by_the_warm_runner(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", PARENT), ("python", "import os; print(os.getsid(0) == os.getpid())"))
    assert result["blocks"][0]["output"].startswith("python3 -I -S -c")  # not a docker exec shell
    assert result["blocks"][1]["output"] == "True\n"  # a session (and process group) of its own
    assert len(runner_pids(engine, workspace)) == 1


async def test_a_killed_runner_is_replaced_without_losing_the_next_request(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (old,) = runner_pids(engine, workspace)
    (container,) = containers_of(engine, workspace)
    container.exec_run(["kill", "-9", old])
    result = await daemon.execute(("python", "print('after the kill')"))
    assert (result["exitCode"], result["output"]) == (0, "after the kill\n")
    (new,) = runner_pids(engine, workspace)
    assert new != old


async def test_a_wedged_runner_is_detected_and_replaced(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (old,) = runner_pids(engine, workspace)
    (container,) = containers_of(engine, workspace)
    container.exec_run(["kill", "-STOP", old])  # alive, attached, but answering nothing
    result = await daemon.execute(("sh", "echo served"))
    assert (result["exitCode"], result["output"]) == (0, "served\n")
    assert old not in runner_pids(engine, workspace)


async def test_a_run_in_one_workspace_never_delays_another(make_workspace, start_daemon):
    slow, fast = make_workspace("slow"), make_workspace("fast")
    daemon = await start_daemon(slow)
    await daemon.execute(("sh", "true"), workspace=str(fast))  # both containers up
    long_run = asyncio.ensure_future(daemon.execute(("sh", "sleep 4; echo slow"), workspace=str(slow)))
    await asyncio.sleep(0.5)
    quick = await daemon.execute(("sh", "echo quick"), workspace=str(fast))
    status = await daemon.command("cellbox.status", {})
    restarted = await daemon.command("cellbox.restart", {"workspace": str(fast)})
    assert quick["output"] == "quick\n" and restarted["state"] == "running"
    assert {s["state"] for s in status["sandboxes"]} == {"running"}
    assert not long_run.done()  # all of the above happened while the slow block ran
    assert (await long_run)["output"] == "slow\n"


async def test_runs_in_one_workspace_go_one_after_another_in_arrival_order(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    runs = [daemon.execute(("sh", f"echo {i} >> order.txt; sleep 0.1; echo {i} >> order.txt")) for i in range(6)]
    await asyncio.gather(*runs)
    lines = (workspace / "order.txt").read_text().split()
    assert lines == [str(i) for i in range(6) for _ in range(2)]  # never interleaved


async def test_an_image_without_python_falls_back_to_docker_exec(make_workspace, start_daemon, engine):
    workspace = make_workspace("busybox", f'image = "{BUSYBOX_IMAGE}"\n')
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("sh", "echo from busybox; echo to stderr >&2"),
        ("sh", PARENT),
        ("sh", "exit 7"),
    )
    assert [b["exitCode"] for b in result["blocks"]] == [0, 0, 7]
    assert sorted(result["blocks"][0]["output"].splitlines()) == ["from busybox", "to stderr"]
    assert result["blocks"][1]["output"].startswith("sh -c")  # the exec wrapper, not a runner
    missing = await daemon.execute(("python", "print(1)"))
    assert missing["exitCode"] == 127 and "python" in missing["output"]


async def test_a_timeout_on_the_exec_fallback_leaves_nothing_behind(make_workspace, start_daemon, engine):
    workspace = make_workspace("busybox-timeout", f'image = "{BUSYBOX_IMAGE}"\n')
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", "sleep 311 &\nsetsid sleep 312 &\necho started\nsleep 313"), timeout=1)
    assert (result["exitCode"], result["timedOut"], result["output"]) == (124, True, "started\n\nTimeout")
    assert surviving(engine, workspace, r"sleep 31[123]") == []


async def test_restart_and_stop_do_not_wait_out_a_grace_period(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (container,) = containers_of(engine, workspace)
    # The main process exits on SIGTERM at once: the engine records exit code 0
    # (a clean exit), not 137 (killed after the grace period).
    since = int(time.time()) - 1
    await daemon.command("cellbox.restart", {})
    await daemon.command("cellbox.stop", {})
    events = engine.events(
        since=since, until=int(time.time()) + 1, decode=True,
        filters={"container": container.id, "event": "die"},
    )
    exit_codes = [event["Actor"]["Attributes"]["exitCode"] for event in events]
    assert exit_codes == ["0", "0"]


async def test_a_daemon_killed_mid_run_takes_its_run_with_it(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    running = asyncio.ensure_future(daemon.execute(("bash", "sleep 321 &\nsetsid sleep 322 &\nsleep 323"), timeout=300))
    await asyncio.sleep(1.0)
    assert len(surviving(engine, workspace, r"^sleep 32[123]")) == 3
    daemon.client._server.kill()  # SIGKILL: no shutdown, no clean-up of its own
    await daemon.client._server.wait()
    running.cancel()
    # The runner saw the daemon's connection close and killed the whole run;
    # the container itself is left for the next daemon to adopt.
    assert surviving(engine, workspace, r"^sleep 32[123]") == []
    (container,) = containers_of(engine, workspace)
    assert container.status == "running"
    adopter = await start_daemon(workspace)
    assert (await adopter.execute(("sh", "echo adopted")))["output"] == "adopted\n"


async def test_refused_or_saved_only_blocks_need_no_container(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("html", "<p>saved</p>"), ("ruby", "puts 1"))
    assert [b["executed"] for b in result["blocks"]] == [False, False]
    assert result["container"].startswith("cellbox-ws-")
    assert containers_of(engine, workspace) == []
