"""Collects one block's output as it streams in from the container."""

from __future__ import annotations

import codecs
from collections.abc import Callable


class OutputCollector:
    """Decodes stdout and stderr incrementally (a UTF-8 character may be split
    across chunks) and keeps them interleaved in arrival order, as a terminal
    would show them. Invalid bytes become U+FFFD instead of failing.

    At most `limit` bytes are kept; past that the block runs on, its output is
    dropped (so the daemon's memory stays bounded whatever is printed), and
    the text ends with a marker saying so.
    """

    def __init__(self, limit: int, on_text: Callable[[str, str], None] | None = None) -> None:
        self.limit = limit
        self._on_text = on_text
        """Told (stream, text) for each piece of text kept, as it is kept."""
        self.truncated = False
        self._room = limit
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        self._parts: list[str] = []

    def feed(self, stream: str, data: bytes) -> str:
        """Add a chunk; return the text it completed (may be empty)."""
        if len(data) > self._room:
            data = data[: self._room]
            self.cut()
        self._room -= len(data)
        text = self._decoders[stream].decode(data)
        if text:
            self._parts.append(text)
            if self._on_text is not None:
                self._on_text(stream, text)
        return text

    def cut(self) -> None:
        """Output went past the limit (said by whoever counted it first)."""
        self.truncated = True

    def text(self) -> str:
        """Everything kept, with any dangling partial character flushed."""
        for decoder in self._decoders.values():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._parts.append(tail)
        marker = f"\n[cellbox: output cut at {_size(self.limit)}; the block ran on]\n" if self.truncated else ""
        return "".join(self._parts) + marker


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"
