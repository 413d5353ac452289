"""Session mode: a Jupyter kernel per session and language (ipykernel for
Python; any kernelspec in the image for the languages `kernels` names), inside
the workspace's sandbox, driven from the daemon with jupyter_client. The
container starts it by name with cellbox_kernel_launch (container/kernel_launch.py).

The sandbox has no network, so the kernel's sockets are ZeroMQ `ipc` sockets:
Unix sockets the kernel binds in a folder of the daemon's (state.kernels, one
folder per kernel), mounted read-write at /cellbox/kernels. The kernel is a
run of the warm runner marked `keep`: the runner's leftover sweep spares the
kernel's own process, not what a block started from it, and the runner kills
it with everything else when the daemon goes away.

Everything in a kernel's folder may be rewritten by a block (it runs as the
kernel's user), so the daemon opens nothing there by name: it holds the
folder it made by descriptor, opens each socket with O_PATH|O_NOFOLLOW, checks
it is a socket, and connects through /proc/self/fd/N. A block that swaps a
socket for a link to some socket of the host's sends the daemon nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from cellbox import safe_files, timeouts
from cellbox.container import scripts as container_scripts
from cellbox.container import ship
from cellbox.errors import SandboxFailed
from cellbox.sandbox.displays import keep_display
from cellbox.sandbox.output import OutputCollector
from cellbox.sandbox.run import OnDisplay, OnOutput
from cellbox.sandbox.runner_client import RunEnd, RunnerClient, RunnerLost
from cellbox.vocabulary import CANCELLED_EXIT_CODE, KILLED_EXIT_CODE, TIMEOUT_EXIT_CODE, Status
from cellbox.wire import DisplayOutput, SessionInfo

log = logging.getLogger(__name__)

KERNEL_START_TIMEOUT_SECONDS = 60.0
"""ipykernel is up in ~1-2 s; a loaded machine importing IPython can take longer."""
INTERRUPT_GRACE_SECONDS = 3.0
"""How long a block has to stop after a KeyboardInterrupt before its kernel is killed."""
KERNEL_LOG_LIMIT = 64 * 1024
CHANNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}
"""ipc "ports": the kernel binds ip-1 ... ip-5."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"^(Cell In ?\[(\d+)\], line )(\d+)")
"""IPython's frame header for code run as a cell: "Cell In [3], line 2" (8.5) or "Cell In[3], line 2"."""
_GUTTER = re.compile(r"^(\s*(?:-*>)?\s*)(\d+)(?=\s|$)")
"""A numbered line of a frame's code context: "----> 2 print(x)", "      1 x = 1"."""


class SessionUnavailable(SandboxFailed):
    """Session mode cannot start a kernel here; the message says what to install."""


@attrs.frozen
class SessionOutcome:
    """How one block ended in a session."""

    exit_code: int
    output: str
    truncated: bool
    status: Status
    state_lost: bool
    displays: list[DisplayOutput]
    timed_out: bool = False


def in_document_lines(frames: list[str], offsets: dict[int, int]) -> str:
    """A kernel's traceback as plain text, where each cell's line numbers
    (its header's and its code context's) are moved by that cell's offset:
    a block that starts on a document's line 12 reads "Cell In [3], line 12"."""
    shown = []
    for frame in frames:
        lines = _ANSI.sub("", frame).split("\n")
        match = _CELL_FRAME.match(lines[0])
        offset = offsets.get(int(match.group(2)), 0) if match else 0
        if match and offset:
            lines[0] = f"{match.group(1)}{int(match.group(3)) + offset}{lines[0][match.end():]}"
            lines[1:] = [_moved_gutter(line, offset) for line in lines[1:]]
        shown.append("\n".join(lines))
    return "\n".join(shown)


def _moved_gutter(line: str, offset: int) -> str:
    match = _GUTTER.match(line)
    if match is None:
        return line
    return f"{match.group(1)}{int(match.group(2)) + offset}{line[match.end():]}"


class KernelSession:
    """One named session: a kernel in the sandbox, started on its first block."""

    def __init__(
        self, name: str, language: str, kernel: str, kernels: Path, owner: tuple[int, int], outputs: Path
    ) -> None:
        self.name = name
        self.language = language
        self.kernel = kernel
        """The kernelspec's name in the image."""
        self._kernels = kernels
        self._owner = owner
        self._outputs = outputs
        self._runner: RunnerClient | None = None
        self._run_id = ""
        self._ended: asyncio.Future[RunEnd] | None = None
        self._client: Any = None
        self._folder_fd: int | None = None
        self._socket_fds: list[int] = []
        self._folder_name = ""
        self._log = OutputCollector(KERNEL_LOG_LIMIT, lambda stream, text: None)
        self.busy = False
        self.started_at: float | None = None
        self.blocks_run = 0
        self._offsets: dict[int, int] = {}
        """Per execution count, how many lines above the cell its document had."""

    @property
    def state(self) -> str:
        if self._ended is None or self._ended.done():
            return "dead"
        return "busy" if self.busy else "idle"

    def alive_on(self, runner: RunnerClient) -> bool:
        return self._runner is runner and runner.alive and self._ended is not None and not self._ended.done()

    # ------------------------------------------------------------ start

    async def start(self, runner: RunnerClient) -> None:
        """A fresh kernel in the sandbox the runner serves, connected and answering."""
        self.close()
        client_class = _client_class()
        self._runner = runner
        self._folder_name = uuid.uuid4().hex
        key = secrets.token_hex(32)
        self._folder_fd = _make_kernel_folder(self._kernels, self._folder_name, self._owner, key, self.kernel)
        in_container = f"{container_scripts.KERNELS_DIR}/{self._folder_name}"
        launcher = f"{container_scripts.RUN_DIR}/{ship.KERNEL_LAUNCHER}"
        argv = ["python3", "-I", launcher, self.kernel, f"{in_container}/connection.json"]
        self._run_id = uuid.uuid4().hex
        self._log = OutputCollector(KERNEL_LOG_LIMIT, lambda stream, text: None)
        self._ended = asyncio.ensure_future(runner.run(self._run_id, argv, self._log, KERNEL_LOG_LIMIT, keep=True))
        self._ended.add_done_callback(lambda future: future.cancelled() or future.exception())
        deadline = time.monotonic() + KERNEL_START_TIMEOUT_SECONDS
        while not self._sockets_bound():
            if self._ended.done():
                raise self._unavailable()
            if time.monotonic() > deadline:
                await self.kill()
                raise SandboxFailed(f"The session's kernel did not start within {KERNEL_START_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.02)
        urls = {}
        for channel, port in CHANNEL_PORTS.items():
            fd = _open_socket(self._folder_fd, f"k-{port}")
            self._socket_fds.append(fd)
            urls[channel] = f"ipc:///proc/self/fd/{fd}"
        client = client_class()
        client.cellbox_urls = urls
        client.load_connection_info({
            "transport": "ipc", "ip": "unused", "key": key, "signature_scheme": "hmac-sha256",
            **{f"{channel}_port": port for channel, port in CHANNEL_PORTS.items()},
        })
        client.start_channels(hb=False)
        self._client = client
        ready = asyncio.ensure_future(client.wait_for_ready(timeout=KERNEL_START_TIMEOUT_SECONDS))
        await asyncio.wait({ready, self._ended}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            raise self._unavailable()
        ready.result()
        # What the kernel started so far (a bash kernel's shell) is its own:
        # leftover sweeps spare it from now on, and not what blocks start.
        await runner.settle(self._run_id)
        self.started_at = time.time()
        self.blocks_run = 0
        self._offsets = {}
        if self.language == "python":
            # Tracebacks as plain text: the clients show them as text, and the
            # daemon reads the line that raised from them.
            await self._quiet("get_ipython().colors = 'NoColor'")

    async def memory(self) -> int | None:
        """The kernel's resident memory in bytes, when it is alive and the runner can tell."""
        if self._runner is None or self.state == "dead":
            return None
        try:
            return await self._runner.memory(self._run_id)
        except RunnerLost:
            return None

    def _sockets_bound(self) -> bool:
        assert self._folder_fd is not None
        for port in CHANNEL_PORTS.values():
            try:
                info = os.stat(f"k-{port}", dir_fd=self._folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if not stat.S_ISSOCK(info.st_mode):
                return False
        return True

    def _unavailable(self) -> SandboxFailed:
        said = self._log.text().strip()
        if "cellbox: no Jupyter kernel named" in said:
            found = next(line for line in said.splitlines() if "cellbox: no Jupyter kernel named" in line)
            return SessionUnavailable(
                f"{found.removeprefix('cellbox: ')}. Install the kernel in the image, or change "
                f'kernels.{self.language} in cellbox.toml (or use mode = "script").'
            )
        if "No module named" in said and "ipykernel" in said:
            return SessionUnavailable(
                "Session mode needs ipykernel in the sandbox image, and this image has none. Install it "
                "in the image (Debian: apt-get install python3-ipykernel; pip: pip install ipykernel), "
                'or use mode = "script".'
            )
        if "python3: not found" in said or "python3: No such file" in said:
            return SessionUnavailable(
                'Session mode needs Python and ipykernel in the sandbox image, and this image has no python3. '
                'Use mode = "script", or an image with python3-ipykernel.'
            )
        tail = "\n".join(said.splitlines()[-15:])
        return SandboxFailed(f"The session's kernel did not start:\n{tail}" if tail else "The session's kernel did not start")

    async def _quiet(self, code: str) -> None:
        msg_id = self._client.execute(code, silent=True, store_history=False)
        with contextlib.suppress(Exception):
            while True:
                reply = await self._client.get_shell_msg(timeout=10)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return

    # ------------------------------------------------------------ run

    async def execute(
        self, code: str, first_line: int, timeout: float, limit: int, cancelled: asyncio.Event,
        on_output: OnOutput, on_display: OnDisplay,
    ) -> SessionOutcome:
        """Run `code` in the kernel until it is idle again, its timeout, a
        cancel (KeyboardInterrupt; the kernel is killed if the block ignores
        it) or the kernel's death. `first_line` is the document's line (0-based)
        the code starts on, which its tracebacks name."""
        assert self._client is not None and self._ended is not None and self._runner is not None
        collector = OutputCollector(limit, on_output)
        displays: list[DisplayOutput] = []
        errors: list[str] = []
        msg_id = self._client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        self.busy = True
        self.blocks_run += 1
        reading = asyncio.ensure_future(
            self._read_until_idle(msg_id, first_line, collector, displays, errors, on_display)
        )
        cancel_wait = asyncio.ensure_future(cancelled.wait())

        def outcome(exit_code: int, status: Status, state_lost: bool, note: str = "", **how: Any) -> SessionOutcome:
            if note:
                collector.feed("stderr", note.encode())
            return SessionOutcome(exit_code, collector.text(), collector.truncated, status, state_lost, displays, **how)

        try:
            waiting: set[asyncio.Future[Any]] = {reading, self._ended, cancel_wait}
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if reading in done and reading.exception() is not None:
                # The channels were closed under it: the sandbox is restarting or stopping.
                log.info("session %s: reading its kernel failed: %r", self.name, reading.exception())
                return await self._died(outcome)
            if reading in done:
                await self._tidy()
                return outcome(1 if errors else 0, Status.ERROR if errors else Status.OK, False)
            if self._ended in done:
                return await self._died(outcome)
            if cancel_wait in done:
                # As Jupyter's interrupt: KeyboardInterrupt in the block; the kernel and its state stay.
                self._runner.signal(self._run_id, signal.SIGINT)
                stopping: set[asyncio.Future[Any]] = {reading, self._ended}
                done, _ = await asyncio.wait(stopping, timeout=INTERRUPT_GRACE_SECONDS)
                if reading in done:
                    await self._tidy()
                    return outcome(CANCELLED_EXIT_CODE, Status.CANCELLED, False, "\nCancelled\n")
                if self._ended in done:
                    return await self._died(outcome)
                await self.kill()
                return outcome(
                    CANCELLED_EXIT_CODE, Status.CANCELLED, True,
                    "\nCancelled: the block ignored the interrupt, so its session's kernel was killed and its "
                    "state is lost; the next block starts a new kernel\n",
                )
            await self.kill()
            return outcome(
                TIMEOUT_EXIT_CODE, Status.TIMEOUT, True,
                "\nTimeout: the session's kernel was killed and its state is lost; the next block starts a new "
                "kernel\n",
                timed_out=True,
            )
        except asyncio.CancelledError:
            await asyncio.shield(self.kill())
            raise
        finally:
            self.busy = False
            reading.cancel()
            cancel_wait.cancel()

    async def _died(self, outcome: Callable[..., SessionOutcome]) -> SessionOutcome:
        assert self._ended is not None
        end = None
        with contextlib.suppress(Exception):
            end = await timeouts.wait_for(asyncio.shield(self._ended), 5)
        await self.kill()
        if end is not None and end.oom_kills:
            return outcome(
                KILLED_EXIT_CODE, Status.OOM, True,
                "\ncellbox: the memory limit killed the session's kernel; its state is lost, and the next "
                "block starts a new kernel\n",
            )
        code = end.code if end is not None else KILLED_EXIT_CODE
        return outcome(
            code or 1, Status.ERROR, True,
            f"\ncellbox: the session's kernel exited (code {code}); its state is lost, and the next block "
            "starts a new kernel\n",
        )

    async def _read_until_idle(
        self, msg_id: str, first_line: int, collector: OutputCollector, displays: list[DisplayOutput],
        errors: list[str], on_display: OnDisplay,
    ) -> None:
        while True:
            message = await self._client.get_iopub_msg()
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "execute_input" and isinstance(content.get("execution_count"), int):
                self._offsets[content["execution_count"]] = first_line
            elif kind == "stream":
                collector.feed(content.get("name", "stdout"), str(content.get("text", "")).encode())
            elif kind in ("display_data", "execute_result"):
                data = {mime: value for mime, value in content.get("data", {}).items() if isinstance(mime, str)}
                shown = keep_display(self._outputs, f"{self.name}-{self.blocks_run}-{len(displays)}", data)
                displays.append(shown)
                on_display(shown)
                text = data.get("text/plain")
                if isinstance(text, str):
                    collector.feed("stdout", (text + "\n").encode())
            elif kind == "error":
                frames = [str(frame) for frame in content.get("traceback", [])]
                trace = in_document_lines(frames, self._offsets) or f"{content.get('ename')}: {content.get('evalue')}"
                errors.append(trace)
                collector.feed("stderr", (trace + "\n").encode())
            elif kind == "status" and content.get("execution_state") == "idle":
                return

    async def _tidy(self) -> None:
        """What the block started from the kernel goes, as a script's leftovers
        do, before its result is given: then nothing of it is left."""
        assert self._runner is not None
        with contextlib.suppress(RunnerLost):
            await self._runner.tidy()
        await self._drain_replies()

    async def _drain_replies(self) -> None:
        """The kernel's replies on the shell channel, which nothing reads (the
        block's end is its idle status), so that they do not pile up."""
        for _ in range(1000):
            try:
                await self._client.get_shell_msg(timeout=0)
            except Exception:  # queue.Empty: none left
                return

    # ------------------------------------------------------------ end

    async def kill(self) -> None:
        """Kill the kernel and all it started; the next block starts a new one."""
        if self._runner is not None and self._ended is not None and not self._ended.done():
            await self._runner.kill(self._run_id)
            with contextlib.suppress(Exception):
                await timeouts.wait_for(asyncio.shield(self._ended), 5)
        self.close()

    def close(self) -> None:
        """Let go of the kernel's sockets and folder (the kernel itself dies with its run)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop_channels()
            self._client = None
        for fd in self._socket_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._socket_fds = []
        if self._folder_fd is not None:
            os.close(self._folder_fd)
            self._folder_fd = None
        if self._folder_name:
            _remove_kernel_folder(self._kernels, self._folder_name)
            self._folder_name = ""


def _client_class() -> Any:
    try:
        from jupyter_client.asynchronous import AsyncKernelClient
    except ImportError:
        raise SessionUnavailable(
            "Session mode needs jupyter_client in the daemon's Python: pip install 'cellbox[sessions]'"
        ) from None

    class FdKernelClient(AsyncKernelClient):
        """Connects each channel through /proc/self/fd/N (see the module's doc)."""

        cellbox_urls: dict[str, str] = {}

        def _make_url(self, channel: str) -> str:
            return self.cellbox_urls[channel]

    return FdKernelClient


def _make_kernel_folder(kernels: Path, name: str, owner: tuple[int, int], key: str, kernel: str) -> int:
    """Make kernels/NAME with its connection file, give it to the kernel's user;
    a descriptor of the folder, which the daemon uses from then on."""
    parent = os.open(kernels, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
        folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)
    connection = {
        "transport": "ipc", "ip": f"{container_scripts.KERNELS_DIR}/{name}/k", "key": key,
        "signature_scheme": "hmac-sha256", "kernel_name": kernel,
        **{f"{channel}_port": port for channel, port in CHANNEL_PORTS.items()},
    }
    fd = os.open("connection.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
    try:
        os.write(fd, json.dumps(connection).encode())
        safe_files.hand_over(fd, owner)
    finally:
        os.close(fd)
    # Only now the kernel's user may write there: it binds its sockets.
    safe_files.hand_over(folder, owner)
    return folder


def _open_socket(folder: int, name: str) -> int:
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=folder)
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise SandboxFailed(f"The session's kernel folder holds something else than its socket at {name}")
    return fd


def _remove_kernel_folders(kernels: Path) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir(kernels):
            _remove_kernel_folder(kernels, name)


def _remove_kernel_folder(kernels: Path, name: str) -> None:
    # rmtree works through descriptors (it never follows a link a block put there).
    with contextlib.suppress(OSError):
        shutil.rmtree(kernels / name)


class Sessions:
    """One sandbox's sessions, as this daemon runs them: a kernel per session
    name and language (a document's Python and bash blocks share its name)."""

    def __init__(self) -> None:
        self._kernels: dict[tuple[str, str], KernelSession] = {}
        self._swept = False

    async def ready(
        self, name: str, language: str, kernel: str, runner: RunnerClient, kernels: Path, owner: tuple[int, int],
        outputs: Path, progress: Callable[[str], Any],
    ) -> KernelSession:
        """The named session's kernel for `language` up in the sandbox `runner`
        serves; started if it is not, and started anew if settings changed its kernel."""
        if not self._swept:
            # Kernel folders a daemon killed before it could clean up left
            # behind. Only the daemon that holds the sandbox's runner runs
            # kernels there, and this is it.
            self._swept = True
            await asyncio.to_thread(_remove_kernel_folders, kernels)
        session = self._kernels.get((name, language))
        if session is not None and session.kernel != kernel:
            await session.kill()
            session = None
        if session is None:
            session = self._kernels[name, language] = KernelSession(name, language, kernel, kernels, owner, outputs)
        if not session.alive_on(runner):
            shown = name if language == "python" else f"{name}, {language}"
            async with progress(f"Starting the session's kernel ({shown})"):
                try:
                    await session.start(runner)
                except BaseException:
                    await session.kill()
                    raise
        return session

    async def restart(self, name: str, runner: RunnerClient | None) -> bool:
        """Kill the named session's kernels and start new ones (when the sandbox
        has a runner); whether there was such a session."""
        found = [session for (named, _), session in self._kernels.items() if named == name]
        for session in found:
            await session.kill()
            if runner is not None and runner.alive:
                await session.start(runner)
        return bool(found)

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self._kernels))

    async def infos(self) -> list[SessionInfo]:
        return [
            SessionInfo(
                session.name, session.state, session.blocks_run, await session.memory(), session.language,
                session.kernel,
            )
            for session in self._kernels.values()
        ]

    def close_all(self) -> None:
        """The sandbox was restarted or stopped: every kernel died with its runner."""
        for session in self._kernels.values():
            session.close()
        self._kernels.clear()
