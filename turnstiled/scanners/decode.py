"""Pure decoding of scanner output: framing, normalisation, debounce. No I/O.

The serial and HID readers hand raw frames to :func:`normalise`, which
returns the barcode text the rules look up, or ``unreadable``. The serial
reader splits its byte stream with a :class:`Framer`; the pipeline drops a
scanner's repeats with a :class:`Debouncer`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TERMINATORS = ("ANY", "CR", "LF", "CRLF", "TAB", "NONE")
GS = "\x1d"
UNREADABLE = "unreadable"

_CR, _LF, _TAB = 0x0D, 0x0A, 0x09
# C0 controls and DEL, except GS (the GS1 field separator).
_CONTROL_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b != 0x1D)
# C1 controls: reachable through the latin-1 fallback or encoded in UTF-8.
_C1 = re.compile("[\x80-\x9f]")
# AIM symbology identifier: "]" + code letter + modifier character (e.g. ]Q1, ]C1, ]d2).
_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")
# ECI escape some wallets and scanners prepend: backslash + 6 digits ("\000026" = UTF-8).
_ECI = re.compile(r"\\[0-9]{6}")
# Leading/trailing whitespace, except GS (which str.isspace() counts as whitespace).
_EDGE_SPACE = re.compile(r"\A[^\S\x1d]+|[^\S\x1d]+\Z")


@dataclass(frozen=True, slots=True)
class Normalised:
    """The barcode text, or why there is none (exactly one of the two is set)."""

    text: str | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.reason is None):
            raise ValueError("Normalised needs exactly one of text and reason")


def normalise(raw: bytes, max_length: int = 128) -> Normalised:
    """Turn one raw frame into barcode text, or ``unreadable``; never raises.

    Control bytes other than GS are dropped, the bytes are read as UTF-8
    (latin-1 when they are not valid UTF-8), then surrounding whitespace,
    an AIM symbology identifier and an ECI escape are stripped from the
    front. The prefixes are stripped until none is left, so the result is
    a fixed point: normalising it again gives it back unchanged. A code
    longer than *max_length* characters is unreadable, never truncated.
    """
    data = raw.translate(None, _CONTROL_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = _C1.sub("", text)
    previous = None
    while text != previous:
        previous = text
        text = _EDGE_SPACE.sub("", text)
        if _AIM.match(text):
            text = text[3:]
        if _ECI.match(text):
            text = text[7:]
    if not text.replace(GS, "") or len(text) > max_length:
        return Normalised(None, UNREADABLE)
    return Normalised(text)


def printable(raw: bytes, limit: int = 256) -> str:
    """A raw frame as journal-safe text: control bytes and bad UTF-8 escaped."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def frame_cap(max_barcode_length: int) -> int:
    """Bytes a serial frame may hold for a code of *max_barcode_length* characters.

    Four bytes per character (UTF-8's longest), plus room for the prefixes
    and spaces the normaliser strips (AIM identifier, ECI escape).
    """
    return 4 * max_barcode_length + 16


class Framer:
    """Splits a scanner's byte stream into frames at the configured terminator.

    ``ANY`` (the default) ends a frame at CR, LF or CRLF: a CR or an LF ends
    it, and the empty frame between the two bytes of a CRLF is dropped.
    ``CR`` also swallows an LF right after the CR, and ``LF`` a CR right
    before the LF, so a scanner sending CRLF works with either; ``CRLF``
    ends a frame only at the pair. A lone CR or LF that is not part of the
    terminator stays in the frame (the normaliser drops it). ``NONE``
    frames end by an idle gap the reader measures: it calls :meth:`flush`.
    A frame never holds more than ``max_frame + 1`` bytes, so an over-long
    one still reaches the normaliser, which rejects it, without growing
    memory.
    """

    def __init__(self, terminator: str = "ANY", max_frame: int = 512) -> None:
        if terminator not in TERMINATORS:
            raise ValueError(f"terminator must be one of {', '.join(TERMINATORS)}, "
                             f"not {terminator!r}")
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        self.terminator = terminator
        self.max_frame = max_frame
        self._buf = bytearray()
        self._after_cr = False    # CR: the previous byte was the terminator
        self._pending_cr = False  # LF, CRLF: a CR that may start the terminator

    def feed(self, data: bytes) -> list[bytes]:
        """Complete frames in *data* (terminators removed, empty frames dropped)."""
        if self.terminator == "NONE":
            self._append(data)
            return []
        frames: list[bytes] = []
        for byte in data:
            if self._take(byte) and self._buf:
                frames.append(bytes(self._buf))
                self._buf.clear()
        return frames

    def _take(self, byte: int) -> bool:
        """Take one byte into the frame; True when it ends the frame instead."""
        if self.terminator == "TAB":
            if byte == _TAB:
                return True
        elif self.terminator == "ANY":
            if byte in (_CR, _LF):
                return True
        elif self.terminator == "CR":
            after_cr, self._after_cr = self._after_cr, byte == _CR
            if byte == _CR:
                return True
            if byte == _LF and after_cr:
                return False  # the LF of a CRLF: part of the terminator
        else:  # LF, CRLF: hold a CR back until the next byte says what it was
            if self._pending_cr:
                self._pending_cr = False
                if byte == _LF:
                    return True
                self._append(b"\r")
            if byte == _CR:
                self._pending_cr = True
                return False
            if byte == _LF and self.terminator == "LF":
                return True
        self._append(bytes((byte,)))
        return False

    def flush(self) -> bytes | None:
        """The pending frame after an idle gap (terminator ``NONE``), if any."""
        if not self._buf:
            return None
        frame = bytes(self._buf)
        self._buf.clear()
        return frame

    def _append(self, data: bytes) -> None:
        room = self.max_frame + 1 - len(self._buf)
        if room > 0:
            self._buf += data[:room]


class Debouncer:
    """Remembers recently accepted codes so a scanner's repeat is ignored."""

    def __init__(self, window_s: float = 2.5, max_codes: int = 1024) -> None:
        if window_s < 0:
            raise ValueError("window_s must not be negative")
        self.window_s = window_s
        self.max_codes = max_codes
        # Code -> when it was last accepted, oldest first (dicts keep insertion order).
        self._accepted: dict[str, float] = {}

    def seen(self, code: str, now: float) -> bool:
        """True if *code* was accepted less than the window ago (ignore it).

        Otherwise the code is accepted now. Only identical codes debounce;
        entries older than the window are forgotten, and at most
        ``max_codes`` are kept.
        """
        self._expire(now)
        last = self._accepted.get(code)
        if last is not None and now - last < self.window_s:
            return True
        self._accepted.pop(code, None)  # re-inserted last: the dict stays in time order
        self._accepted[code] = now
        while len(self._accepted) > self.max_codes:
            del self._accepted[next(iter(self._accepted))]
        return False

    def __len__(self) -> int:
        return len(self._accepted)

    def _expire(self, now: float) -> None:
        while self._accepted:
            oldest = next(iter(self._accepted))
            if now - self._accepted[oldest] < self.window_s:
                break
            del self._accepted[oldest]
