"""CrowdManager Ticketing API (read-only export): tickets and member cards.

Basic auth; every list needs ``date_init``/``date_end`` (Unix seconds on
``last_update``) no more than 3 years apart, so a long history is fetched
in several windows. Pages are 0-based, ``count_elements`` at most 200,
fetched one after another with a configurable delay, as the vendor asks.
``count`` and ``page`` may arrive as strings. CrowdManager has no scan
endpoint: scans of its tickets are kept on the gate.

Lists are read in ``last_update`` order and paged by value (the next page
starts at the last ``last_update`` read, skipping the items already read
with exactly that stamp), so an edit while the gate pages cannot make it
skip an item; delta windows start a little before the cloud's own time
of the previous sync (:mod:`turnstiled.backends.window`).

- Tickets older than ``history_days`` are not fetched; member cards are
  always fetched in full (a card updated years ago still opens the gate).
- A ticket admits until ``match_admit_s`` after its match's kick-off
  (``match_date`` + ``match_time``, the gate's local time zone), so an
  unused ticket of a past match does not admit.
- A member card may re-enter; without an exit scan its holder counts as
  inside for ``member_inside_s`` after an entry (``reentry:S``), so a
  card is never locked out for good at a gate with no exit scanner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from turnstiled.backends.base import Backend, Capabilities, Delta, TransientError
from turnstiled.backends.http import Http
from turnstiled.backends.window import Anchor, keyset_step, window_start
from turnstiled.rules import Ticket
from turnstiled.secret import Secret

NAME = "crowdmanager"
MAX_WINDOW_S = 3 * 365 * 86400 - 86400  # a day inside the vendor's 3-year limit
STATUS = {1: "valid", 2: "cancelled", 3: "invalid"}
MEMBERS_SINCE = 946684800.0  # 2000-01-01: older than any member card's last_update
AHEAD_S = 30 * 86400.0  # date_end this far past the cloud's (or gate's) now


@dataclass(frozen=True)
class CrowdManagerSettings:
    """``[sources.crowdmanager]``."""

    base_url: str
    token: Secret
    events: tuple[str, ...] = ()
    members: bool = True
    history_days: float = 400.0
    match_admit_s: float = 14400.0
    member_inside_s: float = 14400.0
    page_size: int = 200
    page_delay_s: float = 0.2
    sync_interval_s: float = 60.0
    full_sync_interval_s: float = 21600.0
    overlap_s: float = 60.0
    timeout_s: float = 10.0


def windows(start: float, end: float, span: float = MAX_WINDOW_S) -> list[tuple[int, int]]:
    """[start, end] split into consecutive windows of at most *span* seconds."""
    out = []
    lo = int(start)
    while lo < end:
        hi = int(min(end, lo + span))
        out.append((lo, hi))
        lo = hi + 1
    return out or [(int(start), int(end))]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TransientError(f"crowdmanager: {value!r} is not a number") from None


def kickoff(item: dict[str, Any]) -> float | None:
    """The match's start (``match_date`` ``match_time``, local time) as Unix seconds."""
    day, clock = str(item.get("match_date") or ""), str(item.get("match_time") or "00:00")
    if not day:
        return None
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(f"{day[:10]} {clock.strip()}", fmt).astimezone().timestamp()
        except ValueError:
            continue
    return None


def _stamp(item: Any) -> float | None:
    try:
        return float(item["last_update"])
    except (KeyError, TypeError, ValueError):
        return None


class CrowdManagerBackend(Backend):
    """One CrowdManager system."""

    name = NAME
    capabilities = Capabilities(full_sync=True, delta_sync=True)

    def __init__(self, settings: CrowdManagerSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url,
                         headers={"Authorization": f"Basic {settings.token.reveal()}"},
                         timeout=settings.timeout_s, vendor=NAME)
        self._sleep = time.sleep

    def close(self) -> None:
        self.http.close()

    def to_ticket(self, item: dict[str, Any]) -> Ticket | None:
        code = item.get("barcode") or item.get("id")
        if code in (None, ""):
            return None
        event = str(item.get("id_event") or "")
        if self.settings.events and event not in self.settings.events:
            return None
        status = STATUS.get(_int(item.get("status", 1)), "invalid")
        zone = item.get("sector_txt") or item.get("sector")
        start = kickoff(item)
        until = start + self.settings.match_admit_s if start is not None else None
        return Ticket(NAME, str(code), event, status, (str(zone),) if zone else (), None, until,
                      "single", str(item.get("ticket_type_txt") or ""), str(item.get("id", "")))

    def member_ticket(self, item: dict[str, Any]) -> Ticket | None:
        code = item.get("card_number") or (f"M{item['id']}" if item.get("id") else None)
        if not code:
            return None
        return Ticket(NAME, str(code), "", "valid", (), None, None,
                      f"reentry:{max(1, int(self.settings.member_inside_s))}",
                      str(item.get("name") or ""), f"member:{item.get('id')}")

    def _list(self, what: str, start: float, end: float,
              anchor: Anchor) -> Iterator[list[dict[str, Any]]]:
        size = max(1, min(200, self.settings.page_size))
        first = True
        for lo_w, hi in windows(start, end):
            lo: float | None = lo_w
            skip = 0
            while True:
                if not first:
                    self._sleep(self.settings.page_delay_s)  # the vendor asks for a pause
                first = False
                page, drop = divmod(skip, size)
                _, body = self.http.request("GET", what, params={
                    "date_init": int(lo or lo_w), "date_end": hi, "page": page,
                    "count_elements": size, "order": "ASC"})
                items = body.get("items") if isinstance(body, dict) else None
                if not isinstance(items, list):
                    raise TransientError(f"crowdmanager {what}: answer has no items list")
                for item in items:
                    anchor.seen(_stamp(item))
                if items[drop:]:
                    yield items[drop:]
                if len(items) < size or page * size + len(items) >= _int(body.get("count", 0)):
                    break
                step = keyset_step([_stamp(i) for i in items[drop:]], lo, skip)
                # Out of order (not what CrowdManager sends): fall back to positions.
                lo, skip = step if step is not None else (lo, skip + len(items) - drop)

    def _pages(self, start: float, anchor: Anchor, *, members_since: float
               ) -> Iterator[list[Ticket]]:
        now = self.http.clock.now() or time.time()  # only a generous upper bound
        for items in self._list("tickets", start, now + AHEAD_S, anchor):
            yield [t for t in map(self.to_ticket, items) if t is not None]
        if self.settings.members:
            for items in self._list("members", members_since, now + AHEAD_S, anchor):
                yield [t for t in map(self.member_ticket, items) if t is not None]

    def full_sync(self) -> Delta:
        anchor = Anchor(self.http.clock)
        now = self.http.clock.now() or time.time()
        return Delta(self._pages(now - self.settings.history_days * 86400, anchor,
                                 members_since=MEMBERS_SINCE), anchor)

    def delta_sync(self, cursor: str) -> Delta:
        anchor = Anchor(self.http.clock, cursor)
        start = window_start(cursor, self.settings.overlap_s) or 0.0
        return Delta(self._pages(start, anchor, members_since=start), anchor)
