"""Delta windows on the cloud's own clock, and paging that edits cannot shift.

A gate's clock and a cloud's clock disagree. A delta window that starts
at the gate's "now" of the last sync misses, for good, every change the
cloud stamped in between when the gate runs ahead by more than the
overlap. So the windows of every backend that does deltas (vivenu,
TickeTing, CrowdManager) are anchored here, on the cloud's time only:

- :class:`CloudClock` reads each answer's ``Date`` header (``Http`` feeds
  it) and tells the cloud's time now: the last ``Date`` plus the seconds
  the gate's monotonic clock counted since.
- :class:`Anchor` is taken when a sync starts. Its :meth:`~Anchor.cursor`
  is where the next window starts: the cloud's time at the start of this
  sync (so everything changed while it ran is read again next time),
  else the newest modification time seen in the answers, else the
  previous cursor. It is never the gate's clock.

Lists ordered by modification time move an edited ticket to the end; a
client that pages by position (skip/page) then skips the ticket that slid
into the page it already read. :func:`keyset_step` pages by value instead
(the last modification time read, plus how many tickets with exactly that
time were read), which no edit can shift.
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Sequence
from typing import Any

from turnstiled.timeutil import iso, parse_iso


class CloudClock:
    """The cloud's time, as its ``Date`` headers tell it."""

    def __init__(self) -> None:
        self.date: float | None = None  # the last Date header, Unix seconds
        self._mono = 0.0
        self.first: float | None = None  # the first Date this process saw

    def observe(self, header: str | None) -> None:
        """Note an answer's ``Date`` header (ignored when absent or unreadable)."""
        if not header:
            return
        try:
            when = email.utils.parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError):
            return
        self.date, self._mono = when, time.monotonic()
        if self.first is None:
            self.first = when

    def now(self) -> float | None:
        """The cloud's time now (None until it has answered once)."""
        if self.date is None:
            return None
        return self.date + (time.monotonic() - self._mono)


class Anchor:
    """Where the window after this sync starts, in the cloud's time."""

    def __init__(self, clock: CloudClock, previous: str | None = None) -> None:
        self.clock = clock
        self.started = clock.now()  # None: the first Date seen stands in for the start
        self.fresh = clock.date is None
        self.newest: float | None = None
        self.previous = previous

    def seen(self, stamp: float | None) -> None:
        """Note a modification time read in this sync."""
        if stamp is not None and (self.newest is None or stamp > self.newest):
            self.newest = stamp

    def cursor(self) -> str | None:
        """The cloud's time this sync started, else the newest change seen, else as before."""
        start = self.started
        if start is None and self.fresh:
            start = self.clock.first
        if start is None:
            start = self.newest
        return iso(start) if start is not None else self.previous


def window_start(cursor: str | None, overlap_s: float) -> float | None:
    """The start of the next delta window (cloud time), a little before *cursor*."""
    since = parse_iso(cursor)
    return None if since is None else since - overlap_s


def keyset_step(stamps: Sequence[Any], lo: Any, skip: int) -> tuple[Any, int] | None:
    """The next (lower bound, skip) after a page whose modification times were *stamps*.

    *lo* is the inclusive lower bound the page was asked with and *skip*
    the tickets stamped exactly *lo* it skipped. Stamps are numbers, or
    ISO texts of one format (which order as text: all the same length).
    Returns None when the page is not in ascending order of modification
    time (the caller then pages by position).
    """
    if not stamps or any(s is None for s in stamps):
        return None
    if isinstance(stamps[0], str) and len({len(s) for s in (*stamps, lo or stamps[0])}) != 1:
        return None  # mixed formats: text order is not time order
    if any(b < a for a, b in itertools.pairwise(stamps)) or (
            lo is not None and stamps[0] < lo):
        return None
    last = stamps[-1]
    if lo is not None and last == lo:
        return lo, skip + len(stamps)
    return last, sum(1 for v in stamps if v == last)
