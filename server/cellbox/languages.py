"""Which language a file runs as, by its name or by the editor's language id.

Apart from documents.py so that `cellbox exec FILE` can ask without loading
the Markdown parser."""

SCRIPT_LANGUAGES = {".py": "python", ".sh": "sh", ".bash": "bash"}
"""Script files, whose `# %%` cells (or whole text) run in this language."""
LANGUAGE_IDS = {"markdown": "markdown", "quarto": "markdown", "python": "python", "shellscript": "sh"}
"""Editors' languageId of an open document, for files whose name does not tell."""
