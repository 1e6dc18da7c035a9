"""vivenu Access Control API (``/api/accessusers``): sync, online check, scan upload.

Lists are paged by value, not by position (:mod:`turnstiled.backends.window`):
each request asks ``from`` the last ``updatedAt`` read and skips only the
tickets stamped exactly then, so a ticket edited while the gate pages (it
moves to the end of the list) cannot push another one past the gate. Every
sync remembers the cloud's time it started (its ``Date`` header); the next
delta asks ``from`` a little before it. Every full sync also reads the
event list (unless ``events`` is configured) and the device's settings
(``GET /me``) afresh, and the settings shape every ticket:

- ``scanConfig.enableMultiCheckin`` with check-out scans enabled: a ticket
  may come in again after it went out (``reentry``); otherwise ``single``;
- ``scanConfig.events[].allowAllTicketTypes`` / ``allowedTicketTypeIds``:
  other ticket types are ``invalid`` at this device;
- ``scanConfig.scanZoneId``: a ticket whose ``entry`` lacks that zone is
  ``wrong_zone``; one whose answer has no ``entry`` at all has unknown
  zones, which no zone-restricted gate admits.

``INVALID`` and ``DETAILSREQUIRED`` tickets are kept (as ``invalid``) so
they are denied with a reason instead of "unknown".

Ticket pages are decoded by msgspec into structs of only the fields the
gate keeps (four times faster than ``json.loads`` of the whole document)
and handed to the cache as plain :class:`Rows`, not a Ticket each; an
answer of another shape is read by ``json.loads`` and judged as before.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec

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
from turnstiled.backends.window import Anchor, keyset_step, window_start
from turnstiled.cache_tables import ZONE_SEP, encode_zones
from turnstiled.rules import ZONES_UNKNOWN, Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import iso, parse_iso

logger = logging.getLogger(__name__)

NAME = "vivenu"
ROW_ERROR = re.compile(r"HTTP 400 \[(\d+)\] ")  # a batch refusal naming its scan's index
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


@dataclass(frozen=True)
class Device:
    """What ``GET /me`` says this device may admit."""

    entries: str = "single"
    scan_zone: str | None = None
    types: dict[str, frozenset[str]] = field(default_factory=dict)  # event -> allowed types
    sync_interval: float | None = None

    @classmethod
    def from_me(cls, me: Any) -> Device:
        ds = me.get("deviceSettings") if isinstance(me, dict) else None
        ds = ds if isinstance(ds, dict) else {}
        scan = ds.get("scanConfig") if isinstance(ds.get("scanConfig"), dict) else {}
        kinds = scan.get("scanTypes") if isinstance(scan.get("scanTypes"), dict) else {}
        multi = bool(scan.get("enableMultiCheckin")) and bool(kinds.get("checkout"))
        types: dict[str, frozenset[str]] = {}
        for ev in scan.get("events") or ():
            if isinstance(ev, dict) and ev.get("eventId") and not ev.get("allowAllTicketTypes"):
                types[str(ev["eventId"])] = frozenset(
                    str(t) for t in ev.get("allowedTicketTypeIds") or ())
        value = ds.get("ticketSyncInterval")
        return cls("reentry" if multi else "single", str(scan.get("scanZoneId") or "") or None,
                   types, float(min(900, max(5, value))) if isinstance(value, int | float)
                   else None)


class _Doc(msgspec.Struct, gc=False):
    """The fields of a vivenu ticket document the gate keeps; the rest are skipped unread.

    Typed as vivenu sends them, so that msgspec checks them as it decodes
    and the bulk rows (:func:`_bulk_rows`) need not; a page with anything
    else in them (a number for a name, a zone that is not text) is read by
    ``json.loads`` instead and each document judged by :func:`_fields`. Not
    tracked by the cycle collector (``gc=False``: a decoded document holds
    no cycle), which halves the cost of decoding a page.
    """

    barcode: str | None = None
    id: str | None = msgspec.field(default=None, name="_id")
    eventId: str | None = None
    status: str | None = None
    entry: list[str] | None = None
    name: str | None = None
    ticketName: str | None = None
    ticketTypeId: str | None = None
    updatedAt: str | None = None
    createdAt: str | None = None


class _Page(msgspec.Struct, gc=False):
    docs: list[_Doc]
    total: Any = None


_PAGE = msgspec.json.Decoder(_Page)


def decode_page(content: bytes) -> Any:
    """A ``tickets/v2`` answer: typed in the expected shape, else as json.loads reads it."""
    try:
        page = _PAGE.decode(content)
    except msgspec.ValidationError:  # another shape: the caller judges it as json.loads reads it
        return json.loads(content)
    return {"docs": page.docs, "total": page.total}


def _status(status: str, event: str, ttype: Any, zones: Sequence[str], device: Device) -> str:
    """A listed status as this device sees it: its ticket types and its scan zone."""
    if status == "valid":
        allowed = device.types.get(event)
        if allowed is not None and str(ttype) not in allowed:
            return "invalid"  # a ticket type this device does not admit
        if device.scan_zone and device.scan_zone not in zones:
            return "wrong_zone"
    return status


def _fields(doc: dict[str, Any] | _Doc,
            device: Device) -> tuple[str, str, str, tuple[str, ...], str, str] | None:
    """(barcode, event, status, zones, name, ticket_id) of a ticket document; None
    if it has no barcode. One reading for the bulk list and the online answer
    (:func:`_bulk_rows` reads typed documents the same way, faster)."""
    if type(doc) is _Doc:  # attributes, None where the answer has none
        barcode, entry, status, event, ttype, name, tid = (
            doc.barcode, doc.entry, doc.status, doc.eventId, doc.ticketTypeId,
            doc.name or doc.ticketName, doc.id)
    else:
        barcode, entry, status, event, ttype, name, tid = (
            doc.get("barcode"), doc.get("entry"), doc.get("status"), doc.get("eventId"),
            doc.get("ticketTypeId"), doc.get("name") or doc.get("ticketName"), doc.get("_id"))
    if not isinstance(barcode, str) or not barcode:
        return None
    # No `entry` in the answer (the single-ticket endpoint has none): zones unknown,
    # never "every zone".
    zones = tuple([str(z) for z in entry if z]) if isinstance(entry, list) else ZONES_UNKNOWN
    event = str(event or "")
    status = _status(STATUS.get(str(status or "").upper(), "invalid"), event, ttype, zones,
                     device)
    return barcode, event, status, zones, str(name or ""), str(tid or "")


_UNKNOWN_TEXT = encode_zones(ZONES_UNKNOWN)


def _bulk_rows(docs: list[_Doc], device: Device) -> list[tuple[str, str, str, str, str, str]]:
    """:func:`_fields` of typed documents, zones as the cache's text: the bulk list's rows.

    The same reading at a third of the cost (tests hold the two together):
    msgspec checked the types, so no ``str()`` or ``isinstance`` per field,
    no call per document, and the zones are joined as they are unless a
    name in them is empty.
    """
    rows = []
    add = rows.append
    join = ZONE_SEP.join
    statuses = STATUS
    rules = bool(device.types or device.scan_zone)
    for d in docs:
        barcode = d.barcode
        if not barcode:
            continue
        entry = d.entry
        if entry is None:
            zones = _UNKNOWN_TEXT
        elif "" in entry:
            entry = [z for z in entry if z]
            zones = join(entry)
        else:
            zones = join(entry)
        status = d.status
        status = statuses.get(status) or statuses.get(str(status or "").upper(), "invalid")
        event = d.eventId or ""
        if rules and status == "valid":
            status = _status(status, event, d.ticketTypeId,
                             ZONES_UNKNOWN if entry is None else entry, device)
        add((barcode, event, status, zones, d.name or d.ticketName or "", d.id or ""))
    return rows


def to_ticket(doc: dict[str, Any] | _Doc, device: Device | None = None) -> Ticket | None:
    """A vivenu ticket document as a cache ticket (None if it has no barcode)."""
    device = device or Device()
    f = _fields(doc, device)
    if f is None:
        return None
    barcode, event, status, zones, name, tid = f
    return Ticket(NAME, barcode, event, status, zones, None, None, device.entries, name, tid)


def to_rows(docs: list[Any], device: Device) -> Rows:
    """Ticket documents as one page of :class:`Rows` (the documents without a barcode left out)."""
    if docs and type(docs[0]) is _Doc:  # decode_page types all of a page's documents or none
        return Rows(NAME, device.entries, _bulk_rows(docs, device), encoded=True)
    return Rows(NAME, device.entries,
                [f for f in (_fields(d, device) for d in docs) if f is not None])


def _body(s: UploadScan) -> dict[str, str]:
    """One scan as a ``scans/{eventId}`` body holds it."""
    return {**({"ticketId": s.ticket_id} if s.ticket_id else {}), "barcode": s.barcode,
            "scanned_at": iso(s.at) or "", "type": "OK" if s.granted else "FAIL",
            "direction": "OUT" if s.direction == "out" else "IN"}


def _stamp(doc: Any) -> str | None:
    """A document's ``updatedAt`` as sent: vivenu's one ISO format orders as text."""
    if type(doc) is _Doc:
        return doc.updatedAt or doc.createdAt
    if isinstance(doc, dict):
        value = doc.get("updatedAt") or doc.get("createdAt")
        return value if isinstance(value, str) else None
    return None


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
        if docs and type(docs[0]) is _Doc:  # typed: text or None
            stamps = [d.updatedAt or d.createdAt for d in docs]
        else:
            stamps = [_stamp(d) for d in docs]
        anchor.seen(parse_iso(stamps[-1]) if stamps else None)  # ascending: the last is newest
        return to_rows(docs, self.device or Device()), stamps, body.get("total")

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
        by_event: dict[str, list[UploadScan]] = {}
        for s in scans:
            if s.event:
                by_event.setdefault(s.event, []).append(s)
        return {event: json_bytes([_body(s) for s in group]) for event, group in by_event.items()}

    def upload(self, scans: Sequence[UploadScan],
               prepared: dict[str, bytes] | None = None) -> UploadResult:
        """POST ``scans/{eventId}``, one request per event; all-or-nothing per event."""
        result = UploadResult()
        by_event: dict[str, list[UploadScan]] = {}
        for s in scans:
            by_event.setdefault(s.event or "", []).append(s)
        bodies = self.prepare_upload(scans) if prepared is None else prepared
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
