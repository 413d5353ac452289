"""The rules for one code block, before anything runs: pure functions, no I/O.

Parity with the seed executor (autogen's DockerCommandLineCodeExecutor) where it
was right: the same languages, aliases, execution policies, `# filename:`
comments and quieted `pip install` lines. Where it was wrong, fixed: an
ordinary first comment such as `# compute fib` is not a file name, and blocks
the user did not name are saved in the daemon's own folder (out of the
sandbox's reach) instead of the workspace root. A named file may not be in the
repository's metadata (.git, .hg, .svn), which is read-only to blocks.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from cellbox.languages import KNOWN_LANGUAGES, normalize_language, saved_only_message, unknown_language_message

# The interpreter each language runs with inside the container.
_INTERPRETERS = {
    "python": "python",
    "bash": "bash",
    "sh": "sh",
    "shell": "sh",
    "pwsh": "pwsh",
    "powershell": "pwsh",
    "ps1": "pwsh",
    "javascript": "node",
}

# File extensions for blocks saved under a generated name. The seed used the
# language itself (".python"); real extensions make tracebacks and editors happy.
_EXTENSIONS = {
    "python": "py",
    "bash": "sh",
    "sh": "sh",
    "shell": "sh",
    "pwsh": "ps1",
    "powershell": "ps1",
    "ps1": "ps1",
    "javascript": "js",
    "html": "html",
    "css": "css",
}

VCS_FOLDERS = (".git", ".hg", ".svn")
"""Version control metadata, which a block may not write: state.py mounts it
read-only (a block that writes .git/config picks the command the owner's next
`git status` runs), and a `# filename:` under it is refused."""

_SHELLS = frozenset({"bash", "shell", "sh", "pwsh", "powershell", "ps1"})

# First-line comments that may carry a file name, in the seed's four forms.
_FILENAME_COMMENTS = [
    re.compile(r"^<!--\s*(?P<tag>filename:)?\s*(?P<name>.+?)\s*-->$"),
    re.compile(r"^/\*\s*(?P<tag>filename:)?\s*(?P<name>.+?)\s*\*/$"),
    re.compile(r"^//\s*(?P<tag>filename:)?\s*(?P<name>.+?)$"),
    re.compile(r"^#\s*(?P<tag>filename:)?\s*(?P<name>.+?)$"),
]
# Without the `filename:` tag, a comment names a file only when it looks like
# one: a single word of path characters ending in an extension that starts with
# a letter ("test.py", "src/app.js"), never a sentence ("compute fib").
_LOOKS_LIKE_FILE = re.compile(r"^[\w./-]*\w\.[A-Za-z][A-Za-z0-9]*$")


class FilenameOutsideWorkspace(ValueError):
    """A `# filename:` comment names a path outside the workspace."""


def _runs(language: str, policies: Mapping[str, bool]) -> bool:
    """Whether the policy says run, and something can: html and css have no
    interpreter, so a policy of true for them still only saves the block."""
    return policies.get(language, False) and language in _INTERPRETERS


def interpreter_for(language: str) -> str:
    return _INTERPRETERS[language]


def declared_filename(code: str) -> str | None:
    """The file name the block's first line asks for, or None.

    `# filename: a b.txt` is honoured whatever the name; a bare `# NAME` only
    when NAME looks like a file name.
    """
    first_line = code.split("\n", 1)[0].strip()
    for pattern in _FILENAME_COMMENTS:
        match = pattern.match(first_line)
        if match is None:
            continue
        name = match.group("name").strip()
        if match.group("tag") or _LOOKS_LIKE_FILE.match(name):
            return name
        return None
    return None


def relative_in_workspace(name: str, workspace: Path) -> str:
    """`name` as a clean path relative to `workspace`, by its words alone.

    Raises FilenameOutsideWorkspace for `../x`, `/etc/passwd` or the workspace
    itself. Symlinks are not looked at here (no I/O): the file is written by
    safe_files, which refuses a path that a link sends out of the workspace.
    """
    root = str(workspace)
    if posixpath.isabs(name):
        clean = posixpath.normpath(name)
        if not clean.startswith(root.rstrip("/") + "/"):
            raise FilenameOutsideWorkspace(name)
        name = clean[len(root.rstrip("/")) + 1:]
    clean = posixpath.normpath(name)
    if clean in (".", "") or clean == ".." or clean.startswith("../"):
        raise FilenameOutsideWorkspace(name)
    return clean


def generated_filename(code: str, language: str) -> str:
    """The name a block the user did not name is saved under, in the daemon's blocks folder."""
    digest = hashlib.md5(code.encode("utf-8", "surrogatepass")).hexdigest()
    return f"tmp_code_{digest}.{_EXTENSIONS.get(language, language)}"


def silence_pip(code: str, language: str) -> str:
    """Add `-qqq` to `pip install` lines, as the seed does, so output stays short."""
    if language == "python":
        pattern = re.compile(r"^! ?pip install")
    elif language in _SHELLS:
        pattern = re.compile(r"^pip install")
    else:
        return code
    lines = code.split("\n")
    for index, line in enumerate(lines):
        match = pattern.search(line)
        if match is not None and "-qqq" not in line:
            lines[index] = line.replace(match.group(0), match.group(0) + " -qqq", 1)
    return "\n".join(lines)


@attrs.frozen
class PreparedBlock:
    """A block checked against the rules: where to save it and whether to run it."""

    language: str
    code: str
    relative_path: str | None
    """Path relative to the workspace (or, when `generated`, to the daemon's
    blocks folder), or None when the block is refused."""
    runs: bool
    refusal: str | None = None
    """Output to report instead of running, e.g. "Unsupported language ruby"."""
    generated: bool = False
    """The user did not name the file: it goes to the daemon's blocks folder."""

    @property
    def saved_note(self) -> str:
        """Why a block that was only saved did not run, for its output."""
        return saved_only_message(self.language, self.language in _INTERPRETERS) + "\n"


def prepare_block(
    language: str, code: str, workspace: Path, policies: Mapping[str, bool]
) -> PreparedBlock:
    """Apply aliases, policies and the filename rule to one block."""
    lang = normalize_language(language)
    if lang not in KNOWN_LANGUAGES:
        return PreparedBlock(lang, code, None, False, unknown_language_message(lang) + "\n")
    code = silence_pip(code, lang)
    name = declared_filename(code)
    if name is None:
        return PreparedBlock(lang, code, generated_filename(code, lang), _runs(lang, policies), generated=True)
    if "\0" in name:
        return PreparedBlock(lang, code, None, False, "Filename is not valid: it contains a NUL byte")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return PreparedBlock(lang, code, None, False, "Filename is not valid: it is not UTF-8 text")
    try:
        relative = relative_in_workspace(name, workspace)
    except FilenameOutsideWorkspace:
        return PreparedBlock(lang, code, None, False, "Filename is not in the workspace")
    if len(relative.encode()) >= 4096 or any(len(part.encode()) > 255 for part in relative.split("/")):
        return PreparedBlock(lang, code, None, False, "Filename is not valid: it is longer than a path can be")
    if relative.split("/", 1)[0] in VCS_FOLDERS:
        top = relative.split("/", 1)[0]
        return PreparedBlock(
            lang, code, None, False,
            f"Filename is not allowed: {top}/ holds the repository's metadata, which blocks may not write",
        )
    return PreparedBlock(lang, code, relative, _runs(lang, policies))
