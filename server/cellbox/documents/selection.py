"""Which blocks an execute request selects: given as text, or from a document
by position, range, block number or all. Pure: the caller reads the document."""

from __future__ import annotations

from cellbox.documents.finder import DocumentBlock, find_blocks, selection_block
from cellbox.errors import InvalidParams
from cellbox.vocabulary import Command, last_line_of_range
from cellbox.wire import ExecuteParams

EXECUTE = Command.EXECUTE


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


def select_blocks(params: ExecuteParams, uri: str, text: str, language_id: str | None) -> list[DocumentBlock]:
    """The blocks of the document (`uri`, `text`) that a request which passed
    check_selector asks for; InvalidParams, in the user's words, when none fits."""
    blocks = find_blocks(uri, text, language_id)
    if params.all:
        if not blocks:
            raise InvalidParams(f"uri: {params.uri} has no runnable block")
        return blocks
    if params.block is not None:
        if not 1 <= params.block <= len(blocks):
            have = f"blocks 1 to {len(blocks)}" if blocks else "no runnable block"
            raise InvalidParams(f"block: {params.uri} has {have}; got {params.block}")
        return [blocks[params.block - 1]]
    if params.position is not None:
        line = params.position.line
        for block in blocks:
            if block.contains(line):
                return [block]
        raise InvalidParams(f"position: line {line + 1} of {params.uri} is not in a runnable block")
    assert params.range is not None, "check_selector lets no request through without a way to select"
    start, end = params.range.start, params.range.end
    line_count = len(text.splitlines()) or 1
    if start.line < 0 or end.line < start.line or start.character < 0 or end.character < 0:
        raise InvalidParams(f"range: must go forward from line 1 (got lines {start.line + 1} to {end.line + 1})")
    if end.line > line_count or (end.line == line_count and end.character > 0):
        raise InvalidParams(f"range: ends at line {end.line + 1}, past the end of {params.uri} ({line_count} lines)")
    last = last_line_of_range(start.line, end.line, end.character)
    return [selection_block(uri, text, start.line, last, language_id)]
