"""Unit tests for cellbox.output.OutputCollector."""

from __future__ import annotations

from cellbox.sandbox.output import OutputCollector


def test_interleaves_in_arrival_order() -> None:
    collector = OutputCollector(1 << 20)
    collector.feed("stdout", b"one\n")
    collector.feed("stderr", b"two\n")
    collector.feed("stdout", b"three\n")
    assert collector.text() == "one\ntwo\nthree\n"


def test_feed_returns_completed_text() -> None:
    collector = OutputCollector(1 << 20)
    assert collector.feed("stdout", b"abc") == "abc"


def test_character_split_across_chunks() -> None:
    data = "é€😀".encode()
    collector = OutputCollector(1 << 20)
    first = collector.feed("stdout", data[:1])  # first byte of é only
    assert first == ""
    collector.feed("stdout", data[1:4])  # rest of é, part of €
    collector.feed("stdout", data[4:])
    assert collector.text() == "é€😀"
    assert "\ufffd" not in collector.text()


def test_split_character_not_mixed_with_other_stream() -> None:
    euro = "€".encode()
    collector = OutputCollector(1 << 20)
    collector.feed("stdout", euro[:2])
    collector.feed("stderr", b"err ")
    collector.feed("stdout", euro[2:])
    assert collector.text() == "err €"


def test_invalid_bytes_replaced() -> None:
    collector = OutputCollector(1 << 20)
    collector.feed("stderr", b"a\xffb")
    assert collector.text() == "a\ufffdb"


def test_dangling_partial_character_flushed_as_replacement() -> None:
    collector = OutputCollector(1 << 20)
    collector.feed("stdout", b"x" + "€".encode()[:2])
    assert collector.text() == "x\ufffd"


def test_output_past_the_limit_is_dropped_and_marked() -> None:
    collector = OutputCollector(10)
    collector.feed("stdout", b"0123456")
    collector.feed("stderr", b"789abc")
    collector.feed("stdout", b"more")
    assert collector.truncated is True
    assert collector.text() == "0123456789\n[cellbox: output cut at 10 bytes; the block ran on]\n"


def test_output_up_to_the_limit_is_not_marked() -> None:
    collector = OutputCollector(4)
    collector.feed("stdout", b"abcd")
    assert (collector.truncated, collector.text()) == (False, "abcd")


def test_a_cut_reported_by_the_runner_marks_the_output() -> None:
    collector = OutputCollector(1 << 20)
    collector.feed("stdout", b"kept")
    collector.cut()
    assert collector.text() == "kept\n[cellbox: output cut at 1 MiB; the block ran on]\n"
