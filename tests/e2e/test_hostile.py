"""Hostile code: what a block can try, and what it gets. Every test runs the
real daemon against the real engine, and asserts from the user's side (the
result) and from inside the container."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conftest import TEST_IMAGE, containers_of
from tests.e2e.conftest import Daemon
from tests.e2e.test_execution import processes_in, surviving
from tests.e2e.test_fork_path import until_forking

GiB = 1 << 30


class ForkingDaemon(Daemon):
    """A daemon whose Python blocks fork from the warm interpreter from the
    first one on: before a workspace's first run, it runs Python blocks until
    one is forked."""

    warmed: set[str]

    async def command(self, name: str, *arguments):
        if name == "cellbox.execute" and arguments and isinstance(arguments[0], dict):
            where = arguments[0].get("workspace") or str(self.workspace)
            if where not in self.warmed:
                self.warmed.add(where)
                await until_forking(self, where)
        return await super().command(name, *arguments)


@pytest.fixture(params=["spawned", "forked"])
def start_daemon(request, start_daemon, private_xdg):
    """Every attack here twice: with each Python block spawned as a new process
    (`warm_python = false` in the user's config), and forked from the warm interpreter."""
    if request.param == "spawned":
        config = private_xdg / "xdg_config_home" / "cellbox"
        config.mkdir(parents=True, exist_ok=True)
        (config / "config.toml").write_text("warm_python = false\n")
        return start_daemon

    started = []

    async def start(*args, **kwargs):
        daemon = await start_daemon(*args, **kwargs)
        started.append(daemon)
        if len(started) > 1:
            return daemon  # a second daemon on a sandbox the first holds runs its blocks with docker exec
        forking = ForkingDaemon(daemon.client, daemon.workspace, daemon.initialize_result)
        forking.warmed = set()
        return forking

    return start


def config(**settings: object) -> str:
    lines = [f'image = "{TEST_IMAGE}"']
    for key, value in settings.items():
        if isinstance(value, dict):
            table = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            lines.append(f"{key} = {{ {table} }}")
        else:
            lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_the_safe_defaults_are_what_the_engine_was_given(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    (container,) = containers_of(engine, workspace)
    host = container.attrs["HostConfig"]
    owner = workspace.stat()
    assert container.attrs["Config"]["User"] == f"{owner.st_uid}:{owner.st_gid}"
    assert (host["Memory"], host["MemorySwap"]) == (GiB, GiB)  # no swap beyond the limit
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 256
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]} == {
        "nofile": (1024, 1024), "fsize": (GiB, GiB),
    }
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={256 << 20}"}
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # and no seccomp=unconfined
    assert host["Init"] is True and host["NetworkMode"] == "none" and host["Privileged"] is False
    mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
    # /cellbox/kernels: the session kernels' socket folders, the only other writable mount.
    assert mounts == {"/workspace": True, "/cellbox/blocks": False, "/cellbox/run": False, "/cellbox/kernels": True,
                      "/cellbox/packages": True}


async def test_the_safe_defaults_hold_from_inside(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    probe = (
        "grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status\n"
        "ulimit -n; ulimit -f\n"
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max\n"
        "df -k /tmp | tail -1 | awk '{print $2}'\n"
        "touch /etc/cellbox-probe 2>&1 || true\n"
        "ls /var/run/docker.sock /run/docker.sock 2>&1 || true\n"
        "cat /proc/1/cmdline | tr '\\0' ' '\n"
    )
    result = await daemon.execute(("bash", probe))
    lines = result["output"].splitlines()
    assert lines[:4] == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"]
    assert lines[4:8] == ["1024", str(GiB // 1024), str(GiB), "256"]  # bash counts ulimit -f in KiB
    assert lines[8] == str(256 << 10)
    assert "Read-only file system" in lines[9]
    assert all("No such file" in line for line in lines[10:12])
    assert lines[12].startswith("/sbin/docker-init")  # an init as PID 1, reaping zombies


async def test_blocks_run_as_the_workspace_owner(make_workspace, start_daemon):
    workspace = make_workspace("owned")
    os.chown(workspace, 1000, 1000)
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("python", "# filename: sub/named.py\nprint('named')"),
        ("sh", "id -u; id -g; echo made > made.txt; mkdir -p out; touch out/mine"),
    )
    assert result["output"] == "named\n1000\n1000\n"
    for made in ("made.txt", "out/mine", "out", "sub/named.py", "sub"):
        stat = (workspace / made).stat()
        assert (stat.st_uid, stat.st_gid) == (1000, 1000), made


async def test_only_the_configured_environment_reaches_blocks(make_workspace, start_daemon):
    workspace = make_workspace("env", config(env={"GREETING": "hello"}))
    daemon = await start_daemon(workspace, env={"CELLBOX_TEST_SECRET": "do-not-leak"})
    result = await daemon.execute(("sh", "env"))
    assert "GREETING=hello" in result["output"].splitlines()
    assert "do-not-leak" not in result["output"] and "CELLBOX_TEST_SECRET" not in result["output"]


async def test_a_fork_bomb_is_contained_and_the_sandbox_recovers(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    host_pids_before = len(os.listdir("/proc"))
    bomb = await daemon.execute(("bash", "bomb() { bomb | bomb & }; bomb"), timeout=5)
    assert bomb["blocks"][0]["status"] in ("timeout", "error", "ok")
    after = await daemon.execute(("sh", "echo alive"))
    assert after["output"] == "alive\n"
    assert surviving(engine, workspace, "bash") == []
    assert len(os.listdir("/proc")) < host_pids_before + 100  # nothing spilled onto the host


async def test_a_memory_hog_is_reported_oom(make_workspace, start_daemon):
    workspace = make_workspace("hog", config(memory="128m"))
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "hog = bytearray(1 << 30)\nprint('survived')"), timeout=30)
    block = result["blocks"][0]
    assert (block["status"], block["exitCode"]) == ("oom", 137)
    assert "survived" not in block["output"]
    assert (await daemon.execute(("sh", "echo next")))["output"] == "next\n"


@pytest.mark.parametrize(
    ("language", "code"),
    [("python", "while True:\n    pass"), ("sh", "sleep 1000"), ("sh", "exec >&- 2>&-; sleep 1000")],
    ids=["cpu-spin", "sleep-forever", "closes-stdout-and-sleeps"],
)
async def test_a_run_that_never_ends_is_killed_at_the_timeout(workspace, start_daemon, engine, language, code):
    daemon = await start_daemon(workspace)
    result = await daemon.execute((language, code), timeout=2)
    block = result["blocks"][0]
    assert (block["status"], block["exitCode"], block["timedOut"]) == ("timeout", 124, True)
    assert block["durationMs"] < 10_000
    assert surviving(engine, workspace, r"sleep 1000|python /cellbox") == []


async def test_infinite_output_is_cut_at_the_cap_and_the_daemon_stays_small(make_workspace, start_daemon):
    workspace = make_workspace("yes", config(output_limit="64k"))
    daemon = await start_daemon(workspace)
    await daemon.execute(("sh", "true"))
    before = rss_mb(daemon.client._server.pid)
    result = await daemon.execute(("sh", "yes 'all work and no play'"), timeout=4)
    block = result["blocks"][0]
    assert (block["status"], block["truncated"], result["truncated"]) == ("timeout", True, True)
    kept, marker = block["output"].split("\n[cellbox: output cut at 64 KiB; the block ran on]\n")
    assert len(kept.encode()) == 64 << 10 and marker == "\nTimeout"
    assert set(kept.splitlines()[:-1]) == {"all work and no play"}
    assert rss_mb(daemon.client._server.pid) < before + 30  # seconds of `yes`, bounded memory


async def test_the_default_output_cap_is_one_mebibyte(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "import sys\nsys.stdout.write('x' * 3_000_000)\nprint('end', file=sys.stderr)"))
    block = result["blocks"][0]
    assert (block["status"], block["exitCode"], block["truncated"]) == ("ok", 0, True)
    kept, marker = block["output"].split("\n[cellbox: output cut at 1 MiB; the block ran on]\n")
    assert kept == "x" * (1 << 20) and marker == ""


async def test_filling_the_disk_is_stopped_by_the_size_limits(make_workspace, start_daemon):
    workspace = make_workspace("disk", config(max_file_size="8m", tmp_size="16m"))
    daemon = await start_daemon(workspace)
    big_file = await daemon.execute(("sh", "dd if=/dev/zero of=big.bin bs=1M count=64 2>&1"))
    block = big_file["blocks"][0]
    assert (block["status"], block["exitCode"]) == ("output_limit", 128 + 25)  # SIGXFSZ
    assert (workspace / "big.bin").stat().st_size == 8 << 20
    # Files each under the size limit, together over the /tmp cap.
    tmp_fill = await daemon.execute(("sh", "for i in 1 2 3 4; do dd if=/dev/zero of=/tmp/f$i bs=1M count=6 2>&1; done"))
    assert "No space left on device" in tmp_fill["output"]


async def test_writing_outside_the_workspace_fails(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("sh", "for d in / /etc /usr /root /var /home; do touch $d/cellbox-x 2>&1 || true; done")
    )
    lines = result["output"].splitlines()
    assert len(lines) == 6 and all("Read-only file system" in line for line in lines)


async def test_host_files_beyond_the_workspace_are_absent(workspace, start_daemon, tmp_path):
    secret = tmp_path / "beside-the-workspace.txt"
    secret.write_text("host secret\n")
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", f"cat {secret} 2>&1; ls {workspace.parent} 2>&1 | head -1"))
    assert "host secret" not in result["output"]
    assert result["output"].count("No such file or directory") == 2


async def test_zombies_are_reaped(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    code = (
        "import os, time\n"
        "for _ in range(5):\n"
        "    if os.fork() == 0:\n"
        "        os._exit(0)\n"  # children that nobody waits for
        "time.sleep(0.5)\n"
        "print(open('/proc/self/status').read().count('State'))\n"
    )
    result = await daemon.execute(("python", code))
    assert result["exitCode"] == 0
    assert [p for p in processes_in(engine, workspace) if "defunct" in p] == []


async def test_a_daemonised_process_is_gone_after_the_run(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    code = "setsid nohup sh -c 'sleep 331' >/dev/null 2>&1 &\necho left it"
    result = await daemon.execute(("sh", code))
    assert result["output"] == "left it\n"
    assert surviving(engine, workspace, "sleep 331") == []


async def test_soak_sequential_and_concurrent_runs_leak_nothing(make_workspace, start_daemon, engine):
    spaces = [make_workspace(f"soak{i}") for i in range(5)]
    daemon = await start_daemon(spaces[0])
    pid = daemon.client._server.pid
    for space in spaces:
        await daemon.execute(("sh", "true"), workspace=str(space))
    fds_before = len(os.listdir(f"/proc/{pid}/fd"))
    threads_before = len(os.listdir(f"/proc/{pid}/task"))

    for i in range(1000):
        result = await daemon.execute(("sh", f"echo {i}"))
        assert (result["exitCode"], result["output"]) == (0, f"{i}\n")

    clients = [daemon] + [await start_daemon(spaces[i % 5]) for i in range(1, 10)]

    async def client_runs(c: int) -> list[bool]:
        outcomes = []
        for r in range(20):
            space = spaces[(c + r) % 5]
            result = await clients[c].execute(("python", f"print({c} * 1000 + {r})"), workspace=str(space))
            outcomes.append(result["output"] == f"{c * 1000 + r}\n" and result["exitCode"] == 0)
        return outcomes

    outcomes = await asyncio.gather(*(client_runs(c) for c in range(10)))
    assert sum(map(sum, outcomes)) == 200
    assert len(os.listdir(f"/proc/{pid}/fd")) <= fds_before  # the other clients' runs went elsewhere
    assert len(os.listdir(f"/proc/{pid}/task")) <= threads_before + 2
    for space in spaces:
        assert len(containers_of(engine, space)) == 1
        leftovers = [p for p in processes_in(engine, space) if "sleep" not in p and "python3 -I -S" not in p
                     and "docker-init" not in p and "/bin/sh -c" not in p]
        assert leftovers == [], leftovers
