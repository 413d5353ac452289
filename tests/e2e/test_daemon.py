"""The per-project daemon: one process and one container shared by every
client, found again after `start`, gone when idle, recovered after a kill,
and closed to other users."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from tests.conftest import containers_of
from tests.e2e.daemon_support import CONSOLE_SCRIPT, cellbox, wait_for


def daemon_status(workspace: Path) -> dict:
    result = cellbox("daemon", "status", str(workspace), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start(workspace: Path, *extra: str) -> dict:
    result = cellbox("daemon", "start", str(workspace), "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_start_twice_gives_the_running_daemon_and_stop_ends_it(workspace, runtime_dir):
    first = start(workspace)
    assert first["running"] and first["pid"]
    again = cellbox("daemon", "start", str(workspace))
    assert again.returncode == 0
    assert f"already running: daemon for {workspace}: running, pid {first['pid']}" in again.stdout
    socket_path = Path(first["socket"])
    # Private: a folder of the user's own, not in the project, and a 0600 socket.
    assert runtime_dir in socket_path.parents and workspace not in socket_path.parents
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    assert Path(first["log"]).exists()

    stopped = cellbox("daemon", "stop", str(workspace))
    assert stopped.returncode == 0 and f"stopped (pid {first['pid']})" in stopped.stdout
    assert daemon_status(workspace)["running"] is False
    assert not socket_path.exists()
    assert "was not running" in cellbox("daemon", "stop", str(workspace)).stdout


async def test_two_clients_share_one_daemon_and_one_container_each_with_its_own_output(
    workspace, runtime_dir, start_daemon, engine
):
    bridge = [CONSOLE_SCRIPT, "serve", "--connect"]
    # The bridge starts the project's daemon itself: the editor needs no other change.
    editor = await start_daemon(workspace, command=bridge)
    running = daemon_status(workspace)
    assert running["running"]
    other = await start_daemon(workspace, command=bridge)

    first = await editor.execute(("bash", "echo from-editor; echo shared > /tmp/mark; hostname"))
    second = await other.execute(("bash", "echo from-other; cat /tmp/mark; hostname"))
    assert first["blocks"][0]["output"].startswith("from-editor\n")
    assert second["blocks"][0]["output"].startswith("from-other\nshared\n")  # the same container's /tmp
    assert first["blocks"][0]["output"].split()[-1] == second["blocks"][0]["output"].split()[-1]
    assert len(containers_of(engine, workspace)) == 1

    # Each client hears only its own runs.
    editor_text = "".join(n.text for n in editor.client.cellbox_output if hasattr(n, "text"))
    other_text = "".join(n.text for n in other.client.cellbox_output if hasattr(n, "text"))
    assert "from-editor" in editor_text and "from-other" not in editor_text
    assert "from-other" in other_text and "from-editor" not in other_text

    # One client leaving ends neither the daemon nor the other client's sandbox.
    await editor.client.shutdown_session()
    await editor.client.stop()
    after = await other.execute(("bash", "cat /tmp/mark"))
    assert after["output"] == "shared\n"
    assert daemon_status(workspace)["pid"] == running["pid"]


async def test_a_client_that_hangs_up_mid_run_leaves_nothing_running(workspace, runtime_dir, start_daemon, engine):
    import asyncio

    from tests.e2e.test_execution import surviving

    start(workspace)
    leaving = await start_daemon(workspace, command=[CONSOLE_SCRIPT, "serve", "--connect"])
    run = asyncio.ensure_future(leaving.execute(("bash", "echo started; sleep 300"), runId="long"))
    await asyncio.to_thread(
        wait_for, lambda: any(getattr(n, "text", "") == "started\n" for n in leaving.client.cellbox_output),
        60, "the block to start",
    )
    leaving.client._server.stdin.close()  # the editor is killed: its pipe closes, no shutdown
    await leaving.client.stop()
    run.cancel()
    assert await asyncio.to_thread(
        wait_for, lambda: not surviving(engine, workspace, r"sleep 300"), 30, "the orphaned run to be killed"
    )
    assert daemon_status(workspace)["running"]


def test_the_daemon_stops_itself_and_its_container_when_idle(workspace, runtime_dir, engine):
    started = start(workspace, "--idle-timeout", "2")
    ran = cellbox("exec", "-L", "sh", "-c", "echo hi", "--workspace", str(workspace))
    assert ran.returncode == 0 and ran.stdout == "hi\n"
    assert [c.status for c in containers_of(engine, workspace)] == ["running"]

    wait_for(lambda: not daemon_status(workspace)["running"], 60, "the idle daemon to stop")
    wait_for(lambda: not Path(f"/proc/{started['pid']}").exists(), 30, "the daemon process to exit")
    assert not Path(started["socket"]).exists()
    assert [c.status for c in containers_of(engine, workspace)] in ([], ["exited"])
    assert "idle for" in Path(started["log"]).read_text()


def test_a_stale_socket_from_a_killed_daemon_is_replaced(workspace, runtime_dir):
    killed = start(workspace)
    os.kill(killed["pid"], signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{killed['pid']}").exists(), 30, "the killed daemon to go")
    assert Path(killed["socket"]).exists()  # left behind, answering nobody
    assert daemon_status(workspace)["running"] is False

    fresh = start(workspace)
    assert fresh["running"] and fresh["pid"] != killed["pid"]
    ran = cellbox("exec", "-L", "sh", "-c", "echo back", "--workspace", str(workspace))
    assert ran.returncode == 0 and ran.stdout == "back\n"


def test_another_user_cannot_open_the_socket(workspace, runtime_dir):
    started = start(workspace)
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('refused')\n"
        "else:\n"
        "    print('connected')\n"
    )
    as_nobody = subprocess.run(
        ["/usr/bin/python3", "-c", probe, started["socket"]],
        user=65534, group=65534, extra_groups=[], capture_output=True, text=True, timeout=30,
    )
    assert as_nobody.stdout.strip() == "refused", as_nobody.stderr
    # The same probe as the daemon's own user connects: the refusal is the permissions.
    as_owner = subprocess.run(["/usr/bin/python3", "-c", probe, started["socket"]], capture_output=True, text=True)
    assert as_owner.stdout.strip() == "connected"


def _message(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


def _answers(stream, count: int) -> list[dict]:
    """The next `count` answers (messages with an id and no method), notifications skipped."""
    found = []
    while len(found) < count:
        length = None
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        assert length is not None, "the bridge closed before answering"
        message = json.loads(stream.read(length))
        if "id" in message and "method" not in message:
            found.append(message)
    return found


def test_the_bridge_passes_an_editors_first_burst_whole_and_ends_cleanly(workspace, runtime_dir, engine):
    # An editor may write initialize and its first requests in one go: what
    # came with initialize must reach the daemon too. And after `exit` the
    # bridge exits 0 (a thread blocked reading a buffered stdin made the
    # interpreter abort at its exit).
    start(workspace)
    bridge = subprocess.Popen([CONSOLE_SCRIPT, "serve", "--connect"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert bridge.stdin is not None and bridge.stdout is not None
    bridge.stdin.write(
        _message({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": None, "capabilities": {}, "rootUri": workspace.as_uri()}})
        + _message({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        + _message({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand", "params": {
            "command": "cellbox.execute", "arguments": [{"blocks": [{"language": "sh", "code": "echo burst"}]}]}})
    )
    bridge.stdin.flush()
    initialized, executed = _answers(bridge.stdout, 2)
    assert initialized["id"] == 1 and "capabilities" in initialized["result"]
    assert executed["result"]["output"] == "burst\n"
    bridge.stdin.write(_message({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
    bridge.stdin.flush()
    assert _answers(bridge.stdout, 1)[0]["id"] == 3
    # `exit`: the daemon hangs up on this client, and the bridge ends with
    # the editor's end of stdin still open.
    bridge.stdin.write(_message({"jsonrpc": "2.0", "method": "exit"}))
    bridge.stdin.flush()
    assert bridge.wait(30) == 0, bridge.stderr.read()
    bridge.stdin.close()
    assert b"Fatal" not in bridge.stderr.read()
    assert daemon_status(workspace)["running"]  # one editor leaving does not end the daemon
