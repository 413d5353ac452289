"""Copy mode: a Docker engine that cannot see the workspace (another machine,
here a second dockerd in mount and network namespaces of its own, on a Unix
socket). Files travel through the engine's archive API; the editor sees the
same results as with a bind mount."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE, containers_of, environment_images
from tests.e2e.test_documents import a_cell_run_gets_its_diagnostic
from tests.e2e.test_execution import surviving

CONFIG = f'image = "{TEST_IMAGE}"\n'


@pytest.fixture
def remote(remote_engine, make_engine_workspace, start_daemon):
    """start(config=..., name=...) -> (daemon, workspace) on the remote engine."""

    async def start(config: str = CONFIG, name: str = "ws", files: dict[str, str] | None = None, init_options=None):
        workspace = make_engine_workspace(remote_engine, name, config)
        for rel, text in (files or {}).items():
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            (workspace / rel).write_text(text)
        daemon = await start_daemon(workspace, init_options=init_options, env=remote_engine.env)
        return daemon, workspace

    return start


def container_on(engine, workspace):
    (container,) = containers_of(engine.client, workspace)
    container.reload()
    return container


async def test_blocks_read_the_workspace_and_their_files_come_back(remote, remote_engine, engine):
    daemon, workspace = await remote(files={"data/input.txt": "41\n"})
    result = await daemon.execute(
        ("python", "n = int(open('data/input.txt').read())\nopen('answer.txt', 'w').write(str(n + 1))\nprint(n + 1)"),
        ("bash", "mkdir -p out/deep && echo made > out/deep/file.txt && cat answer.txt"),
    )
    assert result["exitCode"] == 0 and result["status"] == "ok"
    assert result["output"] == "42\n42"
    assert [b["status"] for b in result["blocks"]] == ["ok", "ok"]
    # Paths are the workspace's own, as with a bind mount.
    assert "/blocks/tmp_code_" in result["codeFile"] and workspace not in Path(result["codeFile"]).parents
    assert (workspace / "answer.txt").read_text() == "42"
    assert (workspace / "out/deep/file.txt").read_text() == "made\n"
    assert (workspace / "answer.txt").stat().st_uid == workspace.stat().st_uid
    # The sandbox is on the remote engine, with a volume and no bind mount.
    container = container_on(remote_engine, workspace)
    assert sorted((m["Type"], m["Destination"]) for m in container.attrs["Mounts"]) == [
        ("volume", "/cellbox/blocks"), ("volume", "/workspace")]
    assert containers_of(engine, workspace) == []


async def test_changes_travel_both_ways_between_runs(remote, remote_engine):
    daemon, workspace = await remote(files={"notes.txt": "one\n", "old.txt": "old\n", "gone.txt": "bye\n"})
    first = await daemon.execute(("bash", "cat notes.txt; ls"))
    assert first["output"] == "one\ncellbox.toml\ngone.txt\nnotes.txt\nold.txt\n"
    (workspace / "notes.txt").write_text("two, longer\n")  # edited here
    (workspace / "gone.txt").unlink()  # deleted here
    second = await daemon.execute(("bash", "cat notes.txt; ls; mv old.txt renamed.txt; rm notes.txt"))
    assert second["output"] == "two, longer\ncellbox.toml\nnotes.txt\nold.txt\n"
    # A run's rename and deletion show here.
    assert not (workspace / "old.txt").exists() and (workspace / "renamed.txt").read_text() == "old\n"
    assert not (workspace / "notes.txt").exists()


async def test_gitignored_files_stay_out_but_what_a_run_makes_comes_back(remote):
    files = {".gitignore": "secret.env\nbuild/\n", "secret.env": "KEY=1\n", "build/big.bin": "x" * 100,
             "src/.gitignore": "*.tmp\n!keep.tmp\n", "src/a.tmp": "a", "src/keep.tmp": "k"}
    daemon, workspace = await remote(files=files)
    result = await daemon.execute(("bash", "find . -path ./.cellbox -prune -o -type f -print | sort; "
                                           "mkdir -p build && echo out > build/result.txt"))
    assert result["output"] == "./.gitignore\n./cellbox.toml\n./src/.gitignore\n./src/keep.tmp\n"
    assert (workspace / "build/result.txt").read_text() == "out\n"
    assert (workspace / "secret.env").read_text() == "KEY=1\n"  # never touched


async def test_files_per_block_and_filename_comments(remote):
    daemon, workspace = await remote()
    result = await daemon.execute(
        ("python", "# filename: pkg/tool.py\ndef twice(x):\n    return 2 * x\n"),
        ("python", "import sys; sys.path.insert(0, 'pkg')\nfrom tool import twice\nprint(twice(21))"),
    )
    assert result["output"] == "42\n"
    assert result["blocks"][0]["codeFile"] == str(workspace / "pkg/tool.py")
    refused = await daemon.execute(("python", "# filename: ../escape.py\nprint(1)"))
    assert refused["output"] == "Filename is not in the workspace" and refused["exitCode"] == 1


async def test_timeout_cancel_and_output_limit(remote, remote_engine):
    daemon, workspace = await remote(config=CONFIG + 'output_limit = "2k"\n')
    timed = await daemon.execute(("bash", "echo before > partial.txt; echo started; sleep 351 & sleep 352"), timeout=2)
    block = timed["blocks"][0]
    assert (block["status"], block["exitCode"], block["timedOut"]) == ("timeout", 124, True)
    assert block["output"] == "started\n\nTimeout"
    assert (workspace / "partial.txt").read_text() == "before\n"  # copied back all the same
    assert surviving(remote_engine.client, workspace, r"sleep 35[12]") == []

    running = asyncio.ensure_future(daemon.execute(("sh", "echo waiting-for-cancel; sleep 353"), runId="copy-run", timeout=120))
    for _ in range(200):
        if running.done() or any("waiting-for-cancel" in str(n) for n in daemon.client.cellbox_output):
            break
        await asyncio.sleep(0.05)
    assert not running.done(), running.result()
    assert await daemon.command("cellbox.cancel", {"runId": "copy-run"}) == {"runId": "copy-run", "cancelled": True}
    cancelled = (await asyncio.wait_for(running, 20))["blocks"][0]
    assert (cancelled["status"], cancelled["exitCode"]) == ("cancelled", 130)
    assert surviving(remote_engine.client, workspace, r"sleep 353") == []

    loud = await daemon.execute(("python", "print('x' * 100000)"))
    assert loud["truncated"] is True and loud["blocks"][0]["status"] == "ok"


async def test_restart_stop_and_status(remote, remote_engine):
    daemon, workspace = await remote()
    await daemon.execute(("bash", "echo kept > kept.txt"))
    name = container_on(remote_engine, workspace).name
    restarted = await daemon.command("cellbox.restart", {})
    assert restarted == {"workspace": str(workspace), "container": name, "state": "running"}
    again = await daemon.execute(("bash", "cat kept.txt"))
    assert again["output"] == "kept\n"
    status = await daemon.command("cellbox.status", {})
    assert status["sandboxes"][0]["state"] == "running"
    assert (await daemon.command("cellbox.stop", {}))["state"] == "stopped"
    assert (await daemon.command("cellbox.status", {}))["sandboxes"][0]["state"] == "absent"
    assert (await daemon.execute(("bash", "cat kept.txt")))["output"] == "kept\n"  # sent again from here


async def test_a_second_daemon_adopts_the_copy_mode_sandbox(remote, remote_engine, start_daemon):
    daemon, workspace = await remote()
    await daemon.execute(("bash", "echo one"))
    first_id = container_on(remote_engine, workspace).id
    other = await start_daemon(workspace, env=remote_engine.env)
    assert (await other.execute(("bash", "echo two")))["output"] == "two\n"
    assert container_on(remote_engine, workspace).id == first_id


async def test_a_bind_mount_showing_another_folder_falls_back_to_copy(remote):
    # /tmp exists on the engine's side (its own, empty tmpfs): the mount is
    # made, but the runner's socket never appears here.
    # bind_dir loosens the sandbox: a client setting, not a workspace file's.
    daemon, _ = await remote(init_options={"bindDir": "/tmp"}, files={"here.txt": "here\n"})
    result = await daemon.execute(("bash", "cat here.txt"))
    assert result["output"] == "here\n"


async def test_bind_mode_against_a_remote_engine_says_what_to_do(remote):
    daemon, _ = await remote(init_options={"workspaceMount": "bind"})
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("bash", "true"))
    assert error.value.code == -32004
    assert 'workspace_mount = "copy"' in error.value.message


async def test_the_size_limit_is_named_when_passed(remote):
    daemon, _ = await remote(config=CONFIG + 'copy_size_limit = "1k"\n', files={"big.txt": "x" * 5000})
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("bash", "true"))
    assert "copy_size_limit" in error.value.message and ".gitignore" in error.value.message


async def test_a_non_root_sandbox_user_can_write_the_workspace(remote):
    daemon, workspace = await remote(init_options={"user": "1000:1000"}, files={"in.txt": "in\n"})
    result = await daemon.execute(("bash", "id -u; cat in.txt > copy.txt; mkdir d && touch d/f"))
    assert result["output"] == "1000\n" and result["exitCode"] == 0
    if os.geteuid() == 0:
        assert (workspace / "copy.txt").stat().st_uid == 1000


async def test_a_document_run_gets_its_diagnostic(remote):
    await a_cell_run_gets_its_diagnostic(*await remote())


async def test_copy_mode_on_the_local_engine_too(make_workspace, start_daemon, engine):
    workspace = make_workspace("local")
    (workspace / "in.txt").write_text("local\n")
    daemon = await start_daemon(workspace, init_options={"workspaceMount": "copy"})
    result = await daemon.execute(("bash", "cat in.txt; echo back > out.txt"))
    assert result["output"] == "local\n" and (workspace / "out.txt").read_text() == "back\n"
    (container,) = containers_of(engine, workspace)
    assert {m["Type"] for m in container.attrs["Mounts"]} == {"volume"}


@pytest.mark.parametrize("chosen_by", ["current context", "DOCKER_CONTEXT"])
async def test_a_docker_context_picks_the_engine(
    chosen_by, remote_engine, make_engine_workspace, start_daemon, engine, tmp_path
):
    """No cellbox setting: the engine is the one the docker CLI would use."""
    config_dir = tmp_path / "docker-config"
    cli_env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}

    def docker_cli(*args: str) -> None:
        subprocess.run(["docker", "--config", str(config_dir), *args], check=True, capture_output=True, env=cli_env)

    docker_cli("context", "create", "cellbox-remote-test", "--docker", f"host={remote_engine.url}")
    env = {"DOCKER_CONFIG": str(config_dir), "DOCKER_HOST": ""}
    if chosen_by == "current context":
        docker_cli("context", "use", "cellbox-remote-test")
    else:
        env["DOCKER_CONTEXT"] = "cellbox-remote-test"
    workspace = make_engine_workspace(remote_engine, "ctx", CONFIG)
    daemon = await start_daemon(workspace, env=env)
    result = await daemon.execute(("sh", "echo via context > made.txt; cat made.txt"))
    assert result["output"] == "via context\n"
    assert (workspace / "made.txt").read_text() == "via context\n"  # copied back: the engine is remote
    assert len(containers_of(remote_engine.client, workspace)) == 1
    assert containers_of(engine, workspace) == []


# ------------------------------------------------------------------ hostile runs

CANARY = "the canary's secret\n"
CAPPED_SERVER = [
    sys.executable, "-c",
    # A daemon that regresses into reading /dev/zero fails on its own, not by
    # taking the memory of the machine the tests share.
    "import resource, sys; resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30)); "
    "from cellbox.main import main; sys.argv[0] = 'cellbox'; main()",
    "serve",
]


@pytest.fixture
def canary(tmp_path) -> Path:
    """A file outside the workspace, beside it: where `x/..` leads from the workspace."""
    path = tmp_path / "canary"
    path.write_text(CANARY)
    path.chmod(0o600)
    return path


def as_it_is(path: Path) -> tuple:
    info = path.stat()
    return path.read_bytes(), info.st_uid, info.st_gid, info.st_mode, info.st_mtime_ns


def links_leading_out(root: Path) -> list[str]:
    """Every symlink in the workspace that the kernel resolves to a path outside it."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            real = Path(os.path.realpath(path))
            if path.is_symlink() and real != root and root not in real.parents:
                found.append(str(path.relative_to(root)))
    return sorted(found)


CHAIN = "ln -s . x; ln -s x/.. u1; ln -s u1/.. u2; mkdir d; ln -s .. d/up; ln -s up/.. d/esc"
"""Links that each look inside: x is the workspace, u1, u2 and d/esc its parent."""


async def test_a_chain_of_links_that_each_look_inside_does_not_come_back(remote, canary):
    daemon, workspace = await remote()
    assert canary.parent == workspace.parent
    before = as_it_is(canary)
    result = await daemon.execute(("bash", CHAIN + "; cat u1/canary d/esc/canary 2>/dev/null; true"))
    assert result["exitCode"] == 0 and CANARY.strip() not in result["output"]
    assert links_leading_out(workspace) == []
    assert os.readlink(workspace / "x") == "." and os.readlink(workspace / "d/up") == ".."
    assert ("cellbox: 3 symlink(s) made by the run point outside the workspace and were not copied back: "
            "d/esc, u1, u2") in result["output"]
    assert as_it_is(canary) == before


async def test_writing_through_links_that_came_back_stays_inside(remote, canary):
    daemon, workspace = await remote()
    before, beside = as_it_is(canary), set(workspace.parent.iterdir())
    result = await daemon.execute(
        ("bash", CHAIN),
        # The next block starts after the links were copied back, and tries
        # every way through them: the links themselves, a folder put where a
        # link was and backdated (so that only its file counts as changed),
        # and new links to what the old ones reached.
        ("bash", "for t in u1 u2 d/esc x/..; do echo pwned > $t/canary 2>/dev/null; done; "
                 "rm u1 && mkdir u1 && echo pwned > u1/canary && touch -d 2000-01-01 u1/canary u1; "
                 "ln -s u2/canary c2; ln -s d/esc/canary c3; true"),
        ("bash", "echo pwned > c2; echo pwned > c3; true"),
    )
    assert [b["status"] for b in result["blocks"]] == ["ok", "ok", "ok"], result["output"]
    assert as_it_is(canary) == before
    assert links_leading_out(workspace) == []
    assert (workspace / "u1/canary").read_text() == "pwned\n"  # a folder of the workspace now
    assert set(workspace.parent.iterdir()) == beside


@pytest.mark.parametrize("kind", ["link to /dev/zero", "FIFO"])
async def test_a_hostile_gitignore_neither_stops_nor_stalls_the_daemon(
    kind, remote_engine, make_engine_workspace, start_daemon
):
    workspace = make_engine_workspace(remote_engine, "ws", CONFIG)
    (workspace / "a.txt").write_text("sent\n")
    daemon = await start_daemon(workspace, env=remote_engine.env, command=CAPPED_SERVER)
    assert (await daemon.execute(("bash", "true")))["exitCode"] == 0  # the container is up: the next run is warm
    ignore = workspace / ".gitignore"
    if kind == "FIFO":
        os.mkfifo(ignore)
    else:
        ignore.symlink_to("/dev/zero")
    running = asyncio.ensure_future(daemon.execute(("bash", "cat a.txt; ls -A")))
    try:
        # The daemon answers throughout, while that run sends the workspace.
        for _ in range(6):
            await asyncio.wait_for(daemon.command("cellbox.status", {}), 2)
            await asyncio.sleep(0.25)
        result = await asyncio.wait_for(running, 30)
    finally:
        if kind == "FIFO":  # a daemon stuck opening it (the bug) is let go, so the test can end
            with contextlib.suppress(OSError):
                os.close(os.open(ignore, os.O_WRONLY | os.O_NONBLOCK))
    assert result["exitCode"] == 0
    # The run went on without the file's rules; the file itself is not sent.
    assert result["output"] == "sent\n.cellbox\na.txt\ncellbox.toml\n"


async def test_a_link_to_a_file_outside_sends_nothing_of_it(remote, canary):
    daemon, workspace = await remote(files={"in.txt": "in\n"})
    (workspace / "secret").symlink_to(canary)
    (workspace / "shadow").symlink_to("/etc/shadow")
    (workspace / "x").symlink_to(".")
    (workspace / "up").symlink_to("x/..")
    (workspace / "sneaky").symlink_to("up/canary")
    result = await daemon.execute(("bash", "cat secret shadow sneaky up/canary 2>&1; ls -A"))
    assert CANARY.strip() not in result["output"]
    # Only the link leading inside went in; the others stay here, untouched.
    assert result["output"].splitlines()[-4:] == [".cellbox", "cellbox.toml", "in.txt", "x"]
    assert sorted(links_leading_out(workspace)) == ["secret", "shadow", "sneaky", "up"]


async def test_an_environment_builds_on_the_remote_engine_from_files_it_cannot_see(remote, remote_engine):
    """The files a declared environment names travel in the build context:
    an engine on another machine builds it the same (issue 15)."""
    from tests.wheelhouse import make_wheel

    options = {"image": TEST_IMAGE, "environment": {"packages": ["cellbox_far==1.0"], "findLinks": "wheels",
                                                     "network": "none"}}
    daemon, workspace = await remote(init_options=options)
    make_wheel(workspace / "wheels", "cellbox_far", "1.0", "VALUE = 'built far away'\n")
    try:
        result = await daemon.execute(("python", "import cellbox_far; print(cellbox_far.VALUE)"))
        assert (result["exitCode"], result["output"]) == (0, "built far away\n"), result
        assert container_on(remote_engine, workspace).image.tags[0].startswith("cellbox-env:")
    finally:
        await daemon.command("cellbox.stop", {})
        for image in environment_images(remote_engine.client, workspace):
            remote_engine.client.images.remove(image.id, force=True)
