"""Errors of a failed block, mapped back to lines of its document. Pure."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from cellbox.documents.finder import DocumentBlock
from cellbox.vocabulary import Status
from cellbox.wire import BlockResult

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)?)(?::\s?(?P<msg>.*))?$")
SHELL_TAIL_LINES = 3


@attrs.frozen
class BlockError:
    line: int
    """Line in the document, 0-based."""
    message: str


def python_error(output: str, block_file: str, block_start_line: int, block_line_count: int) -> BlockError | None:
    """The line of the block that raised, from a traceback in `output`.

    The deepest frame in the block's own file is the line the user wrote that
    raised (a function defined earlier in the block included); the last line of
    the traceback is the exception. None when the traceback never passes
    through the block's file, or points outside the block.
    """
    lines = output.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return None
    traceback = lines[starts[-1] :]
    frame_line = None
    for line in traceback:
        match = _FRAME.match(line)
        if match and _same_file(match.group("file"), block_file):
            frame_line = int(match.group("line"))
    if frame_line is None or not 1 <= frame_line <= block_line_count:
        return None
    message = next((line for line in reversed(traceback) if line and not line.startswith(" ")), "error")
    return BlockError(block_start_line + frame_line - 1, message.strip())


_CELL_FRAME = re.compile(r"^Cell In ?\[\d+\], line (?P<line>\d+)")


def session_error(output: str, block_start_line: int, block_end_line: int) -> BlockError | None:
    """The line of the block that raised, from a session kernel's traceback,
    whose cells name the document's own lines ("Cell In [3], line 12"): the
    deepest frame inside the block; the last line is the exception."""
    lines = output.splitlines()
    frame_line = None
    for line in lines:
        match = _CELL_FRAME.match(line)
        if match and block_start_line < int(match.group("line")) <= block_end_line:
            frame_line = int(match.group("line")) - 1
    if frame_line is None:
        return None
    message = next(
        (line for line in reversed(lines) if line.strip() and not line.startswith((" ", "cellbox:"))), "error"
    )
    return BlockError(frame_line, message.strip())


def shell_error(stderr: str, exit_code: int, block_start_line: int) -> BlockError:
    """A failed shell block: its first line, with the last lines of stderr."""
    tail = [line for line in stderr.splitlines() if line.strip()][-SHELL_TAIL_LINES:]
    message = "\n".join(tail) if tail else f"exited with code {exit_code}"
    return BlockError(block_start_line, message)


def _same_file(traceback_file: str, block_file: str) -> bool:
    # The block ran as a path relative to /workspace; a traceback may show it
    # relative or absolute.
    return traceback_file == block_file or traceback_file.endswith("/" + block_file)


def block_error(block: DocumentBlock, result: BlockResult, stderr: str, workspace: Path) -> BlockError | None:
    """The diagnostic to show for a document's block after it ran: only a
    failure (not a timeout, a cancel or a refusal) whose file was saved."""
    if result.status != Status.ERROR:
        return None
    if result.session is not None and block.language == "python":
        return session_error(result.output, block.start_line, block.end_line)
    if result.code_file is None:
        return None
    if block.language != "python":
        return shell_error(stderr, result.exit_code, block.start_line)
    # A named file runs by its path in the workspace; others from the
    # daemon's folder, by their own name. The output as the block wrote it
    # names that file: the result's own names the document instead.
    code_file = Path(result.code_file)
    shown = str(code_file.relative_to(workspace)) if workspace in code_file.parents else code_file.name
    output = result.original_output if result.original_output is not None else result.output
    return python_error(output, shown, block.start_line, block.end_line - block.start_line)
