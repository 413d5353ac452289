"""What the last runs left on each document: the outcome shown in a block's
lens and the diagnostics of failed blocks. Pure; anchored to each block's
code, so that editing above a block moves its marks with it, and editing the
block itself (or running it again) clears them."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from cellbox.documents.diagnostics import BlockError
from cellbox.documents.finder import DocumentBlock
from cellbox.vocabulary import GLYPHS, Status


@attrs.frozen
class Mark:
    code: str
    """The code of the block the mark belongs to."""
    start_line: int
    """Where that block's code started when the mark was made."""
    error: BlockError


def outcome_label(status: str, exit_code: int, duration_ms: float) -> str:
    """What a block's lens says after a run: its status's glyph and a few words."""
    words: dict[str, str] = {
        Status.OK: f"{duration_ms / 1000:.2f} s",
        Status.TIMEOUT: "timeout",
        Status.CANCELLED: "cancelled",
        Status.OOM: "out of memory",
        Status.OUTPUT_LIMIT: "file size limit",
        Status.NOT_EXECUTED: "saved, not run",
        Status.INTERRUPTED: "sandbox restarted or stopped",
    }
    if status not in words:
        return f"{GLYPHS[Status.ERROR]} exit {exit_code}"
    return f"{GLYPHS[Status(status)]} {words[status]}"


class DocumentResults:
    def __init__(self) -> None:
        self._outcomes: dict[tuple[str, str], str] = {}
        self._marks: dict[str, list[Mark]] = {}

    def outcome(self, uri: str, block: DocumentBlock) -> str | None:
        return self._outcomes.get((uri, block.code))

    def record(self, uri: str, block: DocumentBlock, label: str, error: BlockError | None) -> None:
        """A run of `block` ended: its lens says `label`; its old diagnostics go, `error` comes."""
        self._outcomes[(uri, block.code)] = label
        marks = [m for m in self._marks.get(uri, []) if m.code != block.code]
        if error is not None:
            marks.append(Mark(block.code, block.start_line, error))
        self._marks[uri] = marks

    def reanchor(self, uri: str, blocks: Sequence[DocumentBlock]) -> bool:
        """After an edit: keep marks whose block's code is unchanged, moved to
        where it is now; drop the others. Whether anything changed."""
        old = self._marks.get(uri, [])
        where = {block.code: block.start_line for block in blocks}
        kept = [
            Mark(m.code, where[m.code], BlockError(m.error.line + where[m.code] - m.start_line, m.error.message))
            for m in old
            if m.code in where
        ]
        self._marks[uri] = kept
        return kept != old

    def errors(self, uri: str) -> list[BlockError]:
        return [mark.error for mark in self._marks.get(uri, [])]

    def forget(self, uri: str) -> None:
        self._marks.pop(uri, None)
        for key in [key for key in self._outcomes if key[0] == uri]:
            del self._outcomes[key]
