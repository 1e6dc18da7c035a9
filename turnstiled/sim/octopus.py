"""Emulator of Octopus's Tickets module (``/rest/<version>/Location/{LocationId}/...``).

Bearer auth (401 with an explanation when wrong). ``GET services`` lists
the validation methods (``ttf`` "tiempo corrido": the clock runs for
``expTime`` seconds from first use; ``maxUsers`` people per code);
``GET tickets`` lists issued tickets and ``POST tickets`` issues one.
Both lists answer ``{data, pagination: {offset, limit, rows, pages,
currentPage}}`` and take ``offset``/``limit``. The public docs give no
ticket fields, so a ticket is built from the create parameters plus an
``id`` and an access ``code``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request

VERSION = "v1"


def _service(sid: int, loc: str, name: str, type_id: str, exp: int, users: int) -> dict:
    kinds = {"ttf": ("Tiempo corrido", True, False, False, False),
             "tol": ("Tiempo online", False, True, False, False),
             "ttl": ("Tiempo hasta limite", False, False, True, False)}
    desc, tf, ot, tl, lt = kinds[type_id]
    return {"id": sid, "LocationId": loc, "typeId": type_id, "name": name, "price": 0,
            "status": 1, "onlineTime": 0, "expTime": exp, "tpv": 0, "pms": 0,
            "showLogin": 1, "simDevices": users, "maxUsers": users, "loginMethod": "general",
            "download": 0, "upload": 0, "downrate": 0, "uprate": 0, "dailyLimit": 0,
            "validUntil": 15552000, "vip": 0, "validateEmail": 0, "deleted": 0,
            "withRegistration": 0, "macCaching": 0, "issueOrder": 0,
            "type": {"id": type_id, "description": desc, "timetofinish": tf,
                     "onlinetime": ot, "timetolimit": tl, "limittraffic": lt}}


class OctopusEmulator(Emulator):
    """One Octopus Location with its services and tickets."""

    name = "octopus"
    base_path = f"/rest/{VERSION}"

    def setup(self, tickets: int) -> None:
        rng = self.rng
        self.api_key = seed.code(rng, 40).lower()
        self.location = f"28{seed.code(rng, 3, '0123456789')}004"
        self.services = [
            _service(59219, self.location, "Ticket - 1 Hora", "ttf", 3600, 1),
            _service(59220, self.location, "Ticket - Dia", "ttf", 86400, 1),
            _service(59221, self.location, "Grupo 4 personas - 2 Horas", "ttf", 7200, 4),
        ]
        self.tickets: list[dict[str, Any]] = []
        now = time.time()
        for i in range(tickets):
            self._create(self.services[i % 3]["id"], now - 3600, now + 86400 * 30,
                         f"user{i}", None)
        base = f"/rest/{VERSION}/Location/{{loc}}"
        self.route("GET", f"{base}/services", self._list_services)
        self.route("GET", f"{base}/tickets", self._list_tickets)
        self.route("POST", f"{base}/tickets", self._post_ticket)

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "location_id": self.location}

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}"}

    def _create(self, service: int, start: float, until: float, user: str | None,
                numusers: int | None) -> dict[str, Any]:
        svc = next(s for s in self.services if s["id"] == service)
        ticket = {"id": 800000 + len(self.tickets), "code": seed.code(
            self.rng, 8, "abcdefghjkmnpqrstuvwxyz23456789"), "service": service,
            "serviceName": svc["name"], "LocationId": self.location,
            "start_time": seed.iso_s(start), "valid_until": seed.iso_s(until),
            "userId": user or "", "numusers": numusers or svc["maxUsers"],
            "status": "active", "created": seed.iso_s(time.time())}
        self.tickets.append(ticket)
        return ticket

    def cancel(self, ticket_id: int) -> dict[str, Any]:
        with self.lock:
            t = next(t for t in self.tickets if t["id"] == ticket_id)
            t["status"] = "cancelled"
            return dict(t)

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        if body.get("action") == "cancel":
            return self.cancel(int(body["id"]))
        if body.get("action") == "add":
            now = time.time()
            with self.lock:
                return [self._create(self.services[0]["id"], now, now + 86400, None, None)
                        for _ in range(int(body.get("count", 1)))]
        raise ValueError("action must be add or cancel")

    def _auth(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            raise HttpError(401, {"error": "Unauthorized",
                                  "message": "API key missing or not valid for this Location"})
        if req.params.get("loc") != self.location:
            raise HttpError(401, {"error": "Unauthorized",
                                  "message": "API key not valid for this Location"})

    def _page(self, req: Request, rows: list[dict[str, Any]]) -> Any:
        try:
            offset = int(req.query.get("offset", 0))
            limit = int(req.query.get("limit", 5000))
        except ValueError:
            raise HttpError(400, {"error": "offset and limit must be integers"}) from None
        if offset < 0 or not 1 <= limit <= 5000:
            raise HttpError(400, {"error": "limit must be between 1 and 5000"})
        data = rows[offset:offset + limit]
        return {"data": data, "pagination": {
            "offset": offset, "limit": limit, "rows": len(rows),
            "pages": max(1, math.ceil(len(rows) / limit)), "currentPage": offset // limit + 1}}

    def _list_services(self, req: Request) -> Any:
        self._auth(req)
        return self._page(req, self.services)

    def _list_tickets(self, req: Request) -> Any:
        self._auth(req)
        with self.lock:
            return self._page(req, [dict(t) for t in self.tickets])

    def _post_ticket(self, req: Request) -> Any:
        self._auth(req)
        body = req.body if isinstance(req.body, dict) else {}
        from urllib.parse import parse_qs
        if not body and req.raw_body:
            body = {k: v[-1] for k, v in parse_qs(req.raw_body.decode()).items()}
        if not body.get("service"):
            raise HttpError(400, {"error": "service is required"})
        try:
            service = int(body["service"])
            if not any(s["id"] == service for s in self.services):
                raise ValueError
            start = datetime.fromisoformat(body["start_time"]).timestamp() \
                if body.get("start_time") else time.time()
            until = datetime.fromisoformat(body["valid_until"]).timestamp() \
                if body.get("valid_until") else time.time() + 86400
            users = int(body["numusers"]) if body.get("numusers") else None
        except (ValueError, TypeError):
            raise HttpError(400, {"error": "bad service, dates or numusers"}) from None
        with self.lock:
            ticket = self._create(service, start, until, body.get("userId"), users)
        self.record("ticket_created", id=ticket["id"], code=ticket["code"])
        return {"data": ticket}
