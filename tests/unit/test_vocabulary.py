"""The editor clients' copies of the vocabulary say what cellbox.vocabulary says.

Each client keeps one table of the server's names (it cannot import Python):
editor-clients/vscode/src/vocabulary.ts and
editor-clients/nvim/lua/cellbox/vocabulary.lua. These tests read those tables
from the source files, with no editor and no engine, and fail on any name,
value or glyph that differs, missing or extra.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from cellbox.vocabulary import GLYPHS, Command, ContainerState, Notification, Status

ROOT = Path(__file__).resolve().parents[2]
TYPESCRIPT = ROOT / "editor-clients" / "vscode" / "src" / "vocabulary.ts"
LUA = ROOT / "editor-clients" / "nvim" / "lua" / "cellbox" / "vocabulary.lua"

# `export const Name = {` or `export const NAME: Record<...> = {`, up to the `}` that starts a line.
TS_TABLE = r"^export const {name}\b[^=\n]*= \{{\n(?P<body>.*?)^\}}"
TS_ENTRY = re.compile(r"^\s*(?P<key>\w+): '(?P<value>[^'\\]*)',$")
LUA_TABLE = r"^M\.{name} = \{{\n(?P<body>.*?)^\}}"
LUA_ENTRY = re.compile(r'^\s*(?P<key>\w+) = "(?P<value>[^"\\]*)",$')


def read_table(text: str, table: str, entry: re.Pattern[str], name: str) -> dict[str, str]:
    """The key-value pairs of table `name`; every line of it must be a pair or a comment."""
    found = re.search(table.format(name=re.escape(name)), text, re.MULTILINE | re.DOTALL)
    assert found, f"no table {name}"
    pairs: dict[str, str] = {}
    for line in found["body"].splitlines():
        if not line.strip() or line.strip().startswith(("//", "--")):
            continue
        match = entry.match(line)
        assert match, f"{name}: a line that is not `key: value`: {line!r}"
        assert match["key"] not in pairs, f"{name}: {match['key']} twice"
        pairs[match["key"]] = match["value"]
    return pairs


def typescript(name: str) -> dict[str, str]:
    return read_table(TYPESCRIPT.read_text(encoding="utf-8"), TS_TABLE, TS_ENTRY, name)


def lua(name: str) -> dict[str, str]:
    return read_table(LUA.read_text(encoding="utf-8"), LUA_TABLE, LUA_ENTRY, name)


def members(names: type[enum.StrEnum]) -> dict[str, str]:
    return {member.name: member.value for member in names}


GLYPH_TABLE = {status.value: glyph for status, glyph in GLYPHS.items()}


def test_every_status_has_one_glyph() -> None:
    assert set(GLYPHS) == set(Status)
    assert all(len(glyph) == 1 for glyph in GLYPHS.values())


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("Command", members(Command)),
        ("Notification", members(Notification)),
        ("Status", members(Status)),
        ("GLYPHS", GLYPH_TABLE),
        ("ContainerState", members(ContainerState)),
    ],
)
def test_the_vscode_client_has_the_same_names(table: str, expected: dict[str, str]) -> None:
    assert typescript(table) == expected


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("commands", members(Command)),
        ("notifications", members(Notification)),
        ("statuses", members(Status)),
        ("glyphs", GLYPH_TABLE),
    ],
)
def test_the_neovim_client_has_the_same_names(table: str, expected: dict[str, str]) -> None:
    assert lua(table) == expected


def test_the_clients_name_commands_and_notifications_only_through_their_table() -> None:
    sources = [
        *(ROOT / "editor-clients" / "vscode" / "src").glob("*.ts"),
        *(ROOT / "editor-clients" / "nvim").rglob("*.lua"),
    ]
    names = [*Command, *Notification]
    repeated = [
        f"{source.relative_to(ROOT)}: {name}"
        for source in sources
        if source not in (TYPESCRIPT, LUA)
        for name in names
        if f"'{name}'" in (text := source.read_text(encoding="utf-8")) or f'"{name}"' in text
    ]
    assert repeated == []


def test_a_difference_is_caught() -> None:
    """The reader sees a changed glyph, a misspelt name and a line it cannot read."""
    text = LUA.read_text(encoding="utf-8")
    assert read_table(text.replace('not_executed = "•"', 'not_executed = "·"'), LUA_TABLE, LUA_ENTRY, "glyphs") != GLYPH_TABLE
    changed = text.replace('"cellbox/blockStarted"', '"cellbox/blockstarted"')
    assert read_table(changed, LUA_TABLE, LUA_ENTRY, "notifications") != members(Notification)
    with pytest.raises(AssertionError, match="not `key: value`"):
        read_table(text.replace('  OK = "ok",', "  OK = 'ok',"), LUA_TABLE, LUA_ENTRY, "statuses")
