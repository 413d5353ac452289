"""Session mode's pure parts: a kernel's traceback in the document's lines,
and the diagnostic read from it."""

from __future__ import annotations

from cellbox.documents.diagnostics import BlockError, session_error
from cellbox.sandbox.sessions import in_document_lines

HEADER = "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m\nNameError    Traceback (most recent call last)"
FRAMES = [
    HEADER,
    "Cell \x1b[0;32mIn [4], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m x \x1b[38;5;241m=\x1b[39m \x1b[38;5;241m1\x1b[39m\n\x1b[0;32m----> 2\x1b[0m \x1b[43mf\x1b[49m()\n",
    "Cell In [3], line 3, in f()\n      2 def f():\n----> 3     return missing\n",
    "NameError: name 'missing' is not defined",
]


def test_each_cell_names_its_document_lines() -> None:
    shown = in_document_lines(FRAMES, {4: 20, 3: 10})
    assert "\x1b" not in shown
    assert "Cell In [4], line 22\n      21 x = 1\n----> 22 f()" in shown
    assert "Cell In [3], line 13, in f()\n      12 def f():\n----> 13     return missing" in shown
    assert shown.endswith("NameError: name 'missing' is not defined")


def test_a_cell_without_an_offset_keeps_its_numbers() -> None:
    assert "Cell In [3], line 3, in f()" in in_document_lines(FRAMES, {})


def test_the_diagnostic_is_the_deepest_frame_inside_the_block() -> None:
    output = in_document_lines(FRAMES, {4: 20, 3: 20})
    # Block lines 20..24 (0-based, end exclusive): frames at lines 22 and 23 (1-based).
    assert session_error(output, 20, 24) == BlockError(22, "NameError: name 'missing' is not defined")
    assert session_error(output, 0, 5) is None


def test_a_display_is_saved_decoded_even_when_its_base64_is_wrapped(tmp_path) -> None:
    import base64

    from cellbox.sandbox.displays import keep_display

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    wrapped = base64.encodebytes(png).decode()  # lines of 76 characters, as a kernel may send it
    shown = keep_display(tmp_path, "nb-1-0", {"image/png": wrapped, "text/plain": "<Figure>", "x-unknown": "?"})
    assert sorted(shown.files) == ["image/png", "text/plain"]
    with open(shown.files["image/png"], "rb") as saved:
        assert saved.read() == png
    assert shown.data["image/png"] == wrapped  # the bundle as it came
