"""The host's side of the hostile-workspace suite (test_hostile_workspace.py).

An attack comes from inside a workspace, but the harm it aims at is outside:
a host file read, changed or chowned, a service on the host's loopback
reached, another container of the user's removed, the daemon frozen for
everyone. `Host` sets up one of each of those before a test and checks them
afterwards from the host, never from inside the sandbox:

- `canary`: a root-owned 0600 file beside the workspace (in `outside/`, where
  nothing else is);
- `listener`: a TCP listener on the host's 127.0.0.1 that must hear nothing;
- `unrelated`: a running container of the user's, not made by cellbox;
- `bystander`: a second workspace served by the same daemon, which must
  keep answering within 2 s.

`Plant` is an attack's files, links and FIFOs, put in place either by a block
(`BY_BLOCK`: the sandbox is up, a block writes them, and the NEXT request is
the one they aim at) or by the repository (`BY_REPOSITORY`: they are there, as
a clone left them, before the daemon's first run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import docker
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE

BY_BLOCK = "block"
BY_REPOSITORY = "repository"
HOW = {"argnames": "how", "argvalues": [BY_BLOCK, BY_REPOSITORY], "ids": ["by-a-block", "by-the-repository"]}
"""pytest.mark.parametrize(**HOW): each attack both ways."""

ANSWER_SECONDS = 2.0
"""The daemon must answer another workspace within this, whatever one workspace does."""
ADDRESS_SPACE_CAP = 3 << 30
"""RLIMIT_AS of every daemon here. Reading /dev/zero to the end would take all of
the machine's memory; with this cap it ends in MemoryError at ~2.7 GB instead.
The daemon itself needs ~0.3 GB of address space."""
CANARY_TEXT = b"host secret: no attack may read, change or chown this\n"
GiB = 1 << 30


# ------------------------------------------------------------------ the host


class LoopbackListener:
    """A TCP listener on the host's 127.0.0.1 that records who connects."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                peer, address = self._socket.accept()
            except TimeoutError:
                continue
            self.connections.append(address)
            peer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@attrs.frozen
class FileState:
    content: bytes
    uid: int
    gid: int
    mode: int

    @classmethod
    def of(cls, path: Path) -> FileState:
        stats = path.lstat()
        return cls(path.read_bytes(), stats.st_uid, stats.st_gid, stats.st_mode)


class Host:
    """What an attack must leave alone, and the daemon it attacks."""

    def __init__(self, tmp_path: Path, engine: docker.DockerClient, bystander: Path, start_daemon,
                 engine_env: Mapping[str, str] | None = None) -> None:
        self.engine = engine
        self.bystander = bystander
        self._start_daemon = start_daemon
        self._tmp_path = tmp_path
        self.daemons: list = []

        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        self.canary = self.outside / "secret.txt"
        self.canary.write_bytes(CANARY_TEXT)
        os.chown(self.canary, 0, 0)
        os.chmod(self.canary, 0o600)
        self.canary_state = FileState.of(self.canary)

        self.listener = LoopbackListener()

        self.unrelated = engine.containers.run(
            TEST_IMAGE, ["sleep", "86400"], name=f"users-own-{uuid.uuid4().hex[:10]}", detach=True,
            network_mode="none", labels={"org.example.owner": "someone, not cellbox"},
        )
        self.unrelated.reload()
        self.unrelated_started_at = self.unrelated.attrs["State"]["StartedAt"]

        # Short: the daemon may keep sockets under these (sun_path holds 108 bytes).
        self.xdg = Path(tempfile.mkdtemp(prefix="cbx-h-", dir="/tmp"))
        self.env = {
            **(engine_env or {}),
            "XDG_STATE_HOME": str(self.xdg / "state"),
            "XDG_CONFIG_HOME": str(self.xdg / "config"),
            "XDG_DATA_HOME": str(self.xdg / "data"),
        }
        for folder in ("state", "config", "data"):
            (self.xdg / folder).mkdir()

    async def start(self, workspace: Path | None, **options):
        """A daemon for `workspace` (start_daemon's options), with its own XDG
        folders and its memory capped; the bystander already has a warm sandbox."""
        env = {**self.env, **options.pop("env", {})}
        command = ["prlimit", f"--as={ADDRESS_SPACE_CAP}", sys.executable, "-m", "cellbox", "serve"]
        daemon = await self._start_daemon(workspace, env=env, command=command, **options)
        self.daemons.append(daemon)
        warm = await daemon.execute(("sh", "echo ready"), workspace=str(self.bystander))
        assert warm["output"] == "ready\n", warm
        return daemon

    def trust(self, workspace: Path) -> subprocess.CompletedProcess:
        """`cellbox trust WORKSPACE`, as the user runs it, with the daemon's XDG folders."""
        return subprocess.run(
            [sys.executable, "-m", "cellbox", "trust", str(workspace)], env={**os.environ, **self.env},
            capture_output=True, text=True, timeout=60, check=False,
        )

    async def assert_unharmed(self, daemon) -> None:
        """Everything outside the attacked workspace is as it was, and the daemon serves the bystander."""
        assert FileState.of(self.canary) == self.canary_state, "the file beside the workspace was changed"
        assert sorted(p.name for p in self.outside.iterdir()) == [self.canary.name], "the folder beside it was changed"
        assert self.listener.connections == [], "something reached the host's loopback"
        try:
            self.unrelated.reload()
        except docker.errors.NotFound:
            raise AssertionError(f"the user's container {self.unrelated.name} was removed") from None
        assert (self.unrelated.status, self.unrelated.attrs["State"]["StartedAt"]) == (
            "running", self.unrelated_started_at), f"the user's container {self.unrelated.name} was stopped or restarted"
        await assert_answers(daemon.execute(("sh", "echo alive"), workspace=str(self.bystander)), "alive\n")

    def close(self) -> None:
        try:
            with contextlib.suppress(docker.errors.DockerException):
                self.unrelated.remove(force=True)
            shutil.rmtree(self.xdg, ignore_errors=True)
        finally:
            self.listener.close()

    async def shut_down(self) -> None:
        """Stop every daemon started here, even one the attack left stuck.

        A daemon blocked on a FIFO is let go first. One that then fails its
        shutdown (main's pygls answers `shutdown` with an error while a run
        is pending, and never exits) or does not exit in time is killed:
        start_daemon's own teardown would wait for its exit forever.
        """
        for folder, _, names in os.walk(self._tmp_path):
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISFIFO(os.lstat(path).st_mode):
                        # O_RDWR never blocks on a FIFO, and completes the open
                        # of a reader or writer waiting at the other end.
                        os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))
        for daemon in self.daemons:
            client = daemon.client
            if client.stopped:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_session(), 30)
            if client._server.returncode is None:
                try:
                    await asyncio.wait_for(asyncio.shield(client._server.wait()), 10)
                except TimeoutError:
                    client._server.kill()
            await client.stop()


async def assert_answers(request, output: str) -> None:
    """`request` (an execute) comes back with `output` within ANSWER_SECONDS."""
    task = asyncio.ensure_future(request)
    # Not wait_for: a request cancelled here would be answered later to a
    # client that no longer expects it.
    done, _ = await asyncio.wait({task}, timeout=ANSWER_SECONDS)
    if not done:  # it may yet end in an error, at shutdown: nobody will look
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    assert done, f"the daemon did not answer another workspace within {ANSWER_SECONDS:.0f} s"
    assert task.result()["output"] == output, task.result()


# ------------------------------------------------------------ what the user sees


def told(client) -> list[str]:
    """What the daemon told the person: warnings shown, and prompts (with their actions) the client declined."""
    shown = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    asked = [f"{r.message} [{' / '.join(a.title for a in r.actions or [])}]" for r in client.message_requests]
    return shown + asked


async def warning_naming(daemon, *words: str, seconds: float = 5.0) -> str:
    """The warning or prompt that names every one of `words`; fails listing what was said instead."""
    deadline = time.monotonic() + seconds
    while True:
        for text in told(daemon.client):
            if all(word in text for word in words):
                return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no warning names {words}; the daemon said: {told(daemon.client)}")
        await asyncio.sleep(0.05)


def asks_for_approval(text: str, workspace: Path) -> bool:
    """A warning says how to approve (`cellbox trust FOLDER`), or a prompt offers to."""
    return f"cellbox trust {workspace}" in text or "Allow" in text


async def outcome(request):
    """The result of `request`, or the JSON-RPC error it got."""
    try:
        return await request
    except JsonRpcException as error:
        return error


RAW_EXCEPTION = re.compile(r"\b\w*(Error|Exception)\b|\[Errno \d+\]|Traceback|unknown error")
"""A Python exception's name or text, or cattrs's word for one it could not describe."""


def assert_refused(answer, code: int, *words: str) -> None:
    """`answer` is a JSON-RPC error `code` whose message names `words` and is no raw Python exception."""
    assert isinstance(answer, JsonRpcException), f"expected error {code}, got a result: {answer}"
    assert answer.code == code, f"expected error {code}, got {answer.code}: {answer.message}"
    assert not RAW_EXCEPTION.search(answer.message), answer.message
    for word in words:
        assert word in answer.message, f"{word!r} not in {answer.message!r}"


# ------------------------------------------------------------- planting an attack


@attrs.frozen
class Plant:
    """An attack's files (path -> text), symlinks (path -> target) and FIFOs, relative to the workspace."""

    files: Mapping[str, str] = attrs.field(factory=dict)
    links: Mapping[str, str] = attrs.field(factory=dict)
    fifos: Sequence[str] = ()

    def as_block(self) -> tuple[str, str]:
        """A python block that puts them in place from inside the sandbox."""
        data = json.dumps({"files": dict(self.files), "links": dict(self.links), "fifos": list(self.fifos)})
        return ("python", _PLANTER.format(data=data))

    def in_repository(self, workspace: Path) -> None:
        """Put them in place from the host, owned as the workspace is (as a clone leaves them)."""
        owner = workspace.stat()
        for rel, text in self.files.items():
            _make_room(workspace, rel, owner).write_text(text)
        for rel, target in self.links.items():
            _make_room(workspace, rel, owner).symlink_to(target)
        for rel in self.fifos:
            os.mkfifo(_make_room(workspace, rel, owner))
        for rel in [*self.files, *self.links, *self.fifos]:
            os.chown(workspace / rel, owner.st_uid, owner.st_gid, follow_symlinks=False)


_PLANTER = """\
import json, os
plant = json.loads({data!r})
def make_room(rel):
    os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
    if os.path.isdir(rel) and not os.path.islink(rel):
        os.rename(rel, rel + ".mine")  # e.g. the daemon's own .cellbox folder
    elif os.path.lexists(rel):
        os.remove(rel)
for rel, text in plant["files"].items():
    make_room(rel)
    open(rel, "w").write(text)
for rel, target in plant["links"].items():
    make_room(rel)
    os.symlink(target, rel)
for rel in plant["fifos"]:
    make_room(rel)
    os.mkfifo(rel)
print("planted")
"""


def _make_room(workspace: Path, rel: str, owner: os.stat_result) -> Path:
    path = workspace / rel
    for folder in reversed([p for p in path.parents if workspace in p.parents and not p.exists()]):
        folder.mkdir()
        os.chown(folder, owner.st_uid, owner.st_gid)
    if path.is_symlink() or path.exists():
        path.unlink()
    return path


async def arrange(how: str, host: Host, workspace: Path, plant: Plant, **options):
    """Put `plant` in place the way `how` says; return the daemon, whose next
    request in `workspace` is the one the attack aims at."""
    if how == BY_REPOSITORY:
        plant.in_repository(workspace)
        return await host.start(workspace, **options)
    daemon = await host.start(workspace, **options)
    # The sandbox is up, made with the settings the user chose...
    first = await daemon.execute(("sh", "echo an innocent first block"))
    assert first["exitCode"] == 0, first
    # ...then a block plants the attack.
    planted = await daemon.execute(plant.as_block())
    assert planted["output"] == "planted\n", planted
    return daemon


def owned_by(workspace: Path, uid: int) -> Path:
    """Give `workspace` and what is in it to `uid` (as a user's own clone is)."""
    for path in [workspace, *workspace.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)
    return workspace


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def links_leading_out(workspace: Path) -> list[str]:
    """Symlinks in `workspace` that resolve (fully, link after link) to somewhere outside it."""
    leading_out = []
    for folder, dirs, names in os.walk(workspace):
        for name in dirs + names:
            path = Path(folder) / name
            if path.is_symlink():
                real = Path(os.path.realpath(path))
                if real != workspace and workspace not in real.parents:
                    leading_out.append(f"{path.relative_to(workspace)} -> {real}")
    return sorted(leading_out)
