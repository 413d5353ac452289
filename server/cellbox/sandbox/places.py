"""Where a block's output says it ran: the document and its lines when the
block comes from one, else its place in the request (tracebacks.py rewrites
the output with it)."""

from __future__ import annotations

from pathlib import Path

from cellbox.container import scripts as container_scripts
from cellbox.sandbox.request import BlockToRun
from cellbox.sandbox.tracebacks import BlockPlaces


def block_places(workspace: Path, index: int, block: BlockToRun, relative_path: str, generated: bool) -> BlockPlaces:
    """How the block's output names its file: as the document and its
    lines, when it comes from one; else as `<block N>`, its place in the
    request. A file the user named for a block given as text is a real
    file with the block's lines: its name stays."""
    if generated:
        spellings: tuple[str, ...] = (f"{container_scripts.BLOCKS_DIR}/{relative_path}",)
    else:
        spellings = (f"{container_scripts.WORKSPACE_DIR}/{relative_path}", relative_path)
    if block.document is None or block.range is None:
        return BlockPlaces(spellings if generated else (), f"<block {index + 1}>")
    document = block.document
    shown = str(document.relative_to(workspace)) if workspace in document.parents else str(document)
    return BlockPlaces(spellings, shown, line_offset=block.range.start.line)
