"""Which blocks an execute request selects: given as text, or from a document
by position, range, block number or all. Pure: the caller reads the document."""

from __future__ import annotations

from pathlib import Path

from cellbox.documents.finder import DocumentBlock, MistypedFence, find_blocks, mistyped_fences, selection_block
from cellbox.errors import InvalidParams
from cellbox.project import uri_path
from cellbox.vocabulary import Command, last_line_of_range
from cellbox.wire import ExecuteParams

EXECUTE = Command.EXECUTE


def document_name(uri: str, workspace: Path) -> str:
    """A document as its user knows it: its path in the workspace
    ("docs/notes.md"), else its full path; the URI only when it names no file."""
    if not uri.startswith("file:"):
        return uri
    path = uri_path(uri)
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def check_selector(params: ExecuteParams) -> None:
    """InvalidParams unless an execute names blocks, or a uri with exactly one way to pick from it."""
    ways = [name for name in ("position", "range", "block", "all") if getattr(params, name) not in (None, False)]
    if params.blocks is not None:
        if params.uri is not None or ways:
            raise InvalidParams(
                f"Invalid {EXECUTE} arguments: give either blocks, or uri with one of position, range, block, all"
            )
        if not params.blocks:
            raise InvalidParams(f"Invalid {EXECUTE} arguments: blocks: give at least one block")
        return
    if params.uri is None:
        raise InvalidParams(f"Invalid {EXECUTE} arguments: blocks: give blocks, or uri with position, range, block or all")
    if len(ways) != 1:
        raise InvalidParams(f"Invalid {EXECUTE} arguments: with uri, give exactly one of position, range, block, all")


def select_blocks(
    params: ExecuteParams, uri: str, text: str, language_id: str | None, name: str | None = None
) -> list[DocumentBlock]:
    """The blocks of the document (`uri`, `text`) that a request which passed
    check_selector asks for; InvalidParams, in the user's words, when none fits.
    `name`: the document as the user knows it (a file name), for messages."""
    name = name or uri
    blocks = find_blocks(uri, text, language_id)
    mistyped = mistyped_fences(uri, text, language_id)
    if params.all:
        if not blocks:
            raise InvalidParams(f"{name} has no runnable block{_mistyped_note(mistyped)}")
        return blocks
    if params.block is not None:
        if not 1 <= params.block <= len(blocks):
            have = f"blocks 1 to {len(blocks)}" if blocks else "no runnable block"
            raise InvalidParams(f"{name} has {have}; got {params.block}{_mistyped_note(mistyped)}")
        return [blocks[params.block - 1]]
    if params.position is not None:
        line = params.position.line
        for block in blocks:
            if block.contains(line):
                return [block]
        for fence in mistyped:
            if fence.line <= line < fence.end_line:
                raise InvalidParams(f"line {line + 1} of {name}: {fence.message}")
        raise InvalidParams(f"line {line + 1} of {name} is not in a runnable block{_blocks_at(blocks)}")
    assert params.range is not None, "check_selector lets no request through without a way to select"
    start, end = params.range.start, params.range.end
    line_count = len(text.splitlines()) or 1
    if start.line < 0 or end.line < start.line or start.character < 0 or end.character < 0:
        raise InvalidParams(f"range: must go forward from line 1 (got lines {start.line + 1} to {end.line + 1})")
    if end.line > line_count or (end.line == line_count and end.character > 0):
        raise InvalidParams(f"range: ends at line {end.line + 1}, past the end of {name} ({line_count} lines)")
    last = last_line_of_range(start.line, end.line, end.character)
    return [selection_block(uri, text, start.line, last, language_id)]


def _blocks_at(blocks: list[DocumentBlock]) -> str:
    """" (blocks start at lines 3, 9)", 1-based, for a message."""
    if not blocks:
        return " (it has none)"
    lines = ", ".join(str(block.start_line + 1) for block in blocks[:10])
    return f" (code of its blocks starts at line{'s' if len(blocks) > 1 else ''} {lines}{', …' if len(blocks) > 10 else ''})"


def _mistyped_note(mistyped: list[MistypedFence]) -> str:
    if not mistyped:
        return ""
    first = mistyped[0]
    more = f" ({len(mistyped) - 1} more such fence{'s' if len(mistyped) > 2 else ''})" if len(mistyped) > 1 else ""
    return f". Line {first.line + 1}: {first.message}{more}"
