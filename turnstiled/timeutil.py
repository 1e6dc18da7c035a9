"""ISO 8601 times as turnstiled writes and reads them (UTC, milliseconds, ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """Unix seconds as ``2026-11-24T09:00:00.000Z`` (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    """An ISO 8601 time with an offset or ``Z`` as Unix seconds; None if absent or bad."""
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def ago(ts: float | None, now: float) -> str:
    """How long ago *ts* was: ``4 s ago``, ``3 min ago``, ``never``.

    A time after *now* (the wall clock stepped back since) is said as such,
    never as "0 s ago".
    """
    if ts is None:
        return "never"
    s = int(now - ts)
    if s < 0:
        return f"{_span(-s)} ahead of the clock (clock stepped back?)"
    return f"{_span(s)} ago"


def _span(s: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"
