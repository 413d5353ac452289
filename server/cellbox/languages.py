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

DEFAULT_KERNELS: Mapping[str, str] = {"python": "python3"}
"""Per language, the Jupyter kernel (a kernelspec's name in the image) its
blocks run in, in session mode. Other languages are a `kernels` entry."""
KERNEL_NAME = r"[A-Za-z0-9._-]+"
"""Jupyter's rule for a kernelspec's name (it is a folder's name)."""


def normalize_language(language: str) -> str:
    """Lower-case the language and apply the seed's aliases (py, js)."""
    lowered = language.strip().lower()
    return LANGUAGE_ALIASES.get(lowered, lowered)



def closest_language(word: str, runnable_only: bool = False) -> str | None:
    """The known language (or alias) `word` is most likely a misspelling of,
    e.g. "python" for "pyhton"; None when none is close. `runnable_only`: only
    languages that run by default, so that a Markdown fence of another kind
    (```toml, ```json) is not taken for a typo of one that is only saved."""
    import difflib

    lowered = word.strip().lower()
    names = [name for name, runs in DEFAULT_EXECUTION_POLICIES.items() if runs or not runnable_only]
    names += [alias for alias, name in LANGUAGE_ALIASES.items() if name in names]
    if not lowered or lowered in names:
        return None
    found = difflib.get_close_matches(lowered, names, n=1, cutoff=0.75)
    return normalize_language(found[0]) if found else None


def runs_by_default() -> str:
    """"bash, powershell, ps1, ..." for messages."""
    return ", ".join(sorted(name for name, runs in DEFAULT_EXECUTION_POLICIES.items() if runs))


def unknown_language_message(language: str) -> str:
    """Why a block in `language` cannot run at all, and what to write instead."""
    guess = closest_language(language)
    hint = f"did you mean {guess}? " if guess else ""
    saved = sorted(name for name, runs in DEFAULT_EXECUTION_POLICIES.items() if not runs)
    return (
        f"Unsupported language {language}: {hint}cellbox runs {runs_by_default()} "
        f"(and saves {', '.join(saved)} blocks without running them, unless [execution_policies] "
        f"in cellbox.toml says otherwise). A Jupyter kernel in the image can run it: "
        f'[kernels] {language} = "KERNEL NAME" in cellbox.toml.'
    )


def saved_only_message(language: str, has_interpreter: bool = True) -> str:
    """Why a block of a known language was only saved, and how to make it run."""
    if not has_interpreter:
        return f"{language} blocks are only saved: cellbox has nothing that runs {language}."
    return (
        f"{language} blocks are only saved, not run: to run them, set {language} = true "
        "under [execution_policies] in cellbox.toml."
    )
