"""cellbox.cancel: a run named by its client is stopped, with nothing left behind."""

from __future__ import annotations

import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from tests.e2e.test_execution import surviving
from tests.e2e.test_warm_runner import BUSYBOX_IMAGE

LONG = "sleep 341 &\nsetsid sleep 342 &\necho started\nsleep 343"


async def wait_for_output(workspace, name: str) -> None:
    for _ in range(100):
        if (workspace / name).exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never appeared")


@pytest.mark.parametrize("image", ["runner", "busybox"])
async def test_cancel_stops_the_run_and_everything_it_started(make_workspace, start_daemon, engine, image):
    from tests.conftest import TEST_IMAGE

    workspace = make_workspace(image, f'image = "{BUSYBOX_IMAGE if image == "busybox" else TEST_IMAGE}"\n')
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    running = asyncio.ensure_future(
        daemon.execute(("sh", "touch started.flag\n" + LONG), ("sh", "echo never"), runId="run-1", timeout=120)
    )
    await wait_for_output(workspace, "started.flag")
    answer = await daemon.command("cellbox.cancel", {"runId": "run-1"})
    assert answer == {"runId": "run-1", "cancelled": True}
    result = await asyncio.wait_for(running, 10)
    block = result["blocks"][0]
    assert (block["status"], block["exitCode"], block["timedOut"]) == ("cancelled", 130, False)
    assert block["output"] == "started\n\nCancelled"
    assert len(result["blocks"]) == 1 and result["status"] == "cancelled"
    assert surviving(engine, workspace, r"sleep 34[123]") == []
    # The name is free again, and the sandbox serves the next run.
    again = await daemon.execute(("sh", "echo next"), runId="run-1")
    assert again["output"] == "next\n"


async def test_cancelling_an_unknown_run_says_so(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    assert await daemon.command("cellbox.cancel", {"runId": "nothing"}) == {"runId": "nothing", "cancelled": False}
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.cancel", {})
    assert error.value.code == -32602 and "runId" in error.value.message


async def test_a_run_id_in_use_is_refused(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    running = asyncio.ensure_future(daemon.execute(("sh", "sleep 3"), runId="busy"))
    await asyncio.sleep(0.5)
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"), runId="busy")
    assert error.value.code == -32602 and "busy" in error.value.message
    assert (await running)["exitCode"] == 0


async def test_a_run_cancelled_while_waiting_its_turn_never_starts(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    first = asyncio.ensure_future(daemon.execute(("sh", "sleep 2"), runId="first"))
    await asyncio.sleep(0.5)
    queued = asyncio.ensure_future(daemon.execute(("sh", "touch ran.flag"), runId="queued"))
    await asyncio.sleep(0.2)
    assert (await daemon.command("cellbox.cancel", {"runId": "queued"}))["cancelled"] is True
    result = await queued
    assert result["blocks"][0]["status"] == "cancelled" and result["blocks"][0]["executed"] is False
    assert (await first)["exitCode"] == 0
    assert not (workspace / "ran.flag").exists()
