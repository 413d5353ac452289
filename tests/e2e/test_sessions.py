"""Session mode (issue 14): Python blocks run in a Jupyter kernel (ipykernel)
inside the workspace's sandbox, one per document or named session, driven by
the daemon over ZeroMQ ipc sockets; real engine, real kernel."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.conftest import TEST_IMAGE
from tests.e2e.test_execution import processes_in, surviving
from tests.e2e.test_documents import open_document, wait_for_diagnostics

SESSION_CONFIG = f'image = "{TEST_IMAGE}"\nmode = "session"\n'


@pytest.fixture
def session_workspace(make_workspace):
    return make_workspace("sessions", SESSION_CONFIG)


async def output_shows(daemon, text: str) -> None:
    """Until the daemon has streamed `text` (a block is running), at most 10 s."""
    for _ in range(200):
        if any(text in getattr(n, "text", "") for n in daemon.client.cellbox_output):
            return
        await asyncio.sleep(0.05)


async def run_python(daemon, code: str, **params):
    result = await daemon.execute(("python", code), **params)
    return result["blocks"][0]


async def test_state_is_kept_between_blocks(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    first = await run_python(daemon, "import os\nx = 41\nprint('pid', os.getpid())")
    assert first["status"] == "ok" and first["stateLost"] is False and first["session"] == "default"
    second = await run_python(daemon, "x += 1\nprint(x)\nprint('pid', os.getpid())")
    assert second["output"].splitlines() == ["42", first["output"].strip()]
    # The value of the block's last expression is shown, as Jupyter shows Out[n].
    third = await run_python(daemon, "x * 2")
    assert third["output"] == "84\n"
    assert third["displays"][0]["data"]["text/plain"] == "84"


async def test_two_documents_get_two_sessions(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    one = await open_document(daemon, session_workspace / "one.py", "# %%\nname = 'one'\n# %%\nprint(name)\n", "python")
    two = await open_document(daemon, session_workspace / "two.py", "# %%\nprint(name)\n", "python")
    first = await daemon.command("cellbox.execute", {"uri": one, "all": True})
    assert first["exitCode"] == 0 and first["blocks"][1]["output"] == "one\n"
    other = await daemon.command("cellbox.execute", {"uri": two, "all": True})
    assert other["blocks"][0]["status"] == "error"
    assert "NameError: name 'name' is not defined" in other["output"]
    # The traceback names the document's own line: line 2 of two.py, as
    # Jupyter names a cell ("Cell In [1], line 2"), and so does the diagnostic.
    assert "Cell In [1], line 2\n----> 2 print(name)" in other["output"]
    (diagnostic,) = await wait_for_diagnostics(daemon, two, 1)
    assert diagnostic.range.start.line == 1 and diagnostic.message == "NameError: name 'name' is not defined"
    status = await daemon.command("cellbox.status", {})
    (sandbox,) = [s for s in status["sandboxes"] if s["workspace"] == str(session_workspace)]
    names = {s["name"]: s["state"] for s in sandbox["sessions"]}
    assert names == {str(session_workspace / "one.py"): "idle", str(session_workspace / "two.py"): "idle"}
    assert all(10 << 20 < s["memoryBytes"] < 1 << 30 for s in sandbox["sessions"])  # a kernel's resident memory
    assert {s["blocksRun"] for s in sandbox["sessions"]} == {1, 2}


async def test_a_named_session_in_script_mode(make_workspace, start_daemon):
    daemon = await start_daemon(make_workspace("scripted"))
    await run_python(daemon, "kept = 'yes'", session="notebook")
    assert (await run_python(daemon, "print(kept)", session="notebook"))["output"] == "yes\n"
    script = await run_python(daemon, "print(kept)")  # no session: a fresh process, as before
    assert script["status"] == "error" and script["session"] is None and script["stateLost"] is False


async def test_cancel_interrupts_and_keeps_the_state(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "kept = 7")
    running = asyncio.ensure_future(
        daemon.execute(("python", "import time\nprint('waiting', flush=True)\ntime.sleep(300)"), runId="long")
    )
    await output_shows(daemon, "waiting")
    assert (await daemon.command("cellbox.cancel", {"runId": "long"}))["cancelled"] is True
    block = (await asyncio.wait_for(running, 20))["blocks"][0]
    assert (block["status"], block["exitCode"], block["stateLost"]) == ("cancelled", 130, False)
    assert "KeyboardInterrupt" in block["output"]
    assert (await run_python(daemon, "print(kept)"))["output"] == "7\n"


async def test_a_block_that_ignores_the_interrupt_loses_the_state(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "kept = 7")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('waiting', flush=True)\ntime.sleep(300)"
    running = asyncio.ensure_future(daemon.execute(("python", stubborn), runId="stubborn"))
    await output_shows(daemon, "waiting")
    await daemon.command("cellbox.cancel", {"runId": "stubborn"})
    block = (await asyncio.wait_for(running, 30))["blocks"][0]
    assert (block["status"], block["stateLost"]) == ("cancelled", True)
    after = await run_python(daemon, "print('kept' in globals())")
    assert after["output"] == "False\n" and after["stateLost"] is False


async def test_a_timeout_kills_the_kernel_and_says_the_state_is_lost(session_workspace, start_daemon, engine):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "kept = 1")
    block = await run_python(daemon, "import subprocess, time\nsubprocess.Popen(['sleep', '371'])\ntime.sleep(300)", timeout=2)
    assert (block["status"], block["exitCode"], block["timedOut"], block["stateLost"]) == ("timeout", 124, True, True)
    assert "state is lost" in block["output"]
    assert surviving(engine, session_workspace, "sleep 371") == []
    after = await run_python(daemon, "print('kept' in globals())")
    assert after["output"] == "False\n" and after["status"] == "ok"


@pytest.mark.parametrize("death", ["import os\nos._exit(3)", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
async def test_a_kernel_that_dies_is_replaced_at_the_next_block(session_workspace, start_daemon, death):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "kept = 1")
    block = await run_python(daemon, death)
    assert block["status"] == "error" and block["stateLost"] is True and block["exitCode"] != 0
    assert "kernel exited" in block["output"]
    after = await run_python(daemon, "print('kept' in globals())")
    assert after["output"] == "False\n" and after["status"] == "ok"


async def test_the_memory_limit_killing_the_kernel_is_oom(make_workspace, start_daemon):
    workspace = make_workspace("oom", SESSION_CONFIG + 'memory = "200m"\n')
    daemon = await start_daemon(workspace)
    block = await run_python(daemon, "hog = bytearray(1)\nwhile True:\n    hog += bytearray(50 << 20)")
    assert (block["status"], block["stateLost"]) == ("oom", True)
    assert (await run_python(daemon, "print('back')"))["output"] == "back\n"


async def test_restart_of_one_session_keeps_the_others(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "a = 1", session="a")
    await run_python(daemon, "b = 2", session="b")
    answer = await daemon.command("cellbox.restart", {"session": "a"})
    assert answer["state"] == "running"
    assert (await run_python(daemon, "print('a' in globals())", session="a"))["output"] == "False\n"
    assert (await run_python(daemon, "print(b)", session="b"))["output"] == "2\n"
    with pytest.raises(Exception, match="no session named 'c'"):
        await daemon.command("cellbox.restart", {"session": "c"})


async def test_restart_of_the_sandbox_ends_every_session(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "a = 1")
    await daemon.command("cellbox.restart", {})
    assert (await run_python(daemon, "print('a' in globals())"))["output"] == "False\n"


async def test_a_figure_arrives_as_png_and_a_dataframe_as_html(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    plot = await run_python(daemon, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    assert plot["status"] == "ok", plot["output"]
    (figure,) = [d for d in plot["displays"] if "image/png" in d["data"]]
    assert base64.b64decode(figure["data"]["image/png"]).startswith(b"\x89PNG")
    with open(figure["files"]["image/png"], "rb") as saved:
        assert saved.read(4) == b"\x89PNG"
    table = await run_python(daemon, "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Lima'], 'n': [1, 2]})")
    (frame,) = table["displays"]
    assert "<table" in frame["data"]["text/html"] and "Oslo" in frame["data"]["text/html"]
    assert "Oslo" in table["output"]  # its text/plain form, for readers of text
    # Streamed as they came, before the response (the test client turns the
    # MIME types, not identifiers, into _0, _1...: look at the values).
    values = [value for note in daemon.client.cellbox_displays for value in note.display.data]
    assert any(value.startswith("iVBOR") for value in values)  # a PNG, in base64
    assert any("<table" in value for value in values)


async def test_leftovers_of_a_session_block_are_swept(session_workspace, start_daemon, engine):
    daemon = await start_daemon(session_workspace)
    block = await run_python(
        daemon, "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '373'])\nsubprocess.Popen(['sleep', '374'])\nx = 5"
    )
    assert block["status"] == "ok"
    assert surviving(engine, session_workspace, "sleep 37[34]") == []
    assert (await run_python(daemon, "print(x)"))["output"] == "5\n"  # the kernel itself survived the sweep


async def test_a_block_cannot_swap_a_kernel_socket_for_a_link_out(session_workspace, start_daemon, tmp_path):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "x = 1")
    swap = (
        "import glob, os\n"
        "for path in glob.glob('/cellbox/kernels/*/k-*'):\n"
        "    os.remove(path); os.symlink('/run/docker.sock', path)\n"
        "print('swapped')"
    )
    assert (await run_python(daemon, swap))["output"].startswith("swapped")
    # The daemon holds the sockets it checked by descriptor: the session goes on.
    assert (await run_python(daemon, "print(x)"))["output"] == "1\n"


async def test_the_output_limit_applies_in_a_session(make_workspace, start_daemon):
    workspace = make_workspace("flood", SESSION_CONFIG + "output_limit = 10000\n")
    daemon = await start_daemon(workspace)
    block = await run_python(daemon, "for i in range(20000):\n    print('flood', i)\nafter = 'ran on'")
    assert block["status"] == "ok" and block["truncated"] is True and len(block["output"]) < 12000
    assert (await run_python(daemon, "print(after)"))["output"] == "ran on\n"


async def test_an_image_without_ipykernel_says_what_to_install(make_workspace, start_daemon):
    from tests.e2e.test_warm_runner import BUSYBOX_IMAGE

    workspace = make_workspace("no-kernel", f'image = "{BUSYBOX_IMAGE}"\nmode = "session"\n')
    daemon = await start_daemon(workspace)
    with pytest.raises(Exception, match="Session mode needs") as refused:
        await run_python(daemon, "print(1)")
    assert 'mode = "script"' in str(refused.value)
    # The daemon keeps serving, and shell blocks still run as scripts.
    assert (await daemon.execute(("sh", "echo still here")))["output"] == "still here\n"


async def test_a_fork_bomb_in_a_session_is_contained_and_the_next_block_runs(session_workspace, start_daemon, engine):
    daemon = await start_daemon(session_workspace)
    bomb = await run_python(daemon, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", timeout=5)
    assert bomb["status"] in ("timeout", "error") and bomb["stateLost"] is True
    assert (await run_python(daemon, "print('alive')"))["output"] == "alive\n"
    # One kernel (the new one) and none of the bomb's processes are left.
    assert len([p for p in processes_in(engine, session_workspace) if "ipykernel" in p]) == 1
    assert surviving(engine, session_workspace, "defunct") == []


async def test_a_session_cannot_write_outside_the_workspace(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    code = (
        "import os\n"
        "for d in ['/', '/etc', '/usr', '/root', '/cellbox/run', '/cellbox/blocks']:\n"
        "    try:\n"
        "        open(os.path.join(d, 'cellbox-x'), 'w')\n"
        "    except OSError as exc:\n"
        "        print(d, exc.strerror)\n"
    )
    lines = (await run_python(daemon, code))["output"].splitlines()
    assert len(lines) == 6 and all("Read-only file system" in line or "Permission denied" in line for line in lines), lines


async def test_a_block_that_names_its_file_writes_it_and_runs_in_the_session(session_workspace, start_daemon):
    daemon = await start_daemon(session_workspace)
    await run_python(daemon, "before = 1")
    block = await run_python(daemon, "# filename: helper.py\nprint(before + 1)")
    assert block["output"] == "2\n" and block["codeFile"] == str(session_workspace / "helper.py")
    assert (session_workspace / "helper.py").read_text().startswith("# filename: helper.py")
    refused = await run_python(daemon, "# filename: ../out.py\nprint(1)")
    assert refused["status"] == "not_executed" and "not in the workspace" in refused["output"]


async def test_a_figure_shown_by_a_script_arrives_as_png(make_workspace, start_daemon):
    # Script mode (the default): a fresh process per block, and plt.show()
    # hands its figures to the daemon instead of warning that Agg cannot show.
    daemon = await start_daemon(make_workspace("script-figures"))
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\nplt.show()\n"
        "plt.bar([1, 2], [3, 4])\nplt.show()\n"
        "print('done')\n"
    )
    block = await run_python(daemon, code)
    assert (block["status"], block["output"], block["session"]) == ("ok", "done\n", None)
    assert [sorted(d["data"]) for d in block["displays"]] == [["image/png", "text/plain"]] * 2
    for shown in block["displays"]:
        with open(shown["files"]["image/png"], "rb") as saved:
            assert saved.read(4) == b"\x89PNG"
    assert len(daemon.client.cellbox_displays) == 2  # streamed as they came


async def test_a_backend_the_settings_name_is_left_alone(make_workspace, start_daemon):
    workspace = make_workspace("agg", f'image = "{TEST_IMAGE}"\n[env]\nMPLBACKEND = "Agg"\n')
    daemon = await start_daemon(workspace)
    block = await run_python(daemon, "import matplotlib\nprint(matplotlib.get_backend())")
    assert (block["output"].lower(), block["displays"]) == ("agg\n", [])
