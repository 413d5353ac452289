"""Approving a workspace's settings, as a user does it: Allow in the editor's
prompt, `cellbox trust` on the command line, and losing the approval when the
file changes. The real daemon and engine; what the block sees is the proof."""

from __future__ import annotations

import os
import subprocess
import sys

from lsprotocol import types

from tests.conftest import TEST_IMAGE

LOOSER = f'image = "{TEST_IMAGE}"\npids_limit = 300\n'
"""Raises a limit above its default (256): loosening, so it needs approval."""
PIDS_MAX = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"


async def pids_max(daemon) -> str:
    return (await daemon.execute(("sh", PIDS_MAX)))["output"].strip()


async def test_allow_in_the_editor_applies_the_settings_to_this_run_and_the_next_daemon(make_workspace, start_daemon):
    workspace = make_workspace("allowed", LOOSER)
    daemon = await start_daemon(workspace)
    daemon.client.message_answer = types.MessageActionItem(title="Allow")
    assert await pids_max(daemon) == "300"
    (request,) = daemon.client.message_requests
    assert "pids_limit = 300" in request.message and str(workspace) in request.message
    assert [a.title for a in request.actions] == ["Allow", "Not now"]
    # The approval is the user's, not the connection's: another daemon applies it without asking.
    await daemon.client.shutdown_session()
    await daemon.client.stop()
    other = await start_daemon(workspace)
    assert await pids_max(other) == "300"
    assert other.client.message_requests == []


async def test_not_now_keeps_the_safe_value_and_says_how_to_approve(make_workspace, start_daemon):
    workspace = make_workspace("declined", LOOSER)
    daemon = await start_daemon(workspace)
    daemon.client.message_answer = types.MessageActionItem(title="Not now")
    assert await pids_max(daemon) == "256"
    assert await pids_max(daemon) == "256"
    assert len(daemon.client.message_requests) == 1  # asked once per connection, not at every run
    (warning,) = [m.message for m in daemon.client.messages if "pids_limit" in m.message]
    assert "ignored" in warning and f"cellbox trust {workspace}" in warning


async def test_cellbox_trust_then_a_changed_file_needs_a_new_approval(make_workspace, start_daemon):
    workspace = make_workspace("cli", LOOSER)
    trust = subprocess.run([sys.executable, "-m", "cellbox", "trust", str(workspace)],
                           capture_output=True, text=True, timeout=60, env=os.environ)
    assert trust.returncode == 0, trust.stderr
    assert "pids_limit = 300" in trust.stdout and "cellbox.toml" in trust.stdout
    daemon = await start_daemon(workspace)
    assert await pids_max(daemon) == "300"
    # A block rewrites the file (raising the limit further): the approval no longer holds.
    await daemon.execute(("sh", "sed -i 's/= 300/= 400/' cellbox.toml"))
    assert await pids_max(daemon) == "256"
    revoke = subprocess.run([sys.executable, "-m", "cellbox", "trust", "--revoke", str(workspace)],
                            capture_output=True, text=True, timeout=60, env=os.environ)
    assert revoke.returncode == 0 and "withdrawn" in revoke.stdout
