"""Blocks found in documents, and tracebacks mapped back to them."""

from __future__ import annotations

from cellbox.documents.diagnostics import python_error, shell_error
from cellbox.documents.finder import find_blocks, mistyped_fences, selection_block


def test_markdown_fences_of_every_kind():
    text = (
        "```python title=x\nprint(1)\n```\n"
        "~~~bash\necho 2\n~~~\n"
        "````sh\n```\nstill inside\n````\n"
        "```\nno language\n```\n"
        "```ruby\nunknown\n```\n"
    )
    blocks = find_blocks("file:///w/a.md", text)
    assert [(b.language, b.header_line, b.start_line, b.end_line) for b in blocks] == [
        ("python", 0, 1, 2), ("bash", 3, 4, 5), ("sh", 6, 7, 9),
    ]
    assert blocks[2].code == "```\nstill inside\n"


def test_an_unclosed_fence_runs_to_the_end():
    (block,) = find_blocks("file:///w/a.markdown", "```py\nprint(1)\nprint(2)\n")
    assert (block.language, block.start_line, block.end_line, block.code) == ("python", 1, 3, "print(1)\nprint(2)\n")


def test_cells_with_titles_and_code_above_the_first_marker():
    text = "import os\n# %% one\na = 1\n#%% two\nb = 2\n"
    blocks = find_blocks("file:///w/s.py", text)
    assert [(f"L{b.header_line}", b.start_line, b.end_line, b.code) for b in blocks] == [
        ("L0", 0, 1, "import os\n"), ("L1", 2, 3, "a = 1\n"), ("L3", 4, 5, "b = 2\n"),
    ]


def test_a_script_without_markers_is_one_block_and_language_follows_the_extension():
    (block,) = find_blocks("file:///w/run.bash", "echo a\necho b\n")
    assert (block.language, block.start_line, block.end_line) == ("bash", 0, 2)
    assert find_blocks("file:///w/empty.sh", "\n") == []
    assert find_blocks("file:///w/notes.txt", "hello") == []


def test_a_markdown_selection_takes_the_language_of_its_fence():
    text = "```bash\necho a\necho b\n```\n"
    block = selection_block("file:///w/a.md", text, 1, 1)
    assert (block.language, block.code) == ("bash", "echo a\n")


def test_the_deepest_frame_in_the_block_file_is_the_line():
    output = (
        "Traceback (most recent call last):\n"
        '  File "/workspace/.cellbox/tmp_code_a.py", line 5, in <module>\n'
        "    f()\n"
        '  File "/workspace/.cellbox/tmp_code_a.py", line 2, in f\n'
        "    g()\n"
        '  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads\n'
        "    return _default_decoder.decode(s)\n"
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
    )
    error = python_error(output, ".cellbox/tmp_code_a.py", block_start_line=10, block_line_count=6)
    assert error is not None
    assert (error.line, error.message) == (11, "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)")


def test_no_diagnostic_outside_the_block():
    output = 'Traceback (most recent call last):\n  File "other.py", line 3, in <module>\nValueError: x\n'
    assert python_error(output, ".cellbox/tmp_code_a.py", 0, 5) is None
    output = 'Traceback (most recent call last):\n  File ".cellbox/tmp_code_a.py", line 9, in <module>\nValueError: x\n'
    assert python_error(output, ".cellbox/tmp_code_a.py", 0, 5) is None  # past the block's end


def test_a_shell_error_keeps_the_last_lines_of_stderr():
    error = shell_error("one\ntwo\n\nthree\nfour\n", 2, 7)
    assert (error.line, error.message) == (7, "two\nthree\nfour")
    assert shell_error("", 3, 0).message == "exited with code 3"


def test_only_fences_that_look_like_a_language_that_runs_are_called_typos():
    text = "```pyhton\nx\n```\n```toml\na = 1\n```\n```{Pyhton, echo=false}\ny\n```\n```json\n{}\n```\n"
    found = mistyped_fences("file:///w/a.md", text)
    assert [(f.line, f.end_line, f.word, f.guess) for f in found] == [(0, 3, "pyhton", "python"), (6, 9, "Pyhton", "python")]
    assert found[0].message.startswith("cellbox does not know the language 'pyhton', so this block does not run. Did you mean python?")
    assert mistyped_fences("file:///w/a.py", text) == []
