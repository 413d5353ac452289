"""Unit tests of the warm runner, without Docker: the very program the daemon
hands a container (ship.runner_program()) runs as a host process, and the
daemon's own RunnerListener and RunnerClient talk to it through a Unix socket
in a temporary folder.

The runner kills every process it can see but init and its parent, and puts a
seccomp filter on itself. So it runs in a PID namespace of its own, with its
own /proc (`unshare --pid --fork --mount-proc`), under a shell that plays the
container's main process: it sees nothing of the host's to kill. It runs
with no_new_privs, as in the sandbox, so its filter is the sandbox's. The
whole namespace dies with the test: killing `unshare` kills its child, the
namespace's init (--kill-child), and with it everything in the namespace; so
does the pytest process's death (setpriv --pdeathsig).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cellbox.container import ship
from cellbox.sandbox.runner_client import RunEnd, RunnerClient, RunnerListener, RunnerLost

MAIN = 'sleep 60 & "$1" -I -S -c "$2" "$3" & wait $!'
"""The namespace's init and the runner's parent, as the container's main
process is; the `sleep` stands for what an earlier runner left behind."""
LIST_PROCESSES = r"""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = $$ ] && continue
  read -r line 2>/dev/null < "$d/stat" || continue
  set -- ${line##*) }
  [ "$1" = Z ] || echo "$p"
done
"""
"""A block that prints every live process it sees but itself."""
OWNER = (os.getuid(), os.getgid())
RUN_TIMEOUT_SECONDS = 10
"""Runs here take milliseconds; one that hangs (a `sleep 60` not killed) fails at this."""


@functools.cache
def namespace_command() -> list[str] | None:
    """How to start a program in a PID namespace of its own; None if this machine cannot."""
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        return None
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = ["setpriv", "--pdeathsig", "KILL", "unshare", *user, "--pid", "--fork", "--mount-proc", "--kill-child"]
    if subprocess.run([*command, "true"], capture_output=True).returncode != 0:
        return None
    return [*command, "setpriv", "--no-new-privs"]


class Sink:
    """Where a run's output goes (the daemon's is an OutputCollector)."""

    def __init__(self) -> None:
        self.output = {"stdout": b"", "stderr": b""}
        self.cuts = 0

    def feed(self, stream: str, data: bytes) -> None:
        self.output[stream] += data

    def cut(self) -> None:
        self.cuts += 1

    async def shows(self, text: bytes, stream: str = "stdout") -> None:
        async with asyncio.timeout(5):
            while text not in self.output[stream]:
                await asyncio.sleep(0.005)


class Sandbox:
    """A runner in a PID namespace of its own, and the daemon's end of it."""

    def __init__(self, run_dir: Path, workdir: Path) -> None:
        self.run_dir = run_dir
        self.workdir = workdir
        self.listener = RunnerListener(run_dir, "test")
        self.process: asyncio.subprocess.Process | None = None
        self.client: RunnerClient | None = None

    async def launch(self) -> None:
        """Start the runner; the daemon's listener waits for it (expect() first)."""
        command = namespace_command()
        assert command is not None
        program = ship.runner_program()
        self.process = await asyncio.create_subprocess_exec(
            *command, "/bin/sh", "-c", MAIN, "cellbox-test", sys.executable, program, str(self.run_dir),
            cwd=self.workdir, env={"PATH": os.environ["PATH"]},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    async def connected(self) -> RunnerClient:
        try:
            self.client = await self.listener.runner(5)
        except TimeoutError:
            assert self.process is not None and self.process.stderr is not None
            self.process.kill()
            pytest.fail(f"the runner did not connect: {(await self.process.stderr.read()).decode()}")
        return self.client

    async def run(
        self, *argv: str, limit: int = 1 << 20, sink: Sink | None = None, run_id: str = ""
    ) -> tuple[RunEnd, Sink]:
        sink = sink or Sink()
        assert self.client is not None
        async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
            return await self.client.run(run_id or uuid.uuid4().hex, list(argv), sink, limit), sink

    async def processes(self) -> set[int]:
        """The live processes in the runner's namespace, but the block that looks."""
        _, sink = await self.run("sh", "-c", LIST_PROCESSES)
        return {int(pid) for pid in sink.output["stdout"].split()}

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.listener.close()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """Not yet started: `expect()` and `launch()` it."""
    if namespace_command() is None:
        pytest.skip("needs unshare and setpriv, and root or user namespaces, to run the runner in a PID namespace")
    # Not under tmp_path: a socket's path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="cellbox-runner-") as run_dir:
        made = Sandbox(Path(run_dir), tmp_path)
        assert await made.listener.open()
        try:
            yield made
        finally:
            await made.close()


@pytest.fixture
async def runner(sandbox: Sandbox) -> Sandbox:
    """A runner, connected."""
    sandbox.listener.expect(OWNER)
    await sandbox.launch()
    await sandbox.connected()
    return sandbox


# ------------------------------------------------------------ connecting


async def test_the_runner_connects_with_the_token_and_answers(runner: Sandbox) -> None:
    assert runner.client is not None
    assert await runner.client.ping() == runner.client.pid
    assert not runner.listener.token_path.exists()  # used up


async def test_a_runner_with_the_wrong_token_is_refused(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sandbox.listener.expect(OWNER)
    token = sandbox.listener.token_path.read_bytes()
    replace(sandbox.listener.token_path, b"0" * len(token))
    await sandbox.launch()
    async with asyncio.timeout(5):
        while "without the expected token was refused" not in caplog.text:
            await asyncio.sleep(0.005)
    replace(sandbox.listener.token_path, token)  # it keeps looking: now it gets in
    client = await sandbox.connected()
    assert await client.ping() == client.pid


def replace(path: Path, content: bytes) -> None:
    temporary = path.with_name("new-token")
    temporary.write_bytes(content)
    os.replace(temporary, path)


async def test_when_the_daemon_goes_away_its_run_goes_and_the_runner_waits_for_the_next(runner: Sandbox) -> None:
    assert runner.client is not None
    sink = Sink()
    running = asyncio.ensure_future(runner.run("sh", "-c", "echo up; sleep 60", sink=sink))
    await sink.shows(b"up\n")
    old = runner.client
    old.close()
    with pytest.raises(RunnerLost):
        await running
    runner.listener.expect(OWNER)
    new = await runner.connected()
    assert new is not old and new.pid == old.pid  # the same runner, connected again
    assert await runner.processes() == {1, new.pid}


# ------------------------------------------------------------ runs


async def test_a_run_gives_its_output_by_stream_and_its_exit_code(runner: Sandbox) -> None:
    end, sink = await runner.run("sh", "-c", "echo out; echo err >&2; exit 3")
    assert end.code == 3
    assert sink.output == {"stdout": b"out\n", "stderr": b"err\n"}
    assert sink.cuts == 0


async def test_arguments_arrive_as_they_were_sent(runner: Sandbox) -> None:
    _, sink = await runner.run("printf", "%s|", "two words", "é", "\udcff", "")  # \udcff: the byte 0xff
    assert sink.output["stdout"] == "two words|é|".encode() + b"\xff||"


async def test_a_program_that_does_not_exist_fails_as_in_a_shell(runner: Sandbox) -> None:
    end, sink = await runner.run("no-such-program-cellbox")
    assert end.code == 127
    assert sink.output["stderr"] == b"no-such-program-cellbox: not found\n"


async def test_a_run_killed_by_a_signal_exits_with_128_plus_it(runner: Sandbox) -> None:
    assert (await runner.run("sh", "-c", "kill -9 $$"))[0].code == 137


async def test_a_run_gets_the_default_action_of_signals_the_runner_ignores(runner: Sandbox) -> None:
    # Python ignores SIGPIPE; a block must not inherit that (`yes | head` would never end).
    end, sink = await runner.run("sh", "-c", "kill -PIPE $$; echo survived")
    assert (end.code, sink.output["stdout"]) == (141, b"")


async def test_output_past_the_limit_is_cut_and_the_run_still_ends(runner: Sandbox) -> None:
    end, sink = await runner.run("sh", "-c", "head -c 300000 /dev/zero; echo more >&2; echo end", limit=1000)
    assert end.code == 0
    assert len(sink.output["stdout"]) + len(sink.output["stderr"]) == 1000
    assert sink.cuts == 1


# ------------------------------------------------------------ what runs leave


async def test_what_an_earlier_runner_left_is_killed_when_the_runner_starts(runner: Sandbox) -> None:
    assert runner.client is not None
    assert await runner.processes() == {1, runner.client.pid}  # the main process's `sleep` is gone


async def test_a_kill_takes_the_run_and_all_it_started(runner: Sandbox) -> None:
    assert runner.client is not None
    sink = Sink()
    script = "setsid sleep 60 & sleep 60 & echo up; wait"
    running = asyncio.ensure_future(runner.run("sh", "-c", script, sink=sink, run_id="killed"))
    await sink.shows(b"up\n")
    await runner.client.kill("killed")
    assert (await running)[0].code == 137
    assert await runner.processes() == {1, runner.client.pid}


async def test_what_a_run_leaves_behind_is_killed_when_it_ends(runner: Sandbox) -> None:
    assert runner.client is not None
    # Detached every way: no marker (env -i), a session of its own, and an
    # orphan (its shell is gone); only the subreaper keeps it below the runner.
    # The block ends once it is detached: before that, the sweep of the run's
    # process group and marker would take it.
    detach = "env -i setsid sh -c 'echo >detached; exec sleep 60' >/dev/null 2>&1"
    script = f"({detach} &); until [ -s detached ]; do :; done; echo bye"
    end, sink = await runner.run("sh", "-c", script)
    assert (end.code, sink.output["stdout"]) == (0, b"bye\n")
    assert await runner.processes() == {1, runner.client.pid}


async def test_a_kept_run_outlives_other_runs_sweeps_but_what_it_started_does_not(runner: Sandbox) -> None:
    """A session's kernel is a kept run: the sweep after another run, and a
    tidy, spare its own process; what it started goes."""
    assert runner.client is not None
    sink = Sink()
    # Starts a child on each line it reads from a FIFO, as a kernel runs blocks.
    # A read that opens the FIFO while the last writer is still closing sees
    # its end at once: that must not end the loop.
    kernel = "mkfifo blocks; echo up; while :; do if read -r line < blocks; then sleep 60 & echo child; fi; done"
    kept = asyncio.ensure_future(runner.client.run("kernel", ["sh", "-c", kernel], sink, 1 << 20, keep=True))
    await sink.shows(b"up\n")
    before = await runner.processes()
    kernel_pids = before - {1, runner.client.pid}
    assert len(kernel_pids) == 1
    (runner.workdir / "blocks").write_text("go\n")
    await sink.shows(b"child\n")
    # Seen while the listing runs; its end's sweep then takes the child, not the kernel.
    assert len(await runner.processes()) == len(before) + 1
    assert await runner.processes() == before
    # A tidy (after a block ran in the kernel) sweeps the same way, and says when it is done.
    (runner.workdir / "blocks").write_text("go\n")
    await sink.shows(b"child\nchild\n")
    await runner.client.tidy()
    assert await runner.processes() == before
    # An interrupt goes to the kernel's process alone; SIGTERM here ends it.
    runner.client.signal("kernel", 15)
    assert (await asyncio.wait_for(kept, 5)).code == 143
    assert await runner.processes() == {1, runner.client.pid}


async def test_what_a_kept_run_had_when_it_settled_is_spared_as_it_is(runner: Sandbox) -> None:
    """A bash kernel starts its shell before it is ready: once the daemon says
    the kernel settled, sweeps spare that shell; what starts later goes."""
    assert runner.client is not None
    sink = Sink()
    kernel = "mkfifo blocks; sleep 61 & echo up; while :; do if read -r line < blocks; then sleep 62 & echo child; fi; done"
    kept = asyncio.ensure_future(runner.client.run("kernel", ["sh", "-c", kernel], sink, 1 << 20, keep=True))
    await sink.shows(b"up\n")
    await runner.client.settle("kernel")
    settled = await runner.processes()
    assert len(settled - {1, runner.client.pid}) == 2  # the kernel and its "shell"
    (runner.workdir / "blocks").write_text("go\n")
    await sink.shows(b"up\nchild\n")
    await runner.client.tidy()
    assert await runner.processes() == settled
    # A script's sweep spares them too.
    end, _ = await runner.run("true")
    assert end.code == 0 and await runner.processes() == settled
    runner.client.signal("kernel", 15)
    await asyncio.wait_for(kept, 5)


async def test_no_run_can_make_a_setuid_file(runner: Sandbox) -> None:
    end, sink = await runner.run("sh", "-c", "touch f && chmod 755 f && chmod 4755 f")
    assert end.code != 0 and b"Operation not permitted" in sink.output["stderr"]
    assert stat.S_IMODE((runner.workdir / "f").stat().st_mode) == 0o755


# ------------------------------------------------------------ the program shipped


def test_the_program_fits_in_one_argument() -> None:
    most = 32 * 4096  # MAX_ARG_STRLEN: the kernel refuses a longer argument to execve
    assert len(ship.runner_program().encode()) < most


def test_the_runner_is_python_3_8() -> None:
    """As far as the parser can tell: runner.py's docstring says 3.8 is the oldest."""
    ast.parse(ship.runner_program(), feature_version=(3, 8))
    for name in ship.RUNNER_MODULES:
        ast.parse(Path(ship.__file__).with_name(f"{name}.py").read_text(encoding="utf-8"), feature_version=(3, 8))
