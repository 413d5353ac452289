"""Unit tests for cellbox.sandbox.prepare (and cellbox.languages): the pure rules applied to one code block."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cellbox.languages import DEFAULT_EXECUTION_POLICIES, normalize_language
from cellbox.sandbox.prepare import (
    FilenameOutsideWorkspace,
    declared_filename,
    generated_filename,
    prepare_block,
    relative_in_workspace,
    silence_pip,
)

# ------------------------------------------------------------ normalize_language


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("py", "python"),
        ("PY", "python"),
        ("Py", "python"),
        ("js", "javascript"),
        ("JS", "javascript"),
        ("Python", "python"),
        ("BASH", "bash"),
        ("ruby", "ruby"),
    ],
)
def test_normalize_language(raw: str, expected: str) -> None:
    assert normalize_language(raw) == expected


# ------------------------------------------------------------ declared_filename


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("# filename: a.py\nprint(1)", "a.py"),
        ("// filename: app.js\nconsole.log(1)", "app.js"),
        ("/* filename: style.css */\nbody {}", "style.css"),
        ("<!-- filename: index.html -->\n<p>hi</p>", "index.html"),
        ("# test.py\nprint(1)", "test.py"),
        ("# src/app.py\nprint(1)", "src/app.py"),
        # With the explicit tag any name is honoured, spaces included.
        ("# filename: my file.txt\n", "my file.txt"),
    ],
)
def test_declared_filename_forms(code: str, expected: str) -> None:
    assert declared_filename(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        "# compute fib\nprint(1)",
        "# e.g.\nprint(1)",
        "# v1.2\nprint(1)",
        "// just a comment\nconsole.log(1)",
        "print(1)",
        "",
    ],
)
def test_declared_filename_ordinary_comment_is_not_a_name(code: str) -> None:
    assert declared_filename(code) is None


def test_declared_filename_only_first_line_counts() -> None:
    assert declared_filename("print(1)\n# filename: late.py\n") is None
    assert declared_filename("import os\n# other.py") is None


# --------------------------------------------------------- relative_in_workspace
# By the name's words alone: a symlink that leads out is refused when the file
# is written (tests/unit/test_safe_files.py, tests/e2e/test_hostile_workspace.py).


def test_relative_inside(tmp_path: Path) -> None:
    assert relative_in_workspace("sub/a.py", tmp_path) == "sub/a.py"
    assert relative_in_workspace("sub/../b.py", tmp_path) == "b.py"


def test_absolute_inside(tmp_path: Path) -> None:
    assert relative_in_workspace(str(tmp_path / "b.py"), tmp_path) == "b.py"


@pytest.mark.parametrize("name", ["../x", "sub/../../x", "/etc/passwd", ".", "sub/.."])
def test_outside_raises(tmp_path: Path, name: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(FilenameOutsideWorkspace):
        relative_in_workspace(name, workspace)


def test_absolute_sibling_outside_raises(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(FilenameOutsideWorkspace):
        relative_in_workspace(str(tmp_path / "ws-other" / "a.py"), workspace)


@pytest.mark.parametrize("name", [".git/config", ".git/hooks/pre-commit", "./.hg/hgrc", ".svn/x", "a/../.git/config"])
def test_repository_metadata_is_refused(tmp_path: Path, name: str) -> None:
    block = prepare_block("python", f"# filename: {name}\nprint(1)", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert (block.relative_path, block.runs) == (None, False)
    assert "repository's metadata" in (block.refusal or "")


# ------------------------------------------------------------ generated_filename


def test_generated_filename_python() -> None:
    code = "print('hi')\n"
    digest = hashlib.md5(code.encode()).hexdigest()
    assert generated_filename(code, "python") == f"tmp_code_{digest}.py"


def test_generated_filename_bash() -> None:
    code = "echo hi\n"
    digest = hashlib.md5(code.encode()).hexdigest()
    assert generated_filename(code, "bash") == f"tmp_code_{digest}.sh"


def test_generated_filename_depends_on_code() -> None:
    assert generated_filename("a", "python") != generated_filename("b", "python")
    assert generated_filename("a", "python") == generated_filename("a", "python")


# ------------------------------------------------------------------ silence_pip


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("!pip install numpy", "!pip install -qqq numpy"),
        ("! pip install numpy", "! pip install -qqq numpy"),
        # Not valid Python, so the seed leaves it alone and so do we.
        ("pip install numpy", "pip install numpy"),
    ],
)
def test_silence_pip_python(code: str, expected: str) -> None:
    assert silence_pip(code, "python") == expected


@pytest.mark.parametrize("language", ["bash", "sh", "shell"])
def test_silence_pip_shell(language: str) -> None:
    code = "echo start\npip install requests\necho done"
    assert silence_pip(code, language) == "echo start\npip install -qqq requests\necho done"


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("!pip install -qqq numpy", "python"),
        ("pip install -qqq requests", "bash"),
    ],
)
def test_silence_pip_already_quiet_unchanged(code: str, language: str) -> None:
    assert silence_pip(code, language) == code


@pytest.mark.parametrize("language", ["javascript", "html", "css"])
def test_silence_pip_other_languages_unchanged(language: str) -> None:
    code = "pip install requests\n!pip install numpy"
    assert silence_pip(code, language) == code


def test_silence_pip_leaves_other_lines_alone() -> None:
    code = "import os\nprint('pip install x')\n!pip install numpy"
    assert silence_pip(code, "python") == "import os\nprint('pip install x')\n!pip install -qqq numpy"


# ---------------------------------------------------------------- prepare_block


def test_prepare_unsupported_language(tmp_path: Path) -> None:
    block = prepare_block("Ruby", "puts 1", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.refusal.startswith("Unsupported language ruby: cellbox runs bash, ")
    assert "did you mean" not in block.refusal  # nothing known is close to ruby
    assert "[execution_policies] in cellbox.toml" in block.refusal
    assert block.relative_path is None
    assert block.runs is False


def test_a_misspelt_language_is_refused_with_the_nearest_known_one(tmp_path: Path) -> None:
    block = prepare_block("pyhton", "print(1)", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.refusal is not None and block.refusal.startswith("Unsupported language pyhton: did you mean python? ")


def test_prepare_filename_escape_refused(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    block = prepare_block("python", "# filename: ../evil.py\nprint(1)", workspace, DEFAULT_EXECUTION_POLICIES)
    assert block.refusal == "Filename is not in the workspace"
    assert block.relative_path is None
    assert block.runs is False


def test_prepare_javascript_saved_not_run(tmp_path: Path) -> None:
    block = prepare_block("js", "console.log(1)", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.language == "javascript"
    assert block.runs is False
    assert block.refusal is None
    assert block.relative_path == generated_filename("console.log(1)", "javascript")


def test_prepare_python_runs(tmp_path: Path) -> None:
    block = prepare_block("py", "print(1)", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.language == "python"
    assert block.runs is True
    assert block.refusal is None
    assert block.relative_path == generated_filename("print(1)", "python")
    assert block.generated is True


def test_prepare_declared_name_is_relative(tmp_path: Path) -> None:
    block = prepare_block("python", "# filename: pkg/mod.py\nx = 1", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.relative_path == "pkg/mod.py"
    assert block.runs is True


def test_prepare_silences_pip(tmp_path: Path) -> None:
    block = prepare_block("bash", "pip install requests", tmp_path, DEFAULT_EXECUTION_POLICIES)
    assert block.code == "pip install -qqq requests"


def test_a_language_nothing_runs_is_saved_even_when_its_policy_says_run(tmp_path: Path) -> None:
    block = prepare_block("html", "<p>hi</p>", tmp_path, {**DEFAULT_EXECUTION_POLICIES, "html": True})
    assert block.relative_path is not None and not block.runs
