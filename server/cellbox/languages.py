"""The languages cellbox knows: their names and aliases, which run by default,
and which language a file runs as, by its name or by the editor's language id.

Light (no Markdown parser, no docker), so that `cellbox exec FILE` and the
settings can ask.
"""

from __future__ import annotations

from collections.abc import Mapping

SCRIPT_LANGUAGES = {".py": "python", ".sh": "sh", ".bash": "bash"}
"""Script files, whose `# %%` cells (or whole text) run in this language."""
LANGUAGE_IDS = {"markdown": "markdown", "quarto": "markdown", "python": "python", "shellscript": "sh"}
"""Editors' languageId of an open document, for files whose name does not tell."""

LANGUAGE_ALIASES = {"py": "python", "js": "javascript"}

# The seed's DEFAULT_EXECUTION_POLICY: True runs the block, False only saves it.
DEFAULT_EXECUTION_POLICIES: Mapping[str, bool] = {
    "bash": True,
    "shell": True,
    "sh": True,
    "pwsh": True,
    "powershell": True,
    "ps1": True,
    "python": True,
    "javascript": False,
    "html": False,
    "css": False,
}
KNOWN_LANGUAGES = frozenset(DEFAULT_EXECUTION_POLICIES)


def normalize_language(language: str) -> str:
    """Lower-case the language and apply the seed's aliases (py, js)."""
    lowered = language.strip().lower()
    return LANGUAGE_ALIASES.get(lowered, lowered)


