"""Session kernels for other languages (issue 14): `kernels = { bash = "bash" }`
runs a document's bash blocks in the image's bash kernel (cellbox's own, baked
in by scripts/build-image), beside its Python kernel; real engine, real kernels."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import TEST_IMAGE
from tests.e2e.test_documents import open_document
from tests.e2e.test_execution import surviving
from tests.e2e.test_sessions import output_shows

BASH_SESSIONS = f'image = "{TEST_IMAGE}"\nmode = "session"\n[kernels]\nbash = "bash"\n'


@pytest.fixture
def bash_workspace(make_workspace):
    return make_workspace("bash-sessions", BASH_SESSIONS)


async def run_bash(daemon, code: str, **params):
    return (await daemon.execute(("bash", code), **params))["blocks"][0]


async def test_a_bash_session_keeps_variables_functions_and_the_folder(bash_workspace, start_daemon):
    daemon = await start_daemon(bash_workspace)
    first = await run_bash(daemon, "count=41\ngreet() { echo \"hello $1\"; }\nmkdir -p sub && cd sub\necho $$")
    assert first["status"] == "ok" and first["session"] == "default" and first["stateLost"] is False
    second = await run_bash(daemon, "echo $((count + 1))\ngreet you\npwd\necho $$")
    assert second["output"].splitlines() == ["42", "hello you", "/workspace/sub", first["output"].strip()]
    # A failing last command is the block's failure, with its exit code said.
    failed = await run_bash(daemon, "echo before\n(exit 3)")
    assert failed["status"] == "error" and failed["exitCode"] != 0
    assert failed["output"].startswith("before\n") and "exit code 3" in failed["output"]
    # A block that reads stdin gets nothing (not the kernel's own commands).
    assert (await run_bash(daemon, "read -r line; echo \"[$line]\"; echo $count"))["output"] == "[]\n41\n"


async def test_a_documents_python_and_bash_blocks_get_a_kernel_each(bash_workspace, start_daemon):
    daemon = await start_daemon(bash_workspace)
    text = "```python\nx = 'py'\n```\n\n```bash\nx=sh\n```\n\n```python\nprint(x)\n```\n\n```bash\necho $x\n```\n"
    uri = await open_document(daemon, bash_workspace / "notes.md", text, "markdown")
    result = await daemon.command("cellbox.execute", {"uri": uri, "all": True})
    assert [b["output"] for b in result["blocks"]] == ["", "", "py\n", "sh\n"]
    assert [b["language"] for b in result["blocks"]] == ["python", "bash", "python", "bash"]
    status = await daemon.command("cellbox.status", {})
    (sandbox,) = [s for s in status["sandboxes"] if s["workspace"] == str(bash_workspace)]
    kernels = {(s["name"], s["language"], s["kernel"]) for s in sandbox["sessions"]}
    path = str(bash_workspace / "notes.md")
    assert kernels == {(path, "python", "python3"), (path, "bash", "bash")}
    # Restarting the document's session restarts both of its kernels.
    await daemon.command("cellbox.restart", {"session": path})
    again = await daemon.command("cellbox.execute", {"uri": uri, "block": 4})
    assert again["blocks"][0]["output"] == "\n"


async def test_cancel_interrupts_a_bash_block_and_keeps_the_shell(bash_workspace, start_daemon):
    daemon = await start_daemon(bash_workspace)
    await run_bash(daemon, "kept=7")
    running = asyncio.ensure_future(
        daemon.execute(("bash", "echo waiting; sleep 300; echo not reached"), runId="long")
    )
    await output_shows(daemon, "waiting")
    assert (await daemon.command("cellbox.cancel", {"runId": "long"}))["cancelled"] is True
    block = (await asyncio.wait_for(running, 20))["blocks"][0]
    assert (block["status"], block["stateLost"]) == ("cancelled", False)
    assert "not reached" not in block["output"]
    assert (await run_bash(daemon, "echo $kept"))["output"] == "7\n"


async def test_leftovers_of_a_bash_block_are_swept_but_not_its_shell(bash_workspace, start_daemon, engine):
    daemon = await start_daemon(bash_workspace)
    block = await run_bash(daemon, "sleep 376 &\nsetsid sleep 377 &\nx=5")
    assert block["status"] == "ok"
    assert surviving(engine, bash_workspace, "sleep 37[67]") == []
    # A script run's own sweep spares the shell too.
    assert (await daemon.execute(("sh", "echo script")))["output"] == "script\n"
    assert (await run_bash(daemon, "echo $x"))["output"] == "5\n"


async def test_a_timeout_in_a_bash_session_kills_the_kernel(bash_workspace, start_daemon):
    daemon = await start_daemon(bash_workspace)
    await run_bash(daemon, "kept=1")
    block = await run_bash(daemon, "trap '' INT\nsleep 300", timeout=2)
    assert (block["status"], block["timedOut"], block["stateLost"]) == ("timeout", True, True)
    after = await run_bash(daemon, "echo \"[${kept:-}]\"")
    assert after["output"] == "[]\n" and after["status"] == "ok"


async def test_exit_in_a_bash_session_ends_its_shell_and_the_next_block_gets_a_new_one(bash_workspace, start_daemon):
    daemon = await start_daemon(bash_workspace)
    await run_bash(daemon, "kept=1")
    block = await run_bash(daemon, "echo bye\nexit 3")
    assert (block["status"], block["exitCode"], block["stateLost"]) == ("error", 3, True)
    assert "exited (code 3)" in block["output"]
    after = await run_bash(daemon, "echo \"[${kept:-}]\"")
    assert (after["output"], after["status"], after["stateLost"]) == ("[]\n", "ok", False)


async def test_a_kernel_the_image_lacks_is_a_clear_error(make_workspace, start_daemon):
    workspace = make_workspace("no-r", f'image = "{TEST_IMAGE}"\n[kernels]\nr = "ir"\n')
    daemon = await start_daemon(workspace)
    with pytest.raises(Exception, match="no Jupyter kernel named 'ir' in the sandbox image") as refused:
        await daemon.execute(("r", "print(1)"))
    message = str(refused.value)
    assert "bash" in message and "python3" in message  # the kernels the image has
    assert "kernels.r" in message
    # The daemon keeps serving.
    assert (await daemon.execute(("sh", "echo still here")))["output"] == "still here\n"
