"""CrowdManager Ticketing API (read-only export): tickets and member cards.

Basic auth; every list needs ``date_init``/``date_end`` (Unix seconds on
``last_update``) no more than 3 years apart, so a long history is fetched
in several windows. Pages are 0-based, ``count_elements`` at most 200,
fetched one after another with a configurable delay, as the vendor asks.
``count`` and ``page`` may arrive as strings. CrowdManager has no scan
endpoint: scans of its tickets are kept on the gate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from turnstiled.backends.base import Backend, Capabilities, Delta, TransientError
from turnstiled.backends.http import Http
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import iso, parse_iso

NAME = "crowdmanager"
MAX_WINDOW_S = 3 * 365 * 86400 - 86400  # a day inside the vendor's 3-year limit
STATUS = {1: "valid", 2: "cancelled", 3: "invalid"}


@dataclass(frozen=True)
class CrowdManagerSettings:
    """``[sources.crowdmanager]``."""

    base_url: str
    token: Secret
    events: tuple[str, ...] = ()
    members: bool = True
    history_days: float = 400.0
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
        return Ticket(NAME, str(code), event, status, (str(zone),) if zone else (), None, None,
                      "single", str(item.get("ticket_type_txt") or ""), str(item.get("id", "")))

    @staticmethod
    def member_ticket(item: dict[str, Any]) -> Ticket | None:
        code = item.get("card_number") or (f"M{item['id']}" if item.get("id") else None)
        if not code:
            return None
        return Ticket(NAME, str(code), "", "valid", (), None, None, "reentry",
                      str(item.get("name") or ""), f"member:{item.get('id')}")

    def _list(self, what: str, start: float, end: float) -> Iterator[list[dict[str, Any]]]:
        size = max(1, min(200, self.settings.page_size))
        first = True
        for lo, hi in windows(start, end):
            page, seen = 0, 0
            while True:
                if not first:
                    self._sleep(self.settings.page_delay_s)  # the vendor asks for a pause
                first = False
                _, body = self.http.request("GET", what, params={
                    "date_init": lo, "date_end": hi, "page": page, "count_elements": size,
                    "order": "ASC"})
                items = body.get("items") if isinstance(body, dict) else None
                if not isinstance(items, list):
                    raise TransientError(f"crowdmanager {what}: answer has no items list")
                if not items:
                    break
                yield items
                seen += len(items)
                if seen >= _int(body.get("count", 0)):
                    break
                page += 1

    def _pages(self, start: float, end: float) -> Iterator[list[Ticket]]:
        for items in self._list("tickets", start, end):
            yield [t for t in map(self.to_ticket, items) if t is not None]
        if self.settings.members:
            for items in self._list("members", start, end):
                yield [t for t in map(self.member_ticket, items) if t is not None]

    def full_sync(self) -> Iterator[list[Ticket]]:
        now = time.time()
        return self._pages(now - self.settings.history_days * 86400, now + 60)

    def delta_sync(self, cursor: str | None) -> Delta:
        now = time.time()
        since = parse_iso(cursor) if cursor else None
        start = (since if since is not None else now - 3600) - self.settings.overlap_s
        return Delta(self._pages(start, now + 60), iso(now) or "")
