"""The words cellbox's server, its command line and its editor clients share,
defined once: the commands and notifications of the protocol, why a block
ended (its status) and the one glyph that shows it, the sandbox states cellbox
itself reports, the exit codes it gives a meaning, and the labels it puts on
its containers.

The string families are `StrEnum`s: each member is the very string sent on
the wire (`Status.OK == "ok"`, and JSON writes it as "ok"). The exit codes and
labels are plain constants.

The two editor clients cannot import this, so each keeps one table of the same
names: editor-clients/vscode/src/vocabulary.ts and
editor-clients/nvim/lua/cellbox/vocabulary.lua. tests/unit/test_vocabulary.py
fails when they say anything else.

Standard library only and cheap to import (`enum` and `signal` are loaded
anyway): `cellbox exec` in a git hook pays for every import.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from typing import Any, Final


class Command(enum.StrEnum):
    """The server's commands, sent with ``workspace/executeCommand`` and exactly one argument object."""

    EXECUTE = "cellbox.execute"
    CANCEL = "cellbox.cancel"
    RESTART = "cellbox.restart"
    STOP = "cellbox.stop"
    STATUS = "cellbox.status"
    TRUST = "cellbox.trust"


class Notification(enum.StrEnum):
    """What the server sends during a run besides standard LSP."""

    BLOCK_STARTED = "cellbox/blockStarted"
    """A block begins; sent before any of its output."""
    OUTPUT = "cellbox/output"
    """A piece of a running block's output."""
    DISPLAY = "cellbox/display"
    """A rich output of a running block (a plot, a table): a MIME bundle."""


class Status(enum.StrEnum):
    """Why a block ended: the ``status`` of a block result (and of the run, the last block's)."""

    OK = "ok"
    """It exited with 0."""
    ERROR = "error"
    """It exited with another code."""
    TIMEOUT = "timeout"
    """It was killed at its timeout."""
    CANCELLED = "cancelled"
    """``cellbox.cancel`` stopped it, or it never started."""
    OOM = "oom"
    """The memory limit killed it."""
    OUTPUT_LIMIT = "output_limit"
    """The file size limit ended it."""
    NOT_EXECUTED = "not_executed"
    """It was only saved (a language that does not run), or refused."""
    INTERRUPTED = "interrupted"
    """The sandbox was restarted or stopped (``cellbox.restart``, ``cellbox.stop``)
    while it ran, which killed it; its output ends with a line saying which."""

    @property
    def glyph(self) -> str:
        return GLYPHS[self]


GLYPHS: Final[Mapping[Status, str]] = {
    Status.OK: "✓",
    Status.ERROR: "✗",
    Status.TIMEOUT: "⏱",
    Status.CANCELLED: "⊘",
    Status.OOM: "✗",
    Status.OUTPUT_LIMIT: "✗",
    Status.NOT_EXECUTED: "•",
    Status.INTERRUPTED: "↻",
}
"""The one mark each status is drawn with: in lenses, on a terminal, in both editors."""


class ContainerState(enum.StrEnum):
    """The sandbox states cellbox itself reports (``state`` of ``cellbox.restart``,
    ``cellbox.stop`` and ``cellbox.status``). ``cellbox.status`` otherwise passes
    on the engine's own word for the container (``exited``, ``created``, ...)."""

    RUNNING = "running"
    """The container runs; also the engine's word for it."""
    STOPPED = "stopped"
    """After ``cellbox.stop``."""
    ABSENT = "absent"
    """No container yet (or no more)."""
    FOREIGN = "foreign"
    """A container of the sandbox's name that is not labelled as this workspace's: never touched."""


TIMEOUT_EXIT_CODE: Final = 124
"""A block killed at its timeout (as coreutils' `timeout` reports it)."""
CANCELLED_EXIT_CODE: Final = 130
"""Interrupted on the user's request, as a shell reports Ctrl-C: a cancelled
block, and `cellbox run` or `cellbox exec` after Ctrl-C."""
KILLED_EXIT_CODE: Final = 128 + signal.SIGKILL
"""137: killed by SIGKILL, by the memory limit or because the runner went away mid-run."""
OUTPUT_LIMIT_EXIT_CODE: Final = 128 + signal.SIGXFSZ
"""153 on Linux: killed by SIGXFSZ, when a block's files grew past the file size limit."""

MIN_TIMEOUT_SECONDS: Final = 1
"""The shortest timeout a block may be given, from any source (a request, a
setting, the command line): less would kill most blocks at start-up."""

LABEL_WORKSPACE: Final = "org.cellbox.workspace"
"""On every sandbox container: the workspace it belongs to. The daemon touches
no container that does not carry its workspace's."""
LABEL_SPEC: Final = "org.cellbox.spec"
"""On every sandbox container: a fingerprint of what it was made with, to tell when to replace it."""


def last_line_of_range(start_line: int, end_line: int, end_character: int) -> int:
    """The last line (0-based) an LSP range covers. Its end is exclusive: a
    range that ends at the start of a later line does not take that line
    (a selection of whole lines, a block's range). The clients follow the same rule."""
    return end_line - 1 if end_character == 0 and end_line > start_line else end_line


def document_run(
    uri: str, block: int | None = None, line: int | None = None, timeout: float | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """cellbox.execute's argument for running a document: its Nth block
    (from 1), the block holding a line (from 1), or every block in order."""
    argument: dict[str, Any] = {"uri": uri}
    if block is not None:
        argument["block"] = block
    elif line is not None:
        argument["position"] = {"line": line - 1, "character": 0}
    else:
        argument["all"] = True
    if timeout is not None:
        argument["timeout"] = timeout
    if session is not None:
        argument["session"] = session
    return argument
