"""The end-to-end suite's core cases against Podman, through its
Docker-compatible API (`podman system service`), with DOCKER_HOST pointing
at it: Podman sees this machine's files, so the workspace is bind-mounted and
the warm runner serves the blocks as with Docker."""

from __future__ import annotations

from pathlib import Path

import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE, containers_of, environment_images
from tests.e2e.test_documents import a_cell_run_gets_its_diagnostic
from tests.e2e.test_execution import surviving

CONFIG = f'image = "{TEST_IMAGE}"\n'


@pytest.fixture
def podman(podman_engine, make_engine_workspace, start_daemon):
    """start(config=..., name=...) -> (daemon, workspace) on Podman."""

    async def start(config: str = CONFIG, name: str = "ws", init_options=None):
        workspace = make_engine_workspace(podman_engine, name, config)
        daemon = await start_daemon(workspace, init_options=init_options, env=podman_engine.env)
        return daemon, workspace

    return start


async def test_python_and_bash_blocks_run_warm(podman, podman_engine):
    daemon, workspace = await podman()
    result = await daemon.execute(
        ("python", "import sys; print(sys.argv[0].endswith('.py'))"),
        ("bash", "echo ${BASH_VERSION:+bash}; exit 3"),
        ("python", "print('never')"),
    )
    assert [b["output"] for b in result["blocks"]] == ["True\n", "bash\n"]
    assert (result["exitCode"], result["status"]) == (3, "error")
    (container,) = containers_of(podman_engine.client, workspace)
    assert {m["Destination"] for m in container.attrs["Mounts"]} == {
        "/workspace", "/cellbox/blocks", "/cellbox/run", "/cellbox/kernels", "/cellbox/packages"
    }
    # The warm runner connected to the daemon's socket, in the daemon's folder.
    assert any(Path(m["Source"]).name == "run" and m["Destination"] == "/cellbox/run" and not m["RW"]
               for m in container.attrs["Mounts"])


async def test_files_per_block_and_filename_comments(podman):
    daemon, workspace = await podman()
    result = await daemon.execute(
        ("python", "# filename: pkg/tool.py\ndef twice(x):\n    return 2 * x\n"),
        ("python", "import sys; sys.path.insert(0, 'pkg')\nfrom tool import twice\nprint(twice(21))"),
        ("bash", "echo made > made.txt"),
    )
    assert result["output"] == "42\n"
    assert (workspace / "pkg/tool.py").read_text().startswith("# filename: pkg/tool.py")
    assert (workspace / "made.txt").read_text() == "made\n"
    assert (workspace / "made.txt").stat().st_uid == workspace.stat().st_uid
    assert result["blocks"][0]["codeFile"] == str(workspace / "pkg/tool.py")
    unnamed = await daemon.execute(("python", "print(1)"))
    assert "/blocks/tmp_code_" in unnamed["codeFile"] and workspace not in Path(unnamed["codeFile"]).parents


async def test_a_timeout_kills_the_run_with_exit_code_124(podman, podman_engine):
    daemon, workspace = await podman()
    result = await daemon.execute(("bash", "sleep 361 &\nsetsid sleep 362 &\necho started\nsleep 363"), timeout=1)
    block = result["blocks"][0]
    assert (block["status"], block["exitCode"], block["timedOut"]) == ("timeout", 124, True)
    assert block["output"] == "started\n\nTimeout"
    assert surviving(podman_engine.client, workspace, r"sleep 36[123]") == []


async def test_cancel_stops_the_run(podman, podman_engine):
    daemon, workspace = await podman()
    await daemon.execute(("sh", "true"))
    running = asyncio.ensure_future(
        daemon.execute(("sh", "touch started.flag\necho started\nsleep 364"), runId="pod-run", timeout=120)
    )
    for _ in range(200):
        if (workspace / "started.flag").exists() or running.done():
            break
        await asyncio.sleep(0.05)
    assert await daemon.command("cellbox.cancel", {"runId": "pod-run"}) == {"runId": "pod-run", "cancelled": True}
    block = (await asyncio.wait_for(running, 10))["blocks"][0]
    assert (block["status"], block["exitCode"]) == ("cancelled", 130)
    assert surviving(podman_engine.client, workspace, r"sleep 364") == []


async def test_restart_stop_and_status(podman, podman_engine):
    daemon, workspace = await podman()
    assert (await daemon.command("cellbox.status", {}))["sandboxes"][0]["state"] == "absent"
    await daemon.execute(("sh", "echo kept > kept.txt"))
    (container,) = containers_of(podman_engine.client, workspace)
    restarted = await daemon.command("cellbox.restart", {})
    assert restarted == {"workspace": str(workspace), "container": container.name, "state": "running"}
    assert (await daemon.execute(("sh", "cat kept.txt")))["output"] == "kept\n"
    status = (await daemon.command("cellbox.status", {}))["sandboxes"][0]
    assert (status["state"], status["image"]) == ("running", TEST_IMAGE)
    assert (await daemon.command("cellbox.stop", {}))["state"] == "stopped"
    assert (await daemon.command("cellbox.status", {}))["sandboxes"][0]["state"] == "absent"
    assert (await daemon.execute(("sh", "echo back")))["output"] == "back\n"


async def test_the_security_defaults_hold(podman, podman_engine):
    daemon, workspace = await podman()
    result = await daemon.execute(("sh", "touch /usr/x 2>/dev/null && echo rw || echo ro; "
                                         "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net"))
    assert result["output"] == "ro\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nlo\n"
    (container,) = containers_of(podman_engine.client, workspace)
    host = container.attrs["HostConfig"]
    assert (host["Memory"], host["PidsLimit"], host["ReadonlyRootfs"]) == (1 << 30, 256, True)


async def test_a_document_run_gets_its_diagnostic(podman):
    await a_cell_run_gets_its_diagnostic(*await podman())


async def test_copy_mode_works_on_podman_too(podman, podman_engine):
    daemon, workspace = await podman(init_options={"workspaceMount": "copy"})
    (workspace / "in.txt").write_text("in\n")
    result = await daemon.execute(("bash", "cat in.txt; echo out > out.txt"))
    assert result["output"] == "in\n" and (workspace / "out.txt").read_text() == "out\n"


async def test_a_missing_image_is_a_clear_error(podman):
    daemon, _ = await podman('image = "cellbox-no-such-image:never"\n')
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"))
    assert error.value.code == -32003 and "cellbox-no-such-image:never" in error.value.message


async def test_an_environment_builds_on_podman(podman, podman_engine):
    """Podman's Docker-compatible build API builds a declared environment the
    same (issue 15), its steps told as they come."""
    from tests.wheelhouse import make_wheel

    options = {"image": TEST_IMAGE, "environment": {"packages": ["cellbox_pod==1.0"], "findLinks": "wheels",
                                                     "network": "none"}}
    daemon, workspace = await podman(init_options=options)
    make_wheel(workspace / "wheels", "cellbox_pod", "1.0", "VALUE = 'built by podman'\n")
    try:
        result = await daemon.execute(("python", "import cellbox_pod; print(cellbox_pod.VALUE)"))
        assert (result["exitCode"], result["output"]) == (0, "built by podman\n"), result
        (reports,) = [r for r in daemon.client.progress_reports.values()
                      if r and r[0].title.startswith("Building the environment")]
        assert any("building environment (step " in (getattr(r, "message", "") or "") for r in reports)
    finally:
        await daemon.command("cellbox.stop", {})
        for image in environment_images(podman_engine.client, workspace):
            podman_engine.client.images.remove(image.id, force=True)
