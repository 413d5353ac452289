"""Where a block's output names a place in the block's own file (a line of
a Python traceback, a warning, a shell's error), it names the place in what
the user wrote instead: the document and the document's line, as Jupyter
says `Cell In[3], line 8`. The file named without a line (a block printing
its own `__file__`) is left as it is: that is no place in the document.

    File "/cellbox/blocks/tmp_code_5d41….py", line 3, in <module>
    File "notes.md", line 27, in <module>

A block given as text is called `<block N>` (as Python calls stdin `<stdin>`)
and keeps its own line numbers. Pure text work; the run streams through
PlaceRewriter, which holds back only the end of a line that may still become
a reference to the file, so streamed output and the result say the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import attrs

_BOUNDARY = r"(?<![\w./-])"
"""A file's name starts where no path character comes before it."""

_LINE_FORMS = (
    r'", line ',  # Python: File "/cellbox/blocks/x.py", line 3
    r": line ",  # bash: /cellbox/blocks/x.sh: line 3: foo: command not found
    r": (?=\d+:)",  # dash: /cellbox/blocks/x.sh: 3: foo: not found
    r":(?=\d)",  # warnings, node, compilers: /cellbox/blocks/x.py:3: UserWarning
)


@attrs.frozen
class BlockPlaces:
    """How one block's file is named in its output, and what to say instead."""

    spellings: tuple[str, ...]
    """The block's file as a program in the sandbox may name it: by the path it
    ran by, and absolute (Python makes a script's path absolute)."""
    name: str
    """What to call it: the document's path (relative to the workspace), or `<block N>`."""
    line_offset: int = 0
    """Added to a line number of the block's file: the document line (0-based)
    where the block's code starts; 0 for a block given as text."""

    def rewrite(self, text: str) -> tuple[str, bool]:
        """`text` with the block's file named as the user knows it; whether anything changed."""
        if not any(spelling in text for spelling in self.spellings):
            # Most output never names the block's file: no pattern to build
            # (each block's file has a name of its own, so a cache would miss).
            return text, False
        changed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal changed
            changed = True
            return f"{self.name}{match.group('form')}{int(match.group('line')) + self.line_offset}"

        rewritten = _pattern(self.spellings).sub(replace, text)
        return rewritten, changed


@functools.lru_cache(maxsize=64)
def _pattern(spellings: tuple[str, ...]) -> re.Pattern[str]:
    paths = "|".join(re.escape(s) for s in sorted(set(spellings), key=len, reverse=True))
    forms = "|".join(_LINE_FORMS)
    return re.compile(f"{_BOUNDARY}(?P<path>{paths})(?P<form>{forms})(?P<line>\\d+)(?!\\d)")


_LINE_END = re.compile(r"[\r\n]")


class PlaceRewriter:
    """Rewrites a block's output as it streams, stream by stream: whole
    lines at once; of the line still being written, everything before the
    point where a reference to the block's file may be starting. Told each
    piece of text the collector keeps (`feed`), it tells `on_text` the
    rewritten pieces."""

    def __init__(self, places: BlockPlaces, on_text: Callable[[str, str], None]) -> None:
        self.places = places
        self._on_text = on_text
        self._pending: dict[str, str] = {}
        self._parts: list[str] = []
        self._fed = 0
        """Characters of raw text fed, to find what the collector added after them."""
        self.changed = False

    def feed(self, stream: str, text: str) -> None:
        self._fed += len(text)
        buffer = self._pending.pop(stream, "") + text
        ends = [m.end() for m in _LINE_END.finditer(buffer)]
        cut = ends[-1] if ends else 0
        cut += _safe_prefix(buffer[cut:], self.places.spellings)
        if cut < len(buffer):
            self._pending[stream] = buffer[cut:]
        self._emit(stream, buffer[:cut])

    def finish(self, collected: str) -> tuple[str, str | None]:
        """The block ended: send what was held back. The whole output
        rewritten, and the original when it differs (else None). `collected`
        is the collector's text: what was fed, and what it added at the end
        (a marker that output was cut, a last partial character)."""
        for stream in list(self._pending):
            self._emit(stream, self._pending.pop(stream))
        rewritten = "".join(self._parts) + collected[self._fed :]
        return rewritten, collected if self.changed else None

    def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        text, changed = self.places.rewrite(text)
        self.changed = self.changed or changed
        self._parts.append(text)
        self._on_text(stream, text)


def _safe_prefix(partial: str, spellings: Sequence[str]) -> int:
    """How much of an unfinished line can go now: all of it but where one of
    the file's spellings starts in it, or its end may be the start of one.
    A spelling found whole is held too: a line number may follow. The
    character before is held with it, to tell whether a name starts there."""
    safe = len(partial)
    for spelling in spellings:
        found = partial.find(spelling)
        if found != -1:
            safe = min(safe, found)
        for size in range(min(len(spelling) - 1, len(partial)), 0, -1):
            if partial.endswith(spelling[:size]):
                safe = min(safe, len(partial) - size)
                break
    return safe if safe == len(partial) else max(0, safe - 1)
