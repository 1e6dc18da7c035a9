"""Pure decoding of scanner output: framing, normalisation, debounce. No I/O.

The serial and HID readers hand raw frames to :func:`normalise`, which
returns the barcode text the rules look up, or ``unreadable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TERMINATORS = ("CR", "LF", "CRLF", "TAB", "NONE")
GS = "\x1d"
# AIM symbology identifier: "]" + code letter + modifier character.
_AIM = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
# ECI escape some wallets and scanners prepend, e.g. "\000026" (UTF-8).
_ECI = re.compile(r"^\\[0-9]{6}")
_CONTROL = re.compile(r"[\x00-\x1c\x1e\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Normalised:
    """The barcode text, or why there is none."""

    text: str | None
    reason: str | None = None


def normalise(raw: bytes, max_length: int = 128) -> Normalised:
    """Turn one raw frame into barcode text; never raises."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.strip(" \t\r\n\x00")
    text = _AIM.sub("", text, count=1)
    text = _ECI.sub("", text, count=1)
    text = _CONTROL.sub("", text).strip()
    if not text:
        return Normalised(None, "unreadable")
    if len(text) > max_length:
        return Normalised(None, "unreadable")
    return Normalised(text)


def printable(raw: bytes, limit: int = 256) -> str:
    """A raw frame as journal-safe text: control bytes and bad UTF-8 escaped."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


class Framer:
    """Splits a scanner's byte stream into frames at the configured terminator."""

    def __init__(self, terminator: str = "CR", max_frame: int = 512) -> None:
        if terminator not in TERMINATORS:
            raise ValueError(f"terminator must be one of {', '.join(TERMINATORS)}")
        self.terminator = terminator
        self.max_frame = max_frame
        self._buf = bytearray()
        self._ends = {"CR": b"\r\n", "LF": b"\r\n", "CRLF": b"\r\n", "TAB": b"\t",
                      "NONE": b""}[terminator]

    def feed(self, data: bytes) -> list[bytes]:
        """Complete frames in *data* (terminators removed, empty frames dropped)."""
        if not self._ends:
            self._append(data)
            return []
        frames: list[bytes] = []
        for byte in data:
            if byte in self._ends:
                if self._buf:
                    frames.append(bytes(self._buf))
                    self._buf.clear()
            else:
                self._append(bytes((byte,)))
        return frames

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

    def __init__(self, window_s: float = 2.5) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}

    def seen(self, code: str, now: float) -> bool:
        """True if *code* was accepted less than the window ago (ignore it)."""
        last = self._seen.get(code)
        if last is not None and now - last < self.window_s:
            return True
        if len(self._seen) > 256:
            self._seen = {c: t for c, t in self._seen.items() if now - t < self.window_s}
        self._seen[code] = now
        return False
