"""The pure normaliser, framer and debouncer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstiled.scanners.decode import Debouncer, Framer, normalise, printable


@pytest.mark.parametrize(("raw", "text"), [
    (b"ABC123", "ABC123"),
    (b"  ABC123\r\n", "ABC123"),
    (b"]Q1ABC123", "ABC123"),          # QR code AIM identifier
    (b"]C1ABC123", "ABC123"),          # GS1-128
    (b"]d2010123", "010123"),          # GS1 DataMatrix
    (b"\\000026ABC", "ABC"),            # ECI: UTF-8
    (b"]Q2\\000026ABC", "ABC"),         # AIM then ECI
    (b"01\x1d10ABC", "01\x1d10ABC"),   # GS kept
    (b"AB\x00C\x07D\x1bE\x7f", "ABCDE"),
    ("Grüße".encode(), "Grüße"),
    (b"caf\xe9", "café"),              # latin-1 fallback, no crash
])
def test_normalise(raw, text):
    assert normalise(raw).text == text


@pytest.mark.parametrize("raw", [b"", b"   ", b"\x01\x02", b"]Q1", b"X" * 129])
def test_unreadable(raw):
    n = normalise(raw, max_length=128)
    assert n.text is None and n.reason == "unreadable"


def test_over_length_is_not_truncated():
    assert normalise(b"A" * 128).text == "A" * 128
    assert normalise(b"A" * 129).text is None


@given(st.binary(max_size=300))
def test_normalise_total_and_clean(raw):
    n = normalise(raw)
    assert (n.text is None) != (n.reason is None)
    if n.text is not None:
        assert not any(ord(c) < 0x20 and c != "\x1d" for c in n.text)
        assert len(n.text) <= 128


@given(st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)),
               min_size=1, max_size=60))
def test_normalise_idempotent(text):
    first = normalise(text.encode())
    if first.text is not None and not first.text.startswith(("]", "\\")):
        assert normalise(first.text.encode()).text == first.text


@pytest.mark.parametrize(("term", "stream", "frames"), [
    ("CR", [b"AB", b"C\rDE", b"F\r"], [b"ABC", b"DEF"]),
    ("CR", [b"ABC\r\nDEF\r\n"], [b"ABC", b"DEF"]),
    ("LF", [b"ABC\nDEF\n"], [b"ABC", b"DEF"]),
    ("CRLF", [b"ABC\r", b"\nDEF\r\n"], [b"ABC", b"DEF"]),
    ("TAB", [b"ABC\tDEF\t"], [b"ABC", b"DEF"]),
])
def test_framer(term, stream, frames):
    f = Framer(term)
    got = [fr for chunk in stream for fr in f.feed(chunk)]
    assert got == frames


def test_framer_none_flushes_on_idle_and_bounds_memory():
    f = Framer("NONE", max_frame=8)
    assert f.feed(b"ABC") == [] and f.feed(b"DEF") == []
    assert f.flush() == b"ABCDEF" and f.flush() is None
    f.feed(b"X" * 100)
    assert len(f.flush()) == 9  # max_frame + 1: the normaliser sees it is too long


def test_framer_rejects_unknown_terminator():
    with pytest.raises(ValueError, match="terminator"):
        Framer("ETX")


def test_debounce():
    d = Debouncer(2.5)
    assert not d.seen("A", 0.0)
    assert d.seen("A", 1.0)
    assert not d.seen("B", 1.1)
    assert d.seen("A", 2.4)
    assert not d.seen("A", 2.6)


def test_printable():
    assert printable(b"AB\x01\xff") == "AB\\x01\\xff"
