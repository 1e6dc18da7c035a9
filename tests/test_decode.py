"""The pure normaliser, framer and debouncer: examples, then Hypothesis properties."""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstiled.scanners.decode import (
    Debouncer,
    Framer,
    Normalised,
    frame_cap,
    normalise,
    printable,
)

GS = "\x1d"


@pytest.mark.parametrize(("raw", "text"), [
    (b"ABC123", "ABC123"),
    (b"  ABC123\r\n", "ABC123"),
    (b"]Q1ABC123", "ABC123"),             # QR code AIM identifier
    (b"]C1ABC123", "ABC123"),             # GS1-128
    (b"]d2010123", "010123"),             # GS1 DataMatrix
    (b"]E0 4006381333931", "4006381333931"),  # EAN-13, space after the identifier
    (b"\\000026ABC", "ABC"),               # ECI: UTF-8
    (b"]Q2\\000026ABC", "ABC"),            # AIM then ECI
    (b"\\0000261234567", "1234567"),       # exactly six ECI digits; the rest is data
    (b"01\x1d10ABC", "01\x1d10ABC"),      # GS kept
    (b"AB\x00C\x07D\x1bE\x7f", "ABCDE"),  # other control bytes dropped
    (b"\x00]Q1ABC", "ABC"),                # a stray NUL does not hide the identifier
    ("Grüße".encode(), "Grüße"),
    (b"caf\xe9", "café"),                 # not UTF-8: latin-1, no crash
    (b"AB\x85CD", "ABCD"),                # C1 control from the latin-1 fallback dropped
    ("\u00a0TICKET 7\u3000".encode(), "TICKET 7"),  # Unicode spaces at the edges only
])
def test_normalise(raw: bytes, text: str) -> None:
    assert normalise(raw) == Normalised(text, None)


@pytest.mark.parametrize("raw", [b"", b"   ", b"\x01\x02", b"]Q1", b"]Q1\\000026 ",
                                 b"\x1d", b" \x1d\x1d ", b"X" * 129])
def test_unreadable(raw: bytes) -> None:
    assert normalise(raw, max_length=128) == Normalised(None, "unreadable")


def test_over_length_is_unreadable_not_truncated() -> None:
    assert normalise(b"A" * 128).text == "A" * 128
    assert normalise(b"A" * 129).text is None
    assert normalise(b"]Q1" + b"A" * 10, max_length=10).text == "A" * 10  # counted after cleaning


def test_normalised_has_text_or_reason() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Normalised(None, None)
    with pytest.raises(ValueError, match="exactly one"):
        Normalised("A", "unreadable")


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=200))
def test_normalise_never_raises_and_is_clean(raw: bytes, max_length: int) -> None:
    n = normalise(raw, max_length)
    assert (n.text is None) != (n.reason is None)
    if n.text is None:
        assert n.reason == "unreadable"
    else:
        assert 0 < len(n.text) <= max_length
        assert not [c for c in n.text if unicodedata.category(c) == "Cc" and c != GS]
        assert n.text.replace(GS, "")


@given(st.one_of(
    st.binary(max_size=200),
    # bytes biased towards what trips the rules: prefixes, digits, spaces, controls
    st.lists(st.sampled_from([b"]Q1", b"]", b"Q", b"1", b"\\000026", b"\\", b"0", b" ",
                              b"\x1d", b"\x00", b"\r", b"\xc3", b"\xa9", b"\x85", b"A"]),
             max_size=20).map(b"".join),
))
def test_normalise_is_idempotent(raw: bytes) -> None:
    first = normalise(raw)
    if first.text is not None:
        assert normalise(first.text.encode("utf-8")) == first


@given(aim=st.sampled_from(["", "]Q1", "]C1", "]d2", "]E0"]),
       eci=st.sampled_from(["", "\\000026"]),
       payload=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Z")),
                       min_size=1, max_size=60).filter(lambda p: not p.startswith(("]", "\\"))),
       end=st.sampled_from(["", "\r", "\r\n", " \n"]))
def test_normalise_recovers_the_payload(aim: str, eci: str, payload: str, end: str) -> None:
    assert normalise(f" {aim}{eci}{payload}{end}".encode()).text == payload


@pytest.mark.parametrize(("term", "stream", "frames"), [
    ("CR", [b"AB", b"C\rDE", b"F\r"], [b"ABC", b"DEF"]),
    ("CR", [b"ABC\r\nDEF\r\n"], [b"ABC", b"DEF"]),            # CRLF scanner on a CR reader
    ("CR", [b"ABC\r", b"\nDEF\r", b"\n"], [b"ABC", b"DEF"]),  # ... split after each CR
    ("CR", [b"A\nB\r"], [b"A\nB"]),                          # a lone LF is data
    ("LF", [b"ABC\nDEF\n"], [b"ABC", b"DEF"]),
    ("LF", [b"ABC\r", b"\nDEF\r\n"], [b"ABC", b"DEF"]),      # CRLF scanner on an LF reader
    ("LF", [b"A\rB\n"], [b"A\rB"]),                          # a lone CR is data
    ("CRLF", [b"ABC\r", b"\nDEF\r\n"], [b"ABC", b"DEF"]),
    ("CRLF", [b"A\rB\nC\r\n"], [b"A\rB\nC"]),                # only the pair ends a frame
    ("TAB", [b"ABC\tDEF\t"], [b"ABC", b"DEF"]),
    ("TAB", [b"\t\tABC\t\t"], [b"ABC"]),                     # empty frames dropped
    ("ANY", [b"ABC\rDEF\nGHI\r\nJKL\r", b"\n"], [b"ABC", b"DEF", b"GHI", b"JKL"]),
    ("ANY", [b"ABC\n\nDEF\r\r"], [b"ABC", b"DEF"]),           # blank lines dropped
])
def test_framer(term: str, stream: list[bytes], frames: list[bytes]) -> None:
    f = Framer(term)
    assert [fr for chunk in stream for fr in f.feed(chunk)] == frames


def test_framer_none_flushes_on_idle() -> None:
    f = Framer("NONE")
    assert f.feed(b"ABC") == [] and f.feed(b"DEF\r") == []
    assert f.flush() == b"ABCDEF\r" and f.flush() is None


@pytest.mark.parametrize("term", ["ANY", "CR", "LF", "CRLF", "TAB", "NONE"])
def test_framer_bounds_an_endless_frame(term: str) -> None:
    f = Framer(term, max_frame=8)
    for _ in range(1000):
        assert f.feed(b"X" * 100) == []
    assert len(f._buf) == 9
    end = {"ANY": b"\n", "CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t", "NONE": b""}[term]
    got = f.feed(end + b"OK" + end) if end else [f.flush()]
    # max_frame + 1 bytes: the normaliser still sees it is too long; the next frame is clean
    assert got[0] == b"X" * 9 and normalise(got[0], max_length=8).text is None
    if end:
        assert got[1:] == [b"OK"]


def test_framer_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="terminator"):
        Framer("ETX")
    with pytest.raises(ValueError, match="max_frame"):
        Framer("CR", max_frame=0)


@given(term=st.sampled_from(["ANY", "CR", "LF", "CRLF", "TAB"]), data=st.binary(max_size=200),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_framer_ignores_how_the_stream_is_chunked(term: str, data: bytes,
                                                  cuts: list[int]) -> None:
    whole = Framer(term, max_frame=32).feed(data)
    f = Framer(term, max_frame=32)
    bounds = [0, *sorted(cuts), len(data)]
    pieces = [fr for a, b in itertools.pairwise(bounds) for fr in f.feed(data[a:b])]
    assert pieces == whole
    assert all(0 < len(fr) <= 33 for fr in whole)


@given(st.lists(st.binary(min_size=1, max_size=20).filter(lambda b: not set(b) & {10, 13}),
                max_size=10))
def test_crlf_scanners_work_on_every_line_terminator(codes: list[bytes]) -> None:
    stream = b"".join(c + b"\r\n" for c in codes)
    for term in ("ANY", "CR", "LF", "CRLF"):
        assert Framer(term).feed(stream) == codes


@given(st.lists(st.binary(min_size=1, max_size=20).filter(lambda b: not set(b) & {10, 13}),
                max_size=10), st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=10,
                                       max_size=10))
def test_the_default_framer_takes_any_line_ending(codes: list[bytes], ends: list[bytes]) -> None:
    stream = b"".join(c + e for c, e in zip(codes, ends, strict=False))
    assert Framer().feed(stream) == codes


@pytest.mark.parametrize("length", [1, 8, 128, 4096])
def test_frame_cap_fits_the_longest_code_in_utf8_with_prefixes(length: int) -> None:
    code = "€" * length  # three bytes each in UTF-8
    raw = b"]Q1\\000026" + code.encode() + b"  "
    f = Framer("CR", max_frame=frame_cap(length))
    (frame,) = f.feed(raw + b"\r")
    assert normalise(frame, max_length=length).text == code
    (frame,) = f.feed(("€" * (length + 1)).encode() * 4 + b"\r")
    assert normalise(frame, max_length=length).text is None  # too long: never truncated


def test_debounce_same_code_within_window() -> None:
    d = Debouncer(2.5)
    assert not d.seen("A", 0.0)
    assert d.seen("A", 1.0)
    assert not d.seen("B", 1.1)
    assert d.seen("A", 2.4)        # A, B, A within the window: the third is a repeat
    assert not d.seen("A", 2.5)    # the window has passed since A was accepted
    assert d.seen("B", 3.5)
    assert d.seen("A", 4.9)
    assert not d.seen("B", 4.9)


def test_debounce_forgets_old_codes_and_stays_small() -> None:
    d = Debouncer(1.0, max_codes=50)
    for i in range(200):
        assert not d.seen(f"T{i}", i * 0.001)
    assert len(d) == 50  # more codes inside one window than it keeps: the oldest go
    assert not d.seen("late", 10.0)
    assert len(d) == 1   # everything older than the window was evicted


def test_printable() -> None:
    assert printable(b"AB\x01\xff") == "AB\\x01\\xff"
