"""Declared environments (issue 15): `[environment]` builds the sandbox's image
from its base with the declared packages, once per content, as
cellbox-env:<hash>; real engine, offline. The wheelhouse is made here, on the
host, as wheels written by hand (a wheel is a zip): no network, no build tool."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_IMAGE, environment_images
from tests.wheelhouse import make_wheel


@pytest.fixture
def env_workspace(make_workspace):
    """A workspace with a wheelhouse of two versions of `cellbox_demo`; its
    environment images are removed afterwards (by make_workspace), pass or fail."""
    workspace = make_workspace("env", "")
    make_wheel(workspace / "wheels", "cellbox_demo", "1.0", "VALUE = 'one'\n")
    make_wheel(workspace / "wheels", "cellbox_demo", "2.0", "VALUE = 'two'\n")
    return workspace


def declared(**environment) -> dict:
    """Initialization options (the client's own settings: trusted) with an offline environment."""
    return {"image": TEST_IMAGE, "environment": {"findLinks": "wheels", "network": "none", **environment}}


def build_reports(daemon) -> list[list]:
    return [r for r in daemon.client.progress_reports.values() if r and r[0].title.startswith("Building the environment")]


@pytest.mark.parametrize("editor", ["visual_studio_code", "neovim"])
async def test_a_declared_package_is_importable_and_a_second_start_builds_nothing(
    env_workspace, start_daemon, engine, editor
):
    (env_workspace / "requirements.txt").write_text("cellbox_demo==1.0\n")
    options = declared(requirements="requirements.txt")
    daemon = await start_daemon(env_workspace, init_options=options, capabilities=editor)
    started = time.monotonic()
    result = await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)"))
    first = time.monotonic() - started
    assert (result["exitCode"], result["output"]) == (0, "one\n"), result
    (reports,) = build_reports(daemon)
    *steps, last = [r.message for r in reports[1:-1] if getattr(r, "message", None)]
    assert steps and all(m.startswith("building environment (step ") for m in steps)
    assert last.startswith("built cellbox-env:") and last.endswith("environment.log")  # the log to open
    numbers = [int(m.split("step ")[1].split("/")[0]) for m in steps]
    assert numbers == sorted(numbers) and numbers[-1] == int(steps[-1].split("/")[1].split(")")[0])
    assert type(reports[-1]).__name__ == "WorkDoneProgressEnd"
    (image,) = environment_images(engine, env_workspace)
    assert image.tags[0].startswith("cellbox-env:")
    (container,) = engine.containers.list(filters={"label": f"org.cellbox.workspace={env_workspace}"})
    assert container.image.id == image.id
    # The sandbox keeps its hardening on the environment's image.
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True

    # A new daemon (the container stopped): the same declaration reuses the image, no build.
    await daemon.command("cellbox.stop", {})
    again = await start_daemon(env_workspace, init_options=options, capabilities=editor)
    started = time.monotonic()
    result = await again.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)"))
    second = time.monotonic() - started
    assert result["output"] == "one\n"
    assert build_reports(again) == []
    assert [i.id for i in environment_images(engine, env_workspace)] == [image.id]
    print(f"\nfirst run (with the build): {first:.2f} s; second start, nothing changed: {second:.2f} s")


async def test_a_changed_requirements_file_rebuilds_at_the_next_run(env_workspace, start_daemon, engine):
    (env_workspace / "requirements.txt").write_text("cellbox_demo==1.0\n")
    daemon = await start_daemon(env_workspace, init_options=declared(requirements="requirements.txt"))
    assert (await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)")))["output"] == "one\n"
    (env_workspace / "requirements.txt").write_text("cellbox_demo==2.0\n")
    result = await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)"))
    assert result["output"] == "two\n"
    assert len(build_reports(daemon)) == 2
    assert len(environment_images(engine, env_workspace)) == 2  # the old one, until pruned


async def test_a_failing_build_is_a_clear_error_and_leaves_nothing(env_workspace, start_daemon, engine):
    images_before = {i.id for i in engine.images.list(all=True)}
    options = declared(packages=["cellbox_demo==1.0"], setup=["echo about to fail; exit 3"])
    daemon = await start_daemon(env_workspace, init_options=options)
    with pytest.raises(Exception) as failed:
        await daemon.execute(("python", "print(1)"))
    message = str(failed.value)
    assert "The environment's build failed at step" in message
    assert "exit 3" in message and "returned a non-zero code: 3" in message
    assert "about to fail" in message  # the tail of the failing command's output
    assert "environment.log" in message
    assert environment_images(engine, env_workspace) == []
    assert {i.id for i in engine.images.list(all=True)} - images_before == set()
    assert engine.containers.list(all=True, filters={"label": f"org.cellbox.workspace={env_workspace}"}) == []
    # The daemon keeps serving.
    assert (await daemon.command("cellbox.status", {}))["sandboxes"]


async def test_an_environment_from_an_unapproved_workspace_file_is_not_built(env_workspace, start_daemon, engine):
    (env_workspace / "cellbox.toml").write_text(
        f'image = "{TEST_IMAGE}"\n[environment]\npackages = ["cellbox_demo"]\nfind_links = "wheels"\nnetwork = "none"\n'
    )
    daemon = await start_daemon(env_workspace)
    result = await daemon.execute(("python", "import cellbox_demo"))
    assert result["exitCode"] != 0 and "No module named 'cellbox_demo'" in result["output"]
    assert build_reports(daemon) == []
    assert environment_images(engine, env_workspace) == []
    # Approved, the same file builds it.
    trust = subprocess.run([sys.executable, "-m", "cellbox", "trust", str(env_workspace)], capture_output=True, text=True)
    assert trust.returncode == 0 and "environment" in trust.stdout, trust
    result = await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)"))
    assert result["output"] == "two\n"


def test_env_build_status_and_prune_on_the_command_line(env_workspace, engine, tmp_path):
    (env_workspace / "cellbox.toml").write_text(
        f'image = "{TEST_IMAGE}"\n[environment]\npackages = ["cellbox_demo==1.0"]\nfind_links = "wheels"\n'
        'network = "none"\n'
    )
    cli = [sys.executable, "-m", "cellbox"]
    refused = subprocess.run([*cli, "env", "build", str(env_workspace)], capture_output=True, text=True)
    assert refused.returncode != 0 and "cellbox trust" in refused.stderr
    subprocess.run([*cli, "trust", str(env_workspace)], check=True, capture_output=True)
    built = subprocess.run([*cli, "env", "build", str(env_workspace)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "step" in built.stderr and "cellbox-env:" in built.stdout
    again = subprocess.run([*cli, "env", "build", str(env_workspace)], capture_output=True, text=True)
    assert again.returncode == 0 and "cached" in again.stdout
    (first,) = environment_images(engine, env_workspace)
    # A second environment, then prune: the one the workspace no longer declares goes.
    (env_workspace / "cellbox.toml").write_text(
        f'image = "{TEST_IMAGE}"\n[environment]\npackages = ["cellbox_demo==2.0"]\nfind_links = "wheels"\n'
        'network = "none"\n'
    )
    subprocess.run([*cli, "trust", str(env_workspace)], check=True, capture_output=True)
    subprocess.run([*cli, "env", "build", str(env_workspace)], check=True, capture_output=True)
    status = subprocess.run([*cli, "env", "status", "--json"], capture_output=True, text=True)
    listed = json.loads(status.stdout)
    ours = [i for i in listed if i["workspace"] == str(env_workspace)]
    assert len(ours) == 2 and all(i["size"] > 0 for i in ours)
    assert sum(i["current"] for i in ours) == 1
    pruned = subprocess.run([*cli, "env", "prune"], capture_output=True, text=True)
    assert pruned.returncode == 0, pruned.stderr
    left = environment_images(engine, env_workspace)
    assert len(left) == 1 and left[0].id != first.id
    assert engine.images.list(name=TEST_IMAGE)  # never anything but cellbox's environment images


async def test_pip_install_in_a_block_stays_for_the_next_blocks(env_workspace, start_daemon):
    """The workspace's user site (PYTHONUSERBASE, a folder of the daemon's):
    shown here with a wheel of the workspace, as the sandbox has no network."""
    daemon = await start_daemon(env_workspace, init_options={"image": TEST_IMAGE})
    installed = await daemon.execute(("sh", "pip install --no-index wheels/cellbox_demo-1.0-py3-none-any.whl"))
    assert installed["exitCode"] == 0, installed["output"]
    assert (await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)")))["output"] == "one\n"
    await daemon.command("cellbox.restart", {})  # a new container: the user site stays
    assert (await daemon.execute(("python", "import cellbox_demo; print(cellbox_demo.VALUE)")))["output"] == "one\n"


async def test_pip_install_without_a_network_says_how_to_declare_the_package(env_workspace, start_daemon):
    daemon = await start_daemon(env_workspace, init_options={"image": TEST_IMAGE})
    result = await daemon.execute(("sh", "pip install requests-cellbox-example"))
    assert result["exitCode"] != 0
    assert 'the sandbox has no network (network = "none")' in result["output"]
    assert 'packages = ["requests-cellbox-example"]' in result["output"]


def test_the_command_line_shows_the_builds_steps_on_a_terminal_only(env_workspace, engine):
    import os
    import pty

    (env_workspace / "cellbox.toml").write_text(
        f'image = "{TEST_IMAGE}"\n[environment]\npackages = ["cellbox_demo==1.0"]\nfind_links = "wheels"\n'
        'network = "none"\nsetup = ["sleep 1.5"]\n'
    )
    cli = [sys.executable, "-m", "cellbox"]
    subprocess.run([*cli, "trust", str(env_workspace)], check=True, capture_output=True)
    code = "import cellbox_demo; print(cellbox_demo.VALUE)"
    main, terminal = pty.openpty()
    running = subprocess.Popen([*cli, "exec", "-L", "python", "-c", code], cwd=env_workspace,
                               stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert running.wait(60) == 0 and running.stdout.read() == b"one\n"
    text = shown.decode(errors="replace")
    assert "Building the environment (cellbox-env:" in text
    assert "building environment (step " in text and "RUN sleep 1.5" in text
    # In a pipe (a log, CI) no progress lines, though it builds again: the block's output and summary only.
    (env_workspace / "cellbox.toml").write_text(
        (env_workspace / "cellbox.toml").read_text().replace("sleep 1.5", "sleep 1.6")
    )
    subprocess.run([*cli, "trust", str(env_workspace)], check=True, capture_output=True)
    piped = subprocess.run([*cli, "exec", "-L", "python", "-c", code], cwd=env_workspace, capture_output=True,
                           text=True)
    assert piped.stdout == "one\n" and "building environment" not in piped.stderr
    assert len(environment_images(engine, env_workspace)) == 2  # it did build
    subprocess.run([*cli, "stop"], cwd=env_workspace, capture_output=True)
