"""Emulator of vivenu's Access Control API (``/api/accessusers``).

Follows ``vivenu-accessusers-openapi.json``: header ``token`` (401
``{statusCode, error, message}`` when missing or wrong); ``events``, ``me``,
``seller``; tickets v2 ``tickets/v2/{eventId}`` and v1 ``{eventId}/tickets``
(``top`` 1..1000, default 25; ``skip``; ``from``/``until`` on created/updated,
``from`` inclusive, ``until`` exclusive; ``{docs, total}``); one ticket by
barcode (``?eventId=``, 404 if none); the online scan ``tickets/{barcode}/scan``
(``{access, ticket}``); ``POST scans/{eventId}`` (a list of scans, all or
nothing, ``{"status": "OK"}``).

Quirks kept: list statuses are ``VALID | INVALID | DETAILSREQUIRED``; the
single-ticket answer only knows ``VALID | INVALID`` (anything else shows as
``INVALID``); a few ``RESERVED``/``BLANK`` tickets are in no list but answer
the online scan (``DENIED``). An online scan of a ticket already checked in
is ``DENIED`` unless the device allows multi check-in; uploaded ``OK``
scans check tickets in and out too. The single-ticket answer has no
``entry`` (zones), as in the OpenAPI schema.

Device settings (``GET /me``) come from the constructor: ``multi_checkin``,
``checkout``, ``scan_zone`` and ``ticket_types`` (allowed ticket type ids,
None for all). ``emu.assign(event_id, False)`` takes an event from the
device (its list answers 400), ``emu.assign(event_id)`` gives it back.

Tickets are kept per event sorted by (updatedAt, _id) with their JSON
pre-serialised, so a page is a slice and a ``from``/``until`` window a bisect:
100,000 tickets page in well under a second.
"""

from __future__ import annotations

import bisect
import json
import logging
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.wire import REASONS, HttpError, Request

logger = logging.getLogger(__name__)

BASE = "/api/accessusers"
LISTED_STATUSES = ("VALID", "INVALID", "DETAILSREQUIRED")
LISTED = seed.weighted(tuple(zip(LISTED_STATUSES, (92.0, 5.0, 3.0), strict=True)))
TICKET_TYPES = (("Standard", ["GA"]), ("VIP", ["GA", "VIP"]), ("Crew", ["BACKSTAGE"]),
                ("North stand", ["NORTH"]))
EVENTS = (("Spring Festival Day 1", 2), ("Spring Festival Day 2", 3), ("Club Night", 9))
SYNC_INTERVALS = (5, 15, 30, 60, 300, 600, 900)
SCAN_FIELDS = ("_id", "barcode", "name", "status", "ticketTypeId", "ticketName", "categoryRef",
               "eventId", "sellerId", "createdAt", "updatedAt")
# GET tickets/{barcode} (GET_Accessusers_GetTicketWithBarcode_200_response): no `entry`.
ONE_FIELDS = (*SCAN_FIELDS, "priceCategoryId", "priceCategory")


def _err(status: int, error: str, message: str) -> HttpError:
    return HttpError(status, {"statusCode": status, "error": error, "message": message})


def _ms(text: str, name: str) -> int:
    try:
        return seed.parse_iso_ms(text)
    except ValueError:
        raise _err(400, "Bad Request", f"{name} must be an ISO timestamp") from None


class VivenuState(TicketState):
    """A seller's events and tickets, indexed per event by (updatedAt, _id)."""

    key_field = "barcode"
    zone_field = "zones"
    add_options = ("event",)

    def __init__(self, emu: VivenuEmulator, n: int) -> None:
        super().__init__(emu.lock, emu.now)
        r = emu.rng
        self._added = seed.rng(emu.name, emu.seed, "added")  # tickets made after the start
        self.seller = seed.hexid(r)
        now = int(emu.now)
        self.events = [{"_id": seed.hexid(r), "name": name,
                        "start": seed.iso_ms((now + days * seed.DAY) * 1000),
                        "end": seed.iso_ms((now + days * seed.DAY + 8 * 3600) * 1000)}
                       for name, days in EVENTS]
        self.docs: dict[str, dict[str, Any]] = {}  # listed tickets by barcode
        self.unlisted: dict[str, dict[str, Any]] = {}  # RESERVED / BLANK: scan only
        self.checked_in: dict[str, int] = {}
        self._ms: dict[str, int] = {}
        self._json: dict[str, bytes] = {}
        self._index: dict[str, list[tuple[int, str, str]]] = {e["_id"]: [] for e in self.events}
        now_ms = round(emu.now * 1000)
        for i in range(n):
            created = round(seed.spread(emu.now, i, n, 3 * seed.DAY) * 1000)
            # The first ticket of each event is always VALID: a known-good ticket to try.
            status = "VALID" if i < len(self.events) else LISTED(r)
            doc = self._make(r, i, created, status)
            updated = created
            if r.random() < 0.1:  # changed since it was sold, before now
                updated = max(created, min(created + r.randrange(1, 3600_000), now_ms - 1))
                doc["updatedAt"] = seed.iso_ms(updated)
            self._store(doc, updated)
        for e in self._index.values():
            e.sort()
        for i in range(max(2, n // 500)):
            doc = self._make(r, n + i, now_ms - 60_000,
                             ("RESERVED", "BLANK")[i % 2])
            self.unlisted[doc["barcode"]] = doc
        if self.docs:
            self._last_change = max(self._ms.values()) / 1000

    def _make(self, r: Any, i: int, created_ms: int, status: str,
              event: str | None = None) -> dict[str, Any]:
        ev = event or self.events[i % len(self.events)]["_id"]
        ttype, entry = TICKET_TYPES[i % len(TICKET_TYPES)]
        first, last = seed.person(r)
        barcode = seed.unique(lambda: seed.vivenu_barcode(r), self.docs, self.unlisted)
        doc: dict[str, Any] = {
            "_id": seed.hexid(r), "barcode": barcode, "name": f"{first} {last}",
            "ticketTypeId": f"tt-{ttype.lower().replace(' ', '-')}", "ticketName": ttype,
            "priceCategoryId": "pc-regular", "eventId": ev, "sellerId": self.seller,
            "createdAt": seed.iso_ms(created_ms), "updatedAt": seed.iso_ms(created_ms),
            "priceCategory": {"categoryId": "pc-regular", "description": "Regular"},
            "status": status, "entry": list(entry)}
        if ttype == "North stand":
            doc.update(categoryRef=seed.uuid(r), area="North", row=str(1 + i % 30),
                       seat=str(1 + (i // 30) % 40))
        if r.random() < 0.05:
            doc.update(discountId="pc-student", discount="Student")
        return doc

    def _store(self, doc: dict[str, Any], ms: int | None = None, index: bool = False) -> None:
        code = doc["barcode"]
        ms = seed.parse_iso_ms(doc["updatedAt"]) if ms is None else ms
        self.docs[code] = doc
        self._ms[code] = ms
        self._json[code] = json.dumps(doc, ensure_ascii=False).encode()
        key = (ms, doc["_id"], code)
        if index:
            bisect.insort(self._index[doc["eventId"]], key)
        else:
            self._index[doc["eventId"]].append(key)

    # -- TicketState -----------------------------------------------------------
    def rows(self) -> Any:
        return self.docs.values()

    def row(self, key: Any) -> dict[str, Any]:
        return self.docs[key]

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "entry": list(row["entry"])}

    def create(self, n: int, event: str | None = None) -> list[dict[str, Any]]:
        if event is not None and event not in self._index:
            raise ValueError(f"no event {event!r}")
        out = []
        for _ in range(n):
            ms = round(self.stamp() * 1000)
            doc = self._make(self._added, len(self.docs), ms, "VALID", event)
            self._store(doc, ms, index=True)
            out.append(doc)
        return out

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        code = row["barcode"]
        if changes.get("barcode", code) != code or changes.get("eventId", row["eventId"]) \
                != row["eventId"]:
            raise ValueError("barcode and eventId cannot change")
        if changes.get("status", "VALID") not in LISTED_STATUSES or not isinstance(
                changes.get("entry", []), list):
            raise ValueError(f"status must be one of {', '.join(LISTED_STATUSES)}, entry a list")
        idx = self._index[row["eventId"]]
        del idx[bisect.bisect_left(idx, (self._ms[code], row["_id"], code))]
        ms = round(stamp * 1000)
        row.update(changes, updatedAt=seed.iso_ms(ms))
        self._store(row, ms, index=True)

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": "INVALID"}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        return {"entry": [str(z) for z in zone] if isinstance(zone, list | tuple)
                else [str(zone)]}

    # -- queries ---------------------------------------------------------------
    def first_listed(self, n: int, scope: Any = None) -> list[str]:
        """Barcodes of the *n* least recently changed tickets of the event *scope*."""
        with self.lock:
            return [c for _, _, c in self._index[scope][:n]]

    def page(self, event: str, top: int, skip: int, lo: int | None, hi: int | None
             ) -> tuple[list[bytes], int]:
        """Pre-serialised docs of one page of *event*'s [lo, hi) window, and its size."""
        with self.lock:
            idx = self._index[event]
            a = 0 if lo is None else bisect.bisect_left(idx, (lo,))
            b = len(idx) if hi is None else bisect.bisect_left(idx, (hi,))
            b = max(a, b)
            rows = idx[a + skip:min(b, a + skip + top)]
            return [self._json[c] for _, _, c in rows], b - a


class VivenuEmulator(Emulator[VivenuState]):
    """vivenu with one device token, a seller, three events and their tickets."""

    name = "vivenu"
    base_path = BASE

    def __init__(self, *, sync_interval: int = 15, multi_checkin: bool = False,
                 scan_zone: str | None = None, checkout: bool = False,
                 ticket_types: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        if sync_interval not in SYNC_INTERVALS:
            raise ValueError(f"sync_interval must be one of {SYNC_INTERVALS}")
        self.sync_interval = sync_interval
        self.multi_checkin = multi_checkin
        self.scan_zone = scan_zone
        self.checkout = checkout
        self.ticket_types = ticket_types
        self.unassigned: set[str] = set()
        super().__init__(**kwargs)

    def setup(self, tickets: int) -> VivenuState:
        r = self.rng
        self.token = "vv-" + seed.code(r, 24).lower()
        self.device_id = seed.hexid(r)
        state = VivenuState(self, tickets)
        for path, fn in (("events", self._events), ("me", self._me), ("seller", self._seller),
                         ("tickets/v2/{eventId}", self._tickets),
                         ("{eventId}/tickets", self._tickets),
                         ("tickets/{barcode}", self._ticket)):
            self.route("GET", f"{BASE}/{path}", fn)
        self.route("POST", f"{BASE}/tickets/{{barcode}}/scan", self._scan_one)
        self.route("POST", f"{BASE}/scans/{{eventId}}", self._scans)
        return state

    @property
    def tickets(self) -> dict[str, dict[str, Any]]:
        """The listed tickets by barcode (live; change them through ``state``)."""
        return self.state.docs

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events assigned to this device."""
        return [e for e in self.state.events
                if e["_id"] not in self.unassigned]

    def assign(self, event: str, on: bool = True) -> None:
        """Give the device *event* (or take it away: its ticket list then answers 400)."""
        with self.lock:
            (self.unassigned.discard if on else self.unassigned.add)(event)

    @property
    def credentials(self) -> dict[str, str]:
        return {"token": self.token, "event_ids": ",".join(e["_id"] for e in self.events)}

    def error_body(self, status: int) -> Any:
        name = REASONS.get(status, "Error")
        return {"statusCode": status, "error": name, "message": name}

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        return 404, {"statusCode": 404, "error": "Not Found",
                     "message": f"Cannot {req.method} {req.path}"}, {}

    # -- routes ------------------------------------------------------------
    def _auth(self, req: Request) -> VivenuState:
        token = req.headers.get("token")
        if not token:
            raise _err(401, "Unauthorized", "No token provided")
        if token != self.token:
            raise _err(401, "Unauthorized", "Invalid token")
        return self.state

    def _event(self, req: Request) -> str:
        event = req.params["eventId"]
        if event not in {e["_id"] for e in self.events}:
            raise _err(400, "Bad Request", "Event not accessible for this device")
        return event

    def _events(self, req: Request) -> Any:
        self._auth(req)
        return self.events

    def _me(self, req: Request) -> Any:
        self._auth(req)
        types = {"allowAllTicketTypes": True} if self.ticket_types is None else {
            "allowAllTicketTypes": False, "allowedTicketTypeIds": list(self.ticket_types)}
        scan: dict[str, Any] = {
            "mode": "default", "events": [{"eventId": e["_id"], **types} for e in self.events],
            "scanTypes": {"checkin": True, "checkout": self.checkout},
            "enableMultiCheckin": self.multi_checkin, "checkTimeslots": False}
        if self.scan_zone:
            scan["scanZoneId"] = self.scan_zone
        return {"_id": self.device_id, "sellerId": self.state.seller,
                "name": "Gate emulator",
                "deviceSettings": {"accessMode": "full", "scanConfig": scan,
                                   "enableSoundFeedback": True, "scanRevealInterval": 3,
                                   "ticketSyncInterval": self.sync_interval},
                "accessControlSettings": {"includeDetailsRequiredTickets": True}}

    def _seller(self, req: Request) -> Any:
        return {"sellerId": self._auth(req).seller}

    def _tickets(self, req: Request) -> Any:
        state = self._auth(req)
        event = self._event(req)
        q = req.query
        try:
            top = float(q.get("top") or 25)
            skip = float(q.get("skip") or 0)
        except ValueError:
            raise _err(400, "Bad Request", "top and skip must be numbers") from None
        if not 1 <= top <= 1000 or skip < 0:
            raise _err(400, "Bad Request", "top must be between 1 and 1000, skip at least 0")
        lo = _ms(q["from"], "from") if q.get("from") else None
        hi = _ms(q["until"], "until") if q.get("until") else None
        page, total = state.page(event, int(top), int(skip), lo, hi)
        self.churn(event)
        return b'{"docs":[' + b",".join(page) + b'],"total":' + str(total).encode() + b"}"

    def _ticket(self, req: Request) -> Any:
        state = self._auth(req)
        code = req.params["barcode"]
        with self.lock:
            doc = state.docs.get(code) or state.unlisted.get(code)
            doc = dict(doc) if doc else None
        ev = req.query.get("eventId")
        if doc is None or (ev and doc["eventId"] != ev):
            raise _err(404, "Not Found", "Ticket not found")
        if doc["status"] != "VALID":
            doc["status"] = "INVALID"  # this endpoint's enum has only VALID | INVALID
        return {k: doc[k] for k in ONE_FIELDS if k in doc}

    def _scan_one(self, req: Request) -> Any:
        state = self._auth(req)
        code = req.params["barcode"]
        body = req.body if isinstance(req.body, dict) else {}
        out = str(body.get("direction", "IN")).upper() == "OUT"
        with self.lock:
            doc = state.docs.get(code) or state.unlisted.get(code)
            if doc is None or (body.get("eventId") and body["eventId"] != doc["eventId"]):
                raise _err(404, "Not Found", "Ticket not found")
            inside = state.checked_in.get(code, 0)
            ok = doc["status"] == "VALID" and (
                inside > 0 if out else self.multi_checkin or inside == 0)
            if ok:
                state.checked_in[code] = inside - 1 if out else inside + 1
            ticket = {k: doc[k] for k in SCAN_FIELDS if k in doc}
        access = "GRANTED" if ok else "DENIED"
        self.record("online_scan", barcode=code, eventId=doc["eventId"], access=access,
                    direction="OUT" if out else "IN")
        return {"access": access, "ticket": ticket}

    def _scans(self, req: Request) -> Any:
        state = self._auth(req)
        event = self._event(req)
        body = req.body
        if not isinstance(body, list):
            raise _err(400, "Bad Request", "body must be an array of scans")
        for i, s in enumerate(body):
            problem = _check_scan(s)
            if problem:
                raise _err(400, "Bad Request", f"[{i}] {problem}")
        with self.lock:
            for s in body:
                if s["type"] == "OK" and s["barcode"] in state.docs:
                    n = state.checked_in.get(s["barcode"], 0)
                    state.checked_in[s["barcode"]] = n + 1 if s["direction"] == "IN" \
                        else max(0, n - 1)
                self.record("scan", **{**s, "event": event})
        return {"status": "OK"}


def _check_scan(s: Any) -> str | None:
    """What is wrong with one uploaded scan (POST_Accessusers_CreateScans), or None."""
    if not isinstance(s, dict):
        return "scan must be an object"
    if not isinstance(s.get("barcode"), str) or len(s["barcode"]) < 8:
        return "barcode must be a string of at least 8 characters"
    if "ticketId" in s and not isinstance(s["ticketId"], str):
        return "ticketId must be a string"
    if s.get("type") not in ("OK", "FAIL"):
        return "type must be OK or FAIL"
    if s.get("direction") not in ("IN", "OUT"):
        return "direction must be IN or OUT"
    try:
        seed.parse_iso(s["scanned_at"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return "scanned_at must be an ISO timestamp"
    return None
