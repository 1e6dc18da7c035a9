"""vivenu Access Control API (``/api/accessusers``): sync, online check, scan upload.

Lists are paged by value, not by position (:mod:`turnstiled.backends.window`):
each request asks ``from`` the last ``updatedAt`` read and skips only the
tickets stamped exactly then, so a ticket edited while the gate pages (it
moves to the end of the list) cannot push another one past the gate. Every
sync remembers the cloud's time it started (its ``Date`` header); the next
delta asks ``from`` a little before it. Every full sync also reads
the event list (unless ``events`` is configured) and the device's settings
(``GET /me``) afresh; what they make of each ticket document, and how pages
are decoded, is :mod:`turnstiled.backends.vivenu_tickets`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from turnstiled.backends.base import (
    Backend,
    Capabilities,
    Delta,
    OnlineAnswer,
    Rejected,
    Rows,
    TransientError,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http, json_bytes
from turnstiled.backends.vivenu_tickets import (
    NAME,
    Device,
    decode_page,
    stamps,
    to_rows,
    to_ticket,
)
from turnstiled.backends.window import Anchor, keyset_step, window_start
from turnstiled.secret import Secret
from turnstiled.timeutil import iso, parse_iso

logger = logging.getLogger(__name__)

ROW_ERROR = re.compile(r"HTTP 400 \[(\d+)\] ")  # a batch refusal naming its scan's index


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


def _body(s: UploadScan) -> dict[str, str]:
    """One scan as a ``scans/{eventId}`` body holds it."""
    return {**({"ticketId": s.ticket_id} if s.ticket_id else {}), "barcode": s.barcode,
            "scanned_at": iso(s.at) or "", "type": "OK" if s.granted else "FAIL",
            "direction": "OUT" if s.direction == "out" else "IN"}


def _by_event(scans: Sequence[UploadScan]) -> dict[str, list[UploadScan]]:
    """*scans* by event id ("" for none), in the order each event's first scan comes."""
    by_event: dict[str, list[UploadScan]] = {}
    for s in scans:
        by_event.setdefault(s.event or "", []).append(s)
    return by_event


def _bodies(by_event: dict[str, list[UploadScan]]) -> dict[str, bytes]:
    """Per event id: the body of its ``scans/{eventId}`` POST, encoded (none without an id)."""
    return {event: json_bytes([_body(s) for s in group])
            for event, group in by_event.items() if event}


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
        self.device: Device | None = None

    def close(self) -> None:
        self.http.close()

    def status(self) -> dict[str, Any]:
        d = self.device
        return {} if d is None else {"events": self._events, "entries": d.entries,
                                     "scan_zone": d.scan_zone}

    # -- device settings -------------------------------------------------
    def refresh(self) -> Device:
        """Read the device's settings (``GET /me``) and, unless configured, its events."""
        _, me = self.http.request("GET", "me")
        self.device = Device.from_me(me)
        if not self.settings.events:
            _, body = self.http.request("GET", "events")
            if not isinstance(body, list):
                raise TransientError("vivenu events: expected a list")
            events = [str(e["_id"]) for e in body if isinstance(e, dict) and e.get("_id")]
            if events != self._events:
                logger.info("vivenu: %d events assigned to this device", len(events))
            self._events = events
        return self.device

    def sync_interval(self) -> float:
        """``sync_interval_s``, or the device's ``deviceSettings.ticketSyncInterval`` (5-900 s)."""
        if self.settings.sync_interval_s > 0:
            return self.settings.sync_interval_s
        device = self.device or self.refresh()
        return device.sync_interval or 10.0

    def events(self) -> list[str]:
        if self.settings.events:
            return list(self.settings.events)
        if self._events is None:
            self.refresh()
        return list(self._events or ())

    # -- sync ------------------------------------------------------------
    def _page(self, event: str, lo: str | None, skip: int,
              anchor: Anchor) -> tuple[Rows, list[str | None], Any]:
        """One page from *lo* (an ``updatedAt`` as vivenu writes it), skipping *skip*."""
        top = max(1, min(1000, self.settings.page_size))
        params: dict[str, Any] = {"top": top, "skip": skip}
        if lo is not None:
            params["from"] = lo
        _, body = self.http.request("GET", f"tickets/v2/{quote(event, safe='')}",
                                    params=params, decode=decode_page)
        if not isinstance(body, dict) or not isinstance(body.get("docs"), list):
            raise TransientError("vivenu tickets/v2: answer has no docs list")
        docs = body["docs"]
        times = stamps(docs)
        anchor.seen(parse_iso(times[-1]) if times else None)  # ascending: the last is newest
        return to_rows(docs, self.device or Device()), times, body.get("total")

    def _pages(self, event: str, lo: str | None, anchor: Anchor) -> Iterator[Rows]:
        """Every page from *lo* on, the next fetched while the caller stores this one."""
        top = max(1, min(1000, self.settings.page_size))
        with cf.ThreadPoolExecutor(1, thread_name_prefix="vivenu-page") as pool:
            skip = 0
            ahead = pool.submit(self._page, event, lo, skip, anchor)
            while True:
                tickets, stamps, total = ahead.result()
                more = len(stamps) >= top and not (isinstance(total, int)
                                                   and skip + len(stamps) >= total)
                if more:
                    step = keyset_step(stamps, lo, skip)
                    # Out of order (not what vivenu sends): fall back to positions.
                    lo, skip = step if step is not None else (lo, skip + len(stamps))
                    ahead = pool.submit(self._page, event, lo, skip, anchor)
                if tickets:
                    yield tickets
                if not more:
                    return

    def _all(self, lo: str | None, anchor: Anchor, events: list[str]) -> Iterator[Rows]:
        for event in events:
            try:
                yield from self._pages(event, lo, anchor)
            except Rejected as exc:
                if exc.status != 400 or self.settings.events:
                    raise
                self.refresh()
                if event in (self._events or ()):
                    raise
                # The event was taken from this device since the list was read:
                # it must not freeze every other event's sync.
                logger.warning("vivenu: an event is no longer assigned to this device; "
                               "its tickets go at this full sync")

    def full_sync(self) -> Delta:
        anchor = Anchor(self.http.clock)

        def pages() -> Iterator[Rows]:
            self.refresh()
            yield from self._all(None, anchor, self.events())
        return Delta(pages(), anchor)

    def delta_sync(self, cursor: str) -> Delta:
        anchor = Anchor(self.http.clock, cursor)
        lo = iso(window_start(cursor, self.settings.overlap_s))
        if self.device is None:  # after a restart: the device's settings shape tickets too
            self.refresh()
        events = self.events()
        return Delta(self._all(lo, anchor, events), anchor)

    # -- scan path -------------------------------------------------------
    def online_check(self, barcode: str) -> OnlineAnswer:
        params = {"eventId": self.settings.events[0]} if len(self.settings.events) == 1 else None
        status, body = self.http.request(
            "GET", f"tickets/{quote(barcode, safe='')}", params=params,
            timeout=self.settings.online_deadline_s, allow=(404,))
        if status == 404 or not isinstance(body, dict):
            return OnlineAnswer(None)
        return OnlineAnswer(to_ticket(body, self.device))

    # -- drain -----------------------------------------------------------
    def prepare_upload(self, scans: Sequence[UploadScan]) -> dict[str, bytes]:
        """Per event id: the body of its ``scans/{eventId}`` POST, encoded."""
        return _bodies(_by_event(scans))

    def upload(self, scans: Sequence[UploadScan],
               prepared: dict[str, bytes] | None = None) -> UploadResult:
        """POST ``scans/{eventId}``, one request per event; all-or-nothing per event."""
        result = UploadResult()
        by_event = _by_event(scans)
        bodies = prepared if prepared is not None else _bodies(by_event)
        for event, group in by_event.items():
            if not event:
                for s in group:
                    result.rejected[s.nonce] = "no event id: vivenu cannot file it"
                continue
            try:
                self.http.request("POST", f"scans/{quote(event, safe='')}",
                                  json_bytes=bodies[event], ok=(200, 201))
            except Rejected as exc:
                # "[i] what is wrong": the cloud names one scan and took none of the
                # request; the others go back to pending. Without an index the
                # refusal names no scan: the drain tells row from request.
                named = ROW_ERROR.search(str(exc))
                if named is None or int(named[1]) >= len(group) or exc.status != 400:
                    raise
                result.rejected[group[int(named[1])].nonce] = str(exc)
                return result
            result.confirmed.extend(s.nonce for s in group)
        return result
