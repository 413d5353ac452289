"""`cellbox serve --eager` (what the editor clients start) starts the
workspace's sandbox as soon as `initialize` names it, before the first run
asks (lsp/stdio.py, Sandbox.prewarm); a plain `serve` makes it at the first
execute, as it always did. The early start goes
by the same settings and approvals as a run, never loosened without one,
stopped at shutdown even while it is still coming up, and silent when it
fails, leaving the first run to report the failure as it always did."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE, containers_of
from tests.e2e.conftest import SERVER_COMMAND
from tests.e2e.daemon_support import wait_for

EAGER = [*SERVER_COMMAND, "--eager"]

LOOSER = f'image = "{TEST_IMAGE}"\npids_limit = 300\n'
"""Raises a limit above its default (256): loosening, so it needs approval."""


def running_container(engine, workspace):
    found = [c for c in containers_of(engine, workspace) if c.status == "running"]
    return found[0] if found else None


async def wait_until_running(engine, workspace):
    return await asyncio.to_thread(
        wait_for, lambda: running_container(engine, workspace), 60, "the sandbox to start before any run"
    )


async def test_the_sandbox_starts_at_initialize_and_the_first_run_uses_it(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace, command=EAGER)
    container = await wait_until_running(engine, workspace)
    result = await daemon.execute(("python", "import os; print(os.getcwd())"))
    assert result["output"] == "/workspace\n"
    assert result["container"] == container.name
    assert [c.id for c in containers_of(engine, workspace)] == [container.id]  # used, not replaced
    await daemon.client.shutdown_session()
    await daemon.client.stop()
    assert containers_of(engine, workspace) == []  # stopped (and auto-removed) at shutdown, as before


async def test_a_plain_serve_starts_nothing_before_a_request(workspace, start_daemon, engine):
    # What `cellbox status` or `stop` starts with no daemon running: asking
    # must not make the container it asks about.
    daemon = await start_daemon(workspace)
    status = await daemon.command("cellbox.status", {})
    assert status["sandboxes"][0]["state"] == "absent"
    assert containers_of(engine, workspace) == []


async def test_an_unapproved_loosening_is_not_applied_early_and_an_approval_replaces_the_sandbox(
    make_workspace, start_daemon, engine
):
    workspace = make_workspace("looser", LOOSER)
    daemon = await start_daemon(workspace, command=EAGER)
    early = await wait_until_running(engine, workspace)
    assert early.attrs["HostConfig"]["PidsLimit"] == 256  # the file's 300 waits for the person's approval
    assert daemon.client.message_requests == []  # nobody was asked before a run
    daemon.client.message_answer = types.MessageActionItem(title="Allow")
    result = await daemon.execute(("sh", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"))
    assert result["output"] == "300\n"
    (now,) = containers_of(engine, workspace)
    assert now.id != early.id and now.attrs["HostConfig"]["PidsLimit"] == 300


def test_a_server_ended_while_the_sandbox_is_still_starting_leaves_no_container(workspace, engine):
    # SIGTERM as soon as the container exists, while pygls is still being
    # imported and the sandbox is still coming up: the server must wait for
    # that start to finish and then stop it, not exit and leave it running.
    server = subprocess.Popen([*EAGER, "--log-level", "WARNING"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ)
    assert server.stdin is not None
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "capabilities": {}, "rootUri": workspace.as_uri()}}).encode()
    server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    server.stdin.flush()
    try:
        wait_for(lambda: containers_of(engine, workspace), 60, "the early start to create the container", 0.01)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, server.stderr.read() if server.stderr else ""
    finally:
        server.kill()
        server.wait()
    # Nothing may be left, nor appear afterwards (a start finishing after the stop).
    for _ in range(20):
        assert containers_of(engine, workspace) == []
        time.sleep(0.1)


@pytest.mark.parametrize("case", ["bad config", "missing image"])
async def test_an_early_start_that_fails_is_silent_and_the_first_run_reports_it(
    make_workspace, start_daemon, engine, case
):
    if case == "bad config":
        workspace = make_workspace("bad", f'image = "{TEST_IMAGE}"\ntimeout = "soon"\n')
    else:
        workspace = make_workspace("noimage", 'image = "cellbox-test/no-such-image:never"\n')
    daemon = await start_daemon(workspace, command=EAGER)
    status = await daemon.command("cellbox.status", {})  # the server answers meanwhile
    assert status["sandboxes"][0]["state"] == "absent"
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"))
    assert ("timeout" if case == "bad config" else "cellbox-test/no-such-image:never") in error.value.message
    assert containers_of(engine, workspace) == []
