"""What a vivenu ticket document means to this device: pages decoded, rows and tickets made.

Every full sync reads the device's settings (``GET /me``, :class:`Device`)
afresh, and they shape every ticket:

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
The HTTP side (paging, sync, online check, upload) is
:mod:`turnstiled.backends.vivenu`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from turnstiled.backends.base import Rows
from turnstiled.cache_tables import ZONE_SEP, encode_zones
from turnstiled.rules import ZONES_UNKNOWN, Ticket

NAME = "vivenu"
STATUS = {"VALID": "valid", "INVALID": "invalid", "DETAILSREQUIRED": "invalid",
          "RESERVED": "invalid", "BLANK": "invalid"}


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


def stamps(docs: list[Any]) -> list[str | None]:
    """Each document's ``updatedAt`` as sent (vivenu's one ISO format orders as text)."""
    if docs and type(docs[0]) is _Doc:  # decode_page types all of a page's documents or none
        return [d.updatedAt or d.createdAt for d in docs]
    out: list[str | None] = []
    for doc in docs:
        value = doc.get("updatedAt") or doc.get("createdAt") if isinstance(doc, dict) else None
        out.append(value if isinstance(value, str) else None)
    return out
