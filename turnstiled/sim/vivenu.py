"""Emulator of vivenu's Access Control API (``/api/accessusers``).

Follows ``vivenu-accessusers-openapi.json``: header ``token``; events,
me, seller, tickets v1 and v2 (``top`` 1..1000, ``skip``, ``from``/
``until`` on created/updated), one ticket by barcode, the online scan,
and ``POST scans/{eventId}``. Errors are ``{statusCode, error, message}``.
Pages are served from pre-serialised JSON so 100,000 tickets page fast.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request

BASE = "/api/accessusers"
STATUSES = ("VALID",) * 18 + ("INVALID", "DETAILSREQUIRED")
TICKET_TYPES = (("Standard", ["GA"]), ("VIP", ["GA", "VIP"]), ("Crew", ["BACKSTAGE"]),
                ("North stand", ["NORTH"]))


def _err(status: int, error: str, message: str) -> HttpError:
    return HttpError(status, {"statusCode": status, "error": error, "message": message})


def _parse_time(text: str, name: str) -> float:
    try:
        from datetime import datetime
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _err(400, "Bad Request", f"{name} must be an ISO timestamp") from None


class VivenuEmulator(Emulator):
    """vivenu with one device token, a seller, several events and their tickets."""

    name = "vivenu"
    base_path = BASE

    def setup(self, tickets: int) -> None:
        rng = self.rng
        self.token = "vv-" + seed.code(rng, 24).lower()
        self.seller = seed.hexid(rng)
        self.device_id = seed.hexid(rng)
        self.sync_interval = 15  # one of vivenu's choices: 5, 15, 30, 60, 300, 600, 900
        self.events = [{"_id": seed.hexid(rng), "name": n} for n in
                       ("Spring Festival Day 1", "Spring Festival Day 2", "Club Night")]
        self.tickets: dict[str, dict[str, Any]] = {}  # by barcode
        self._json: dict[str, bytes] = {}
        self._by_event: dict[str, list[str]] = {e["_id"]: [] for e in self.events}
        self._changed = threading.Event()
        t0 = seed.base_time()
        for i in range(tickets):
            self._new_ticket(rng, t0 + i * 3600 / max(1, tickets), i)
        for r, fn in (("GET", self._events), ("GET", self._me), ("GET", self._seller)):
            self.route(r, f"{BASE}/{fn.__name__.strip('_')}", fn)
        self.route("GET", f"{BASE}/tickets/v2/{{eventId}}", self._tickets)
        self.route("GET", f"{BASE}/{{eventId}}/tickets", self._tickets)
        self.route("GET", f"{BASE}/tickets/{{barcode}}", self._ticket)
        self.route("POST", f"{BASE}/tickets/{{barcode}}/scan", self._scan_one)
        self.route("POST", f"{BASE}/scans/{{eventId}}", self._scans)

    @property
    def credentials(self) -> dict[str, str]:
        return {"token": self.token, "event_ids": ",".join(e["_id"] for e in self.events)}

    def error_body(self, status: int) -> Any:
        names = {500: "Internal Server Error", 503: "Service Unavailable",
                 429: "Too Many Requests"}
        return {"statusCode": status, "error": names.get(status, "Error"),
                "message": names.get(status, "Error")}

    # -- state -------------------------------------------------------------
    def _new_ticket(self, rng: Any, created: float, i: int, event: str | None = None) -> dict:
        ev = event or self.events[i % len(self.events)]["_id"]
        ttype, entry = TICKET_TYPES[i % len(TICKET_TYPES)]
        first, last = seed.person(rng)
        doc = {
            "_id": seed.hexid(rng), "barcode": seed.code(rng, 12), "name": f"{first} {last}",
            "ticketTypeId": f"tt-{ttype.lower().replace(' ', '-')}", "ticketName": ttype,
            "priceCategoryId": "pc-regular", "eventId": ev, "sellerId": self.seller,
            "createdAt": seed.iso_ms(created), "updatedAt": seed.iso_ms(created),
            "priceCategory": {"categoryId": "pc-regular", "description": "Regular"},
            "status": rng.choice(STATUSES), "entry": list(entry),
        }
        self._store(doc, created)
        self._by_event[ev].append(doc["barcode"])
        return doc

    def _store(self, doc: dict[str, Any], updated: float) -> None:
        doc["_updated"] = updated
        self.tickets[doc["barcode"]] = doc
        self._json[doc["barcode"]] = json.dumps(
            {k: v for k, v in doc.items() if not k.startswith("_u")}).encode()

    def add_tickets(self, n: int, event: str | None = None) -> list[dict[str, Any]]:
        """New tickets created now (a delta sync must find them)."""
        with self.lock:
            now = time.time()
            return [self._public(self._new_ticket(self.rng, now, len(self.tickets) + k, event))
                    for k in range(n)]

    def update_ticket(self, barcode: str, **changes: Any) -> dict[str, Any]:
        """Change a ticket (status, entry, ...) and bump its updatedAt."""
        with self.lock:
            doc = dict(self.tickets[barcode])
            doc.update(changes)
            now = time.time()
            doc["updatedAt"] = seed.iso_ms(now)
            self._store(doc, now)
            return self._public(doc)

    def cancel(self, barcode: str) -> dict[str, Any]:
        return self.update_ticket(barcode, status="INVALID")

    def rezone(self, barcode: str, zones: list[str]) -> dict[str, Any]:
        return self.update_ticket(barcode, entry=list(zones))

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        action = body.get("action")
        if action == "add":
            return self.add_tickets(int(body.get("count", 1)), body.get("event"))
        if action == "cancel":
            return self.cancel(str(body["barcode"]))
        if action == "rezone":
            return self.rezone(str(body["barcode"]), list(body.get("zones", [])))
        if action == "list":
            return [self._public(d) for d in list(self.tickets.values())[: int(
                body.get("limit", 100))]]
        raise ValueError("action must be add, cancel, rezone or list")

    @staticmethod
    def _public(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if not k.startswith("_u")}

    # -- routes ------------------------------------------------------------
    def _auth(self, req: Request) -> None:
        token = req.headers.get("token")
        if not token:
            raise _err(401, "Unauthorized", "No token provided")
        if token != self.token:
            raise _err(401, "Unauthorized", "Invalid token")

    def _events(self, req: Request) -> Any:
        self._auth(req)
        return self.events

    def _me(self, req: Request) -> Any:
        self._auth(req)
        return {"_id": self.device_id, "sellerId": self.seller, "name": "Gate emulator",
                "deviceSettings": {
                    "accessMode": "full",
                    "scanConfig": {"mode": "default", "enableMultiCheckin": False, "events": [
                        {"eventId": e["_id"], "allowAllTicketTypes": True}
                        for e in self.events]},
                    "ticketSyncInterval": self.sync_interval},
                "accessControlSettings": {"includeDetailsRequiredTickets": True}}

    def _seller(self, req: Request) -> Any:
        self._auth(req)
        return {"sellerId": self.seller}

    def _tickets(self, req: Request) -> Any:
        self._auth(req)
        event = req.params["eventId"]
        if event not in self._by_event:
            raise _err(400, "Bad Request", "event not accessible")
        q = req.query
        try:
            top = float(q.get("top", 25))
            skip = float(q.get("skip", 0) or 0)
        except ValueError:
            raise _err(400, "Bad Request", "top and skip must be numbers") from None
        if not 1 <= top <= 1000 or skip < 0:
            raise _err(400, "Bad Request", "top must be between 1 and 1000, skip >= 0")
        top_i, skip_i = int(top), int(skip)
        with self.lock:
            codes = self._by_event[event]
            if "from" in q or "until" in q:
                lo = _parse_time(q["from"], "from") if q.get("from") else float("-inf")
                hi = _parse_time(q["until"], "until") if q.get("until") else float("inf")
                docs = sorted((self.tickets[c] for c in codes),
                              key=lambda d: (d["_updated"], d["_id"]))
                keys = [d["_updated"] for d in docs]
                window = docs[bisect.bisect_left(keys, lo):bisect.bisect_left(keys, hi)]
                codes = [d["barcode"] for d in window]
            page = [self._json[c] for c in codes[skip_i:skip_i + top_i]]
            total = len(codes)
        return b'{"docs":[' + b",".join(page) + b'],"total":' + str(total).encode() + b"}"

    def _ticket(self, req: Request) -> Any:
        self._auth(req)
        doc = self.tickets.get(req.params["barcode"])
        ev = req.query.get("eventId")
        if doc is None or (ev and doc["eventId"] != ev):
            raise _err(404, "Not Found", "Ticket not found")
        return self._json[doc["barcode"]]

    def _scan_one(self, req: Request) -> Any:
        self._auth(req)
        doc = self.tickets.get(req.params["barcode"])
        if doc is None:
            raise _err(404, "Not Found", "Ticket not found")
        access = "GRANTED" if doc["status"] == "VALID" else "DENIED"
        self.record("online_scan", barcode=doc["barcode"], access=access)
        pub = self._public(doc)
        return {"access": access, "ticket": {k: pub[k] for k in (
            "_id", "barcode", "name", "status", "ticketTypeId", "ticketName", "eventId",
            "sellerId", "createdAt", "updatedAt")}}

    def _scans(self, req: Request) -> Any:
        self._auth(req)
        event = req.params["eventId"]
        if event not in self._by_event:
            raise _err(400, "Bad Request", "event not accessible")
        body = req.body
        if not isinstance(body, list):
            raise _err(400, "Bad Request", "body must be an array of scans")
        for i, s in enumerate(body):
            problem = _check_scan(s)
            if problem:
                raise _err(400, "Bad Request", f"[{i}] {problem}")
        for s in body:
            self.record("scan", event=event, **s)
        return {"status": "OK"}


def _check_scan(s: Any) -> str | None:
    if not isinstance(s, dict):
        return "scan must be an object"
    if not isinstance(s.get("barcode"), str) or len(s["barcode"]) < 8:
        return "barcode must be a string of at least 8 characters"
    if s.get("type") not in ("OK", "FAIL"):
        return "type must be OK or FAIL"
    if s.get("direction") not in ("IN", "OUT"):
        return "direction must be IN or OUT"
    if not isinstance(s.get("scanned_at"), str):
        return "scanned_at must be an ISO timestamp"
    try:
        _parse_time(s["scanned_at"], "scanned_at")
    except HttpError:
        return "scanned_at must be an ISO timestamp"
    return None
