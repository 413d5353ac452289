"""Unit tests for cellbox.output.OutputCollector."""

from __future__ import annotations

from cellbox.output import OutputCollector


def test_interleaves_in_arrival_order() -> None:
    collector = OutputCollector()
    collector.feed("stdout", b"one\n")
    collector.feed("stderr", b"two\n")
    collector.feed("stdout", b"three\n")
    assert collector.text() == "one\ntwo\nthree\n"


def test_feed_returns_completed_text() -> None:
    collector = OutputCollector()
    assert collector.feed("stdout", b"abc") == "abc"


def test_character_split_across_chunks() -> None:
    data = "é€😀".encode()
    collector = OutputCollector()
    first = collector.feed("stdout", data[:1])  # first byte of é only
    assert first == ""
    collector.feed("stdout", data[1:4])  # rest of é, part of €
    collector.feed("stdout", data[4:])
    assert collector.text() == "é€😀"
    assert "\ufffd" not in collector.text()


def test_split_character_not_mixed_with_other_stream() -> None:
    euro = "€".encode()
    collector = OutputCollector()
    collector.feed("stdout", euro[:2])
    collector.feed("stderr", b"err ")
    collector.feed("stdout", euro[2:])
    assert collector.text() == "err €"


def test_invalid_bytes_replaced() -> None:
    collector = OutputCollector()
    collector.feed("stderr", b"a\xffb")
    assert collector.text() == "a\ufffdb"


def test_dangling_partial_character_flushed_as_replacement() -> None:
    collector = OutputCollector()
    collector.feed("stdout", b"x" + "€".encode()[:2])
    assert collector.text() == "x\ufffd"
