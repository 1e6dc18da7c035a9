"""Emulator of Octopus's Tickets module (``/rest/<version>/Location/{LocationId}/...``).

``Authorization: Bearer <API_KEY>`` (401 with an explanation when missing,
wrong, or not valid for the Location). ``GET services`` lists the
validation methods (``ttf`` "tiempo corrido": the clock runs for ``expTime``
seconds from first use; ``maxUsers`` people per code); ``GET tickets`` lists
the issued tickets and ``POST tickets`` issues one (JSON or form fields
``service`` (required), ``start_time``, ``valid_until``, ``format``,
``userId``, ``numusers``). Lists answer ``{data, pagination: {offset, limit,
rows, pages, currentPage}}`` and take ``offset``/``limit`` (1..5000, default
5000).

The public docs give no ticket fields, so a ticket is the create
parameters plus ``id``, an access ``code``, ``status`` (``active`` or
``cancelled``), ``created`` and ``updated``. A ticket created without
``valid_until`` stays valid for its service's ``validUntil`` seconds.
Seeded tickets include expired ones and ones that start in the future.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import parse_qs

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.wire import HttpError, Request

logger = logging.getLogger(__name__)

VERSION = "v1"
KINDS = {"ttf": ("Tiempo corrido", True, False, False, False),
         "tol": ("Tiempo online", False, True, False, False),
         "ttl": ("Tiempo hasta limite", False, False, True, False)}
FORMATS = ("print", "email")


def _service(sid: int, loc: str, name: str, type_id: str, exp: int, users: int) -> dict:
    desc, tf, ot, tl, lt = KINDS[type_id]
    return {"id": sid, "LocationId": loc, "typeId": type_id, "name": name, "price": 0,
            "status": 1, "onlineTime": 0, "expTime": exp, "tpv": 0, "pms": 0,
            "showLogin": 1, "simDevices": max(users, 1), "maxUsers": users,
            "loginMethod": "general", "download": 0, "upload": 0, "downrate": 0,
            "uprate": 0, "dailyLimit": 0, "validUntil": 15552000, "vip": 0,
            "validateEmail": 0, "deleted": 0, "withRegistration": 0, "macCaching": 0,
            "issueOrder": 0, "type": {"id": type_id, "description": desc, "timetofinish": tf,
                                      "onlinetime": ot, "timetolimit": tl,
                                      "limittraffic": lt}}


def _unauthorized(message: str) -> HttpError:
    return HttpError(401, {"error": "Unauthorized", "message": message})


class OctopusState(TicketState):
    """One Location's services and issued tickets."""

    key_field = "id"
    zone_field = "service"
    int_keys = True
    add_options = ("service",)

    def __init__(self, emu: OctopusEmulator, n: int) -> None:
        super().__init__(emu.lock, emu.now)
        r = emu.rng
        self.rng = r
        self.location = f"28{seed.code(r, 3, '0123456789')}004"
        self.services = [
            _service(59219, self.location, "Ticket - 1 Hora", "ttf", 3600, 1),
            _service(59220, self.location, "Ticket - Dia", "ttf", 86400, 1),
            _service(59221, self.location, "Grupo 4 personas - 2 Horas", "ttf", 7200, 4)]
        self.issued: list[dict[str, Any]] = []
        self.by_id: dict[int, dict[str, Any]] = {}
        self._codes: set[str] = set()
        now = emu.now
        for i in range(n):
            created = seed.spread(now, i, n, 7 * seed.DAY)
            start, until = created, now + 30 * seed.DAY
            if i >= 3 and i % 9 == 7:  # sold weeks ago, never used in time: expired
                start, until = now - 40 * seed.DAY + i, now - 10 * seed.DAY
            elif i >= 3 and i % 13 == 8:  # a pass for next week
                start, until = now + 7 * seed.DAY, now + 8 * seed.DAY
            t = self.make(self.services[i % 3]["id"], start, until, f"guest{i:05d}", None,
                          created)
            if i >= 3 and r.random() < 0.04:
                t["status"] = "cancelled"

    def make(self, service: int, start: float, until: float | None, user: str | None,
             numusers: int | None, created: float, fmt: str | None = None
             ) -> dict[str, Any]:
        svc = next(s for s in self.services if s["id"] == service)
        code = seed.unique(lambda: seed.octopus_code(self.rng), self._codes)
        self._codes.add(code)
        t = {"id": 800000 + len(self.issued), "code": code, "service": service,
             "serviceName": svc["name"], "LocationId": self.location,
             "start_time": seed.iso_s(start),
             "valid_until": seed.iso_s(until if until is not None else start + svc["validUntil"]),
             "userId": user or "", "numusers": numusers or svc["maxUsers"],
             "format": fmt or "print", "status": "active",
             "created": seed.iso_s(created), "updated": seed.iso_s(created)}
        self.issued.append(t)
        self.by_id[t["id"]] = t
        return t

    def rows(self) -> Any:
        return self.issued

    def row(self, key: Any) -> dict[str, Any]:
        return self.by_id[key]

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return dict(row)

    def create(self, n: int, service: int | str | None = None) -> list[dict[str, Any]]:
        sid = int(service) if service is not None else self.services[0]["id"]
        if not any(s["id"] == sid for s in self.services):
            raise ValueError(f"no service {service!r}")
        out = []
        for _ in range(n):
            t = self.stamp()
            out.append(self.make(sid, t, None, None, None, t))
        return out

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        row.update(changes, updated=seed.iso_s(math.ceil(stamp)))

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": "cancelled"}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        svc = next((s for s in self.services if str(s["id"]) == str(zone)), None)
        if svc is None:
            raise ValueError(f"no service {zone!r}")
        return {"service": svc["id"], "serviceName": svc["name"], "numusers": svc["maxUsers"]}


class OctopusEmulator(Emulator[OctopusState]):
    """One Octopus Location with its services and tickets."""

    name = "octopus"
    base_path = f"/rest/{VERSION}"

    def setup(self, tickets: int) -> OctopusState:
        self.api_key = seed.code(self.rng, 40).lower()
        state = OctopusState(self, tickets)
        base = f"{self.base_path}/Location/{{loc}}"
        self.route("GET", f"{base}/services", self._list_services)
        self.route("GET", f"{base}/tickets", self._list_tickets)
        self.route("POST", f"{base}/tickets", self._post_ticket)
        return state

    @property
    def location(self) -> str:
        return self.state.location

    @property
    def services(self) -> list[dict[str, Any]]:
        return self.state.services

    @property
    def tickets(self) -> list[dict[str, Any]]:
        """The issued tickets, oldest first (live; change them through ``state``)."""
        return self.state.issued

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "location_id": self.location, "version": VERSION}

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}", "message": "The request could not be processed"}

    def _auth(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        if not auth:
            raise _unauthorized("Authorization header with a Bearer API key is required")
        if auth != f"Bearer {self.api_key}":
            raise _unauthorized("The API key is not valid")
        if req.params.get("loc") != self.location:
            raise _unauthorized("The API key is not valid for this Location")

    def _page(self, req: Request, rows: list[dict[str, Any]]) -> Any:
        try:
            offset = int(req.query.get("offset") or 0)
            limit = int(req.query.get("limit") or 5000)
        except ValueError:
            raise HttpError(400, {"error": "offset and limit must be integers"}) from None
        if offset < 0 or not 1 <= limit <= 5000:
            raise HttpError(400, {"error": "offset must be >= 0 and limit 1..5000"})
        return {"data": rows[offset:offset + limit], "pagination": {
            "offset": offset, "limit": limit, "rows": len(rows),
            "pages": max(1, math.ceil(len(rows) / limit)), "currentPage": offset // limit + 1}}

    def _list_services(self, req: Request) -> Any:
        self._auth(req)
        return self._page(req, self.services)

    def _list_tickets(self, req: Request) -> Any:
        self._auth(req)
        page = self._page(req, self.state.tickets)
        self.churn()
        return page

    def _post_ticket(self, req: Request) -> Any:
        self._auth(req)
        body = req.body if isinstance(req.body, dict) else {}
        if not body and req.raw_body:
            body = {k: v[-1] for k, v in parse_qs(req.raw_body.decode("utf-8", "replace")).items()}
        if not body.get("service"):
            raise HttpError(400, {"error": "service is required"})
        state = self.state
        try:
            service = int(body["service"])
            if not any(s["id"] == service for s in self.services):
                raise ValueError
            now = self.cloud_time()
            start = seed.parse_iso(body["start_time"]) if body.get("start_time") else now
            until = seed.parse_iso(body["valid_until"]) if body.get("valid_until") else None
            users = int(body["numusers"]) if body.get("numusers") not in (None, "") else None
            if (users is not None and users < 1) or (until is not None and until < start):
                raise ValueError
        except (ValueError, TypeError):
            raise HttpError(400, {"error": "bad service, dates or numusers"}) from None
        fmt = body.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise HttpError(400, {"error": "format must be print or email"})
        user = str(body.get("userId") or "")[:64]
        with self.lock:
            ticket = state.make(service, start, until, user, users, state.stamp(), fmt)
        self.record("ticket_created", id=ticket["id"], code=ticket["code"], service=service)
        return {"data": dict(ticket)}
