"""A block's output names its document and the document's lines, not the
file the sandbox ran (sandbox/tracebacks.py), streamed or whole."""

from __future__ import annotations

import pytest

from cellbox.sandbox.tracebacks import BlockPlaces, PlaceRewriter

TMP = "/cellbox/blocks/tmp_code_0123456789abcdef0123456789abcdef.py"
IN_DOCUMENT = BlockPlaces((TMP,), "notes.md", line_offset=26)

TRACEBACK = f"""Traceback (most recent call last):
  File "{TMP}", line 5, in <module>
    main()
  File "{TMP}", line 3, in main
    1 / 0
  File "/usr/lib/python3.11/fractions.py", line 3, in other
ZeroDivisionError: division by zero
"""


def test_a_traceback_names_the_document_and_its_lines() -> None:
    text, changed = IN_DOCUMENT.rewrite(TRACEBACK)
    assert changed
    assert '  File "notes.md", line 31, in <module>\n' in text
    assert '  File "notes.md", line 29, in main\n' in text
    assert '"/usr/lib/python3.11/fractions.py", line 3' in text  # other files keep their own
    assert "tmp_code" not in text


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        (f"{TMP}:4: UserWarning: careful", "notes.md:30: UserWarning: careful"),
        (f"{TMP}: line 2: nope: command not found", "notes.md: line 28: nope: command not found"),
        (f"{TMP}: 2: nope: not found", "notes.md: 28: nope: not found"),
        (f"    at Object.<anonymous> ({TMP}:7:9)", "    at Object.<anonymous> (notes.md:33:9)"),
        (f"print(__file__) says {TMP}", f"print(__file__) says {TMP}"),  # no line: no place in the document
        (f"{TMP}x: line 2: not this file", f"{TMP}x: line 2: not this file"),
        (f"/elsewhere{TMP}: line 2: nor this", f"/elsewhere{TMP}: line 2: nor this"),
    ],
)
def test_each_form_of_a_place(said: str, meant: str) -> None:
    assert IN_DOCUMENT.rewrite(said)[0] == meant


def test_a_file_the_user_named_is_renamed_only_with_a_line() -> None:
    places = BlockPlaces(("/workspace/src/app.py", "src/app.py"), "notes.md", line_offset=9)
    text = 'File "/workspace/src/app.py", line 2, in <module>\nsrc/app.py written\nsrc/app.py:1: warning\n'
    assert places.rewrite(text)[0] == 'File "notes.md", line 11, in <module>\nsrc/app.py written\nnotes.md:10: warning\n'


def test_a_block_given_as_text_keeps_its_lines() -> None:
    text, _ = BlockPlaces((TMP,), "<block 2>").rewrite(f'  File "{TMP}", line 5, in <module>\n')
    assert text == '  File "<block 2>", line 5, in <module>\n'


def test_streamed_in_any_pieces_it_says_what_the_whole_says() -> None:
    whole = "progress 10%\rprogress 20%\r" + TRACEBACK + "no newline at the end"
    for size in (1, 2, 3, 7, 16, 50):
        sent: list[tuple[str, str]] = []
        rewriter = PlaceRewriter(IN_DOCUMENT, lambda stream, text: sent.append((stream, text)))
        for start in range(0, len(whole), size):
            rewriter.feed("stderr", whole[start : start + size])
        output, original = rewriter.finish(whole + "\n[cut]")
        assert output == IN_DOCUMENT.rewrite(whole)[0] + "\n[cut]"
        assert "".join(text for _, text in sent) + "\n[cut]" == output
        assert original == whole + "\n[cut]"


def test_output_that_cannot_name_the_file_is_not_held_back() -> None:
    sent: list[str] = []
    rewriter = PlaceRewriter(IN_DOCUMENT, lambda _stream, text: sent.append(text))
    rewriter.feed("stdout", "Password: ")
    rewriter.feed("stderr", "50%|█████     |")
    assert sent == ["Password: ", "50%|█████     |"]
    assert rewriter.finish("Password: 50%|█████     |") == ("Password: 50%|█████     |", None)
