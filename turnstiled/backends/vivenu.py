"""vivenu Access Control API (``/api/accessusers``): sync, online check, scan upload.

Full sync pages ``tickets/v2/{eventId}`` with ``top`` up to 1000 and an
advancing ``skip`` (vivenu's own example forgets to advance it). Delta
sync asks for ``from``/``until`` windows on created/updated that overlap
the previous one a little, so nothing falls between two windows. A
ticket's ``entry`` permissions become its zones; ``INVALID`` and
``DETAILSREQUIRED`` tickets are kept (as ``invalid``) so they are denied
with a reason instead of "unknown".
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from turnstiled.backends.base import (
    Backend,
    Capabilities,
    Delta,
    OnlineAnswer,
    TransientError,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import iso, parse_iso

NAME = "vivenu"
STATUS = {"VALID": "valid", "INVALID": "invalid", "DETAILSREQUIRED": "invalid",
          "RESERVED": "invalid", "BLANK": "invalid"}


@dataclass(frozen=True)
class VivenuSettings:
    """``[sources.vivenu]``."""

    token: Secret
    base_url: str = "https://vivenu.com/api/accessusers"
    events: tuple[str, ...] = ()
    page_size: int = 1000
    sync_interval_s: float = 0.0
    full_sync_interval_s: float = 21600.0
    overlap_s: float = 30.0
    online_check: bool = True
    online_deadline_s: float = 0.8
    timeout_s: float = 10.0
    upload_batch: int = 500


def to_ticket(doc: dict[str, Any]) -> Ticket | None:
    """A vivenu ticket document as a cache ticket (None if it has no barcode)."""
    barcode = doc.get("barcode")
    if not isinstance(barcode, str) or not barcode:
        return None
    entry = doc.get("entry") or ()
    zones = tuple(str(z) for z in entry if z) if isinstance(entry, list) else ()
    status = STATUS.get(str(doc.get("status", "")).upper(), "invalid")
    return Ticket(NAME, barcode, str(doc.get("eventId") or ""), status, zones, None, None,
                  "single", str(doc.get("name") or doc.get("ticketName") or ""),
                  str(doc.get("_id") or ""))


class VivenuBackend(Backend):
    """One vivenu device token."""

    name = NAME
    capabilities = Capabilities(full_sync=True, delta_sync=True, online_check=True,
                                scan_upload=True)

    def __init__(self, settings: VivenuSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url, headers={"token": settings.token.reveal()},
                         timeout=settings.timeout_s, vendor=NAME)
        self._events: list[str] | None = None
        self._interval: float | None = None

    def close(self) -> None:
        self.http.close()

    # -- device settings -------------------------------------------------
    def sync_interval(self) -> float:
        """``sync_interval_s``, or the device's ``deviceSettings.ticketSyncInterval`` (5-900 s)."""
        if self.settings.sync_interval_s > 0:
            return self.settings.sync_interval_s
        if self._interval is None:
            _, me = self.http.request("GET", "me")
            settings = me.get("deviceSettings") if isinstance(me, dict) else None
            value = settings.get("ticketSyncInterval") if isinstance(settings, dict) else None
            self._interval = float(min(900, max(5, value))) if isinstance(
                value, int | float) else 10.0
        return self._interval

    def events(self) -> list[str]:
        if self.settings.events:
            return list(self.settings.events)
        if self._events is None:
            _, body = self.http.request("GET", "events")
            if not isinstance(body, list):
                raise TransientError("vivenu events: expected a list")
            self._events = [str(e["_id"]) for e in body if isinstance(e, dict) and e.get("_id")]
        return self._events

    # -- sync ------------------------------------------------------------
    def _page(self, event: str, params: dict[str, Any], skip: int) -> tuple[list[Ticket], int,
                                                                          Any]:
        top = max(1, min(1000, self.settings.page_size))
        _, body = self.http.request("GET", f"tickets/v2/{quote(event, safe='')}",
                                    params={**params, "top": top, "skip": skip})
        if not isinstance(body, dict) or not isinstance(body.get("docs"), list):
            raise TransientError("vivenu tickets/v2: answer has no docs list")
        docs = body["docs"]
        return [t for t in map(to_ticket, docs) if t is not None], len(docs), body.get("total")

    def _pages(self, event: str, params: dict[str, Any]) -> Iterator[list[Ticket]]:
        """Every page, the next one fetched and parsed while the caller stores this one."""
        with cf.ThreadPoolExecutor(1, thread_name_prefix="vivenu-page") as pool:
            skip = 0
            ahead = pool.submit(self._page, event, params, skip)
            while True:
                tickets, count, total = ahead.result()
                skip += count
                more = count > 0 and not (isinstance(total, int) and skip >= total)
                if more:
                    ahead = pool.submit(self._page, event, params, skip)
                if tickets:
                    yield tickets
                if not more:
                    return

    def full_sync(self) -> Iterator[list[Ticket]]:
        for event in self.events():
            yield from self._pages(event, {})

    def delta_sync(self, cursor: str | None) -> Delta:
        now = time.time()
        since = parse_iso(cursor) if cursor else None
        start = (since if since is not None else now - 3600) - self.settings.overlap_s
        window = {"from": iso(start), "until": iso(now + 1)}
        events = self.events()

        def pages() -> Iterator[list[Ticket]]:
            for event in events:
                yield from self._pages(event, window)
        return Delta(pages(), iso(now) or "")

    # -- scan path -------------------------------------------------------
    def online_check(self, barcode: str) -> OnlineAnswer:
        params = {"eventId": self.settings.events[0]} if len(self.settings.events) == 1 else None
        status, body = self.http.request(
            "GET", f"tickets/{quote(barcode, safe='')}", params=params,
            timeout=self.settings.online_deadline_s, allow=(404,))
        if status == 404 or not isinstance(body, dict):
            return OnlineAnswer(None)
        return OnlineAnswer(to_ticket(body))

    # -- drain -----------------------------------------------------------
    def upload(self, scans: Sequence[UploadScan]) -> UploadResult:
        """POST ``scans/{eventId}``, one request per event; all-or-nothing per event."""
        result = UploadResult()
        by_event: dict[str, list[UploadScan]] = {}
        for s in scans:
            by_event.setdefault(s.event or "", []).append(s)
        for event, group in by_event.items():
            if not event:
                for s in group:
                    result.rejected[s.nonce] = "no event id: vivenu cannot file it"
                continue
            body = [{**({"ticketId": s.ticket_id} if s.ticket_id else {}), "barcode": s.barcode,
                     "scanned_at": iso(s.at) or "", "type": "OK" if s.granted else "FAIL",
                     "direction": "OUT" if s.direction == "out" else "IN"} for s in group]
            self.http.request("POST", f"scans/{quote(event, safe='')}", json_body=body,
                              ok=(200, 201))
            result.confirmed.extend(s.nonce for s in group)
        return result
