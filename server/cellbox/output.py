"""Collects one block's output as it streams in from the container."""

from __future__ import annotations

import codecs


class OutputCollector:
    """Decodes stdout and stderr incrementally (a UTF-8 character may be split
    across chunks) and keeps them interleaved in arrival order, as a terminal
    would show them. Invalid bytes become U+FFFD instead of failing."""

    def __init__(self) -> None:
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        self._parts: list[str] = []

    def feed(self, stream: str, data: bytes) -> str:
        """Add a chunk; return the text it completed (may be empty)."""
        text = self._decoders[stream].decode(data)
        if text:
            self._parts.append(text)
        return text

    def text(self) -> str:
        """Everything so far, with any dangling partial character flushed."""
        for decoder in self._decoders.values():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._parts.append(tail)
        return "".join(self._parts)
