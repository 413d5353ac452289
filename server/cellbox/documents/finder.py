"""Runnable blocks found in a document's text: Markdown fences and `# %%` cells.

Pure functions, no pygls: the server hands in a document's URI, language id
and text, and gets the blocks back: each with its header line (fence or cell
marker), its language, its line range and its code.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
from markdown_it import MarkdownIt

from cellbox.languages import (
    KNOWN_LANGUAGES,
    LANGUAGE_IDS,
    SCRIPT_LANGUAGES,
    closest_language,
    normalize_language,
    runs_by_default,
)

MARKDOWN_SUFFIXES = {".md", ".markdown", ".qmd"}

# VS Code / Jupyter cell markers: "# %%", optionally a title after them.
_CELL_MARKER = re.compile(r"^#\s?%%(?:\s|$)")
_PARSER = MarkdownIt("commonmark")


@attrs.frozen
class DocumentBlock:
    language: str
    header_line: int
    """The fence or cell-marker line (for a lens above the block); the first code line when there is none."""
    start_line: int
    """First line of code, 0-based."""
    end_line: int
    """Line after the last line of code (exclusive)."""
    code: str
    outer_end_line: int | None = None
    """Line after the block's closing fence (exclusive); None when it has none (cells, selections)."""
    number: int | None = None
    """Its number among the document's runnable blocks, from 1 (what `cellbox run
    --block N` takes); None for a selection."""

    @property
    def extent_end_line(self) -> int:
        """Line after everything that belongs to the block, fences included."""
        return self.outer_end_line if self.outer_end_line is not None else max(self.end_line, self.start_line + 1)

    def contains(self, line: int) -> bool:
        return self.header_line <= line < max(self.end_line, self.start_line + 1)


def document_kind(uri: str, language_id: str | None = None) -> str | None:
    """"markdown", a script language ("python", "sh", "bash"), or None when unsupported."""
    suffix = PurePosixPath(unquote(urlparse(uri).path)).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in SCRIPT_LANGUAGES:
        return SCRIPT_LANGUAGES[suffix]
    return LANGUAGE_IDS.get(language_id or "")


def find_blocks(uri: str, text: str, language_id: str | None = None) -> list[DocumentBlock]:
    """The document's runnable blocks in order, each with its number."""
    kind = document_kind(uri, language_id)
    if kind == "markdown":
        blocks = markdown_blocks(text)
    elif kind is not None:
        blocks = script_cells(text, kind)
    else:
        blocks = []
    return [attrs.evolve(block, number=number) for number, block in enumerate(blocks, 1)]


@attrs.frozen
class MistypedFence:
    """A Markdown fence whose language cellbox does not know but looks like
    one it runs (```pyhton): not a block, and the user should hear why."""

    line: int
    """The fence's line, 0-based."""
    end_line: int
    """Line after its closing fence (exclusive)."""
    word: str
    """The language as written."""
    guess: str
    """The language it most likely means."""

    @property
    def message(self) -> str:
        return (
            f"cellbox does not know the language {self.word!r}, so this block does not run. "
            f"Did you mean {self.guess}? (cellbox runs {runs_by_default()})"
        )


def _fences(text: str) -> list[tuple[str, str, Any]]:
    """(language as written, normalised, token) of every fence with an info string."""
    fences = []
    for token in _PARSER.parse(text):
        if token.type != "fence" or token.map is None or not token.info.strip():
            continue
        word = token.info.split(maxsplit=1)[0].strip("{}").split(",", 1)[0]  # Quarto writes ```{python}
        fences.append((word, normalize_language(word), token))
    return fences


def markdown_blocks(text: str) -> list[DocumentBlock]:
    """Every fenced block whose info string starts with a known language."""
    blocks = []
    for _, language, token in _fences(text):
        if language not in KNOWN_LANGUAGES:
            continue
        fence_line = token.map[0]
        start = fence_line + 1
        end = start + token.content.count("\n")
        blocks.append(DocumentBlock(language, fence_line, start, end, token.content, token.map[1]))
    return blocks


def mistyped_fences(uri: str, text: str, language_id: str | None = None) -> list[MistypedFence]:
    """Fences of a Markdown document whose language is close to one that runs
    but not one cellbox knows. Other unknown fences (```toml, ```console) are
    prose's own and pass in silence."""
    if document_kind(uri, language_id) != "markdown":
        return []
    found = []
    for word, language, token in _fences(text):
        if language in KNOWN_LANGUAGES:
            continue
        guess = closest_language(word, runnable_only=True)
        if guess is not None:
            found.append(MistypedFence(token.map[0], token.map[1], word, guess))
    return found


def script_cells(text: str, language: str) -> list[DocumentBlock]:
    """`# %%` cells; a file without markers is one block."""
    lines = text.split("\n")
    markers = [n for n, line in enumerate(lines) if _CELL_MARKER.match(line)]
    if not markers:
        end = len(lines) - 1 if lines and lines[-1] == "" else len(lines)
        return [DocumentBlock(language, 0, 0, end, _join(lines[:end]))] if text.strip() else []
    cells = []
    if any(line.strip() for line in lines[: markers[0]]):  # code above the first marker is a cell too
        cells.append(DocumentBlock(language, 0, 0, markers[0], _join(lines[: markers[0]])))
    for index, marker in enumerate(markers):
        end = markers[index + 1] if index + 1 < len(markers) else len(lines)
        if end == len(lines) and lines[-1] == "":
            end -= 1
        code = _join(lines[marker + 1 : end])
        cells.append(DocumentBlock(language, marker, marker + 1, max(end, marker + 1), code))
    return cells


def selection_block(uri: str, text: str, start_line: int, end_line: int, language_id: str | None = None) -> DocumentBlock:
    """The selected lines (end inclusive) as a block in the document's language."""
    kind = document_kind(uri, language_id)
    language = kind if kind not in (None, "markdown") else None
    if language is None:
        # In Markdown a selection inside a fence takes the fence's language.
        around = [b for b in find_blocks(uri, text, language_id) if b.start_line <= start_line < b.end_line]
        language = around[0].language if around else "markdown"
    lines = text.split("\n")[start_line : end_line + 1]
    return DocumentBlock(language, start_line, start_line, start_line + len(lines), _join(lines))


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""
