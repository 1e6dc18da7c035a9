"""Emulator of the chapter-event ticket API (a Django REST app for student shows).

``PUT /validate_ticket/`` takes ``{external_id, password, use_ticket}``
(all required: 400 ``"InvalidRequestData"``; wrong password: 401
``"Incorrect password"``; unknown ticket: 404 ``{"times_used": -1,
"status": "Ticket does not exist"}``) and answers the count *before* this
call; with ``use_ticket`` the count then goes up by one. Also
``GET /get_chapterevents/``, ``POST /reserve_ticket/`` and
``POST /start_payment/``.
"""

from __future__ import annotations

import string
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request

PAYMENT = ("PAID",) * 16 + ("RESERVED", "FAILED_EXPIRED_RESERVATION", "FAILED_ADMIN",
                            "FAILED_OUT_OF_IDS")


class ChapterEventsEmulator(Emulator):
    """One chapter-event server with two shows and their tickets."""

    name = "chapterevents"

    def setup(self, tickets: int) -> None:
        rng = self.rng
        self.password = "val-" + seed.code(rng, 12).lower()
        self.events = [
            {"id": 1, "title": "Fysikalen Dag 1", "description": "Första dagen av Fysikalen.",
             "event_at": "2026-12-05T18:30:00+01:00", "max_tickets_per_payment": 8,
             "sales_stop_at": "2026-12-05T18:00:00+01:00", "ticket_types": [1, 2]},
            {"id": 2, "title": "Fysikalen Dag 2", "description": "Andra dagen av Fysikalen.",
             "event_at": "2026-12-06T18:30:00+01:00", "max_tickets_per_payment": 8,
             "sales_stop_at": "2026-12-06T18:00:00+01:00", "ticket_types": [1, 2]}]
        self.ticket_types = [
            {"id": 1, "price": "199.99", "title": "Standardbiljett",
             "description": "En vanlig biljett."},
            {"id": 2, "price": "99.50", "title": "Studentbiljett",
             "description": "En billigare biljett."}]
        self.tickets: dict[str, dict[str, Any]] = {}
        while len(self.tickets) < tickets:
            ext = seed.code(rng, 6, string.ascii_uppercase)
            self.tickets.setdefault(ext, {"external_id": ext, "times_used": 0,
                                          "chapter_event": 1 + len(self.tickets) % 2,
                                          "status": rng.choice(PAYMENT)})
        self.route("PUT", "/validate_ticket/", self._validate)
        self.route("GET", "/get_chapterevents/", self._events)
        self.route("POST", "/reserve_ticket/", self._reserve)
        self.route("POST", "/start_payment/", self._payment)

    @property
    def credentials(self) -> dict[str, str]:
        return {"password": self.password}

    def error_body(self, status: int) -> Any:
        return "ServerError"

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        if body.get("action") == "use":
            with self.lock:
                self.tickets[str(body["external_id"])]["times_used"] += 1
                return dict(self.tickets[str(body["external_id"])])
        if body.get("action") == "cancel":
            with self.lock:
                self.tickets[str(body["external_id"])]["status"] = "FAILED_ADMIN"
                return dict(self.tickets[str(body["external_id"])])
        raise ValueError("action must be use or cancel")

    def _validate(self, req: Request) -> Any:
        body = req.body
        if not isinstance(body, dict) or not {"external_id", "password", "use_ticket"} <= set(
                body) or not isinstance(body["use_ticket"], bool):
            raise HttpError(400, "InvalidRequestData")
        if body["password"] != self.password:
            raise HttpError(401, "Incorrect password")
        with self.lock:
            t = self.tickets.get(str(body["external_id"]))
            if t is None:
                self.record("validation", external_id=body["external_id"],
                            use_ticket=body["use_ticket"], times_used=-1)
                raise HttpError(404, {"times_used": -1, "status": "Ticket does not exist"})
            answer = dict(t)
            if body["use_ticket"]:
                t["times_used"] += 1
            self.record("validation", external_id=t["external_id"],
                        use_ticket=body["use_ticket"], times_used=answer["times_used"])
        return answer

    def _events(self, req: Request) -> Any:
        return {"chapter_events": self.events, "ticket_types": self.ticket_types}

    def _reserve(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        tickets = body.get("tickets")
        if not body.get("chapter_event") or not isinstance(tickets, list) or any(
                not isinstance(t, dict) or int(t.get("count", 0)) < 1 for t in tickets):
            raise HttpError(400, "InvalidRequestData")
        if not any(str(e["id"]) == str(body["chapter_event"]) for e in self.events):
            raise HttpError(404, "NotFound")
        return 201, b"", {"Set-Cookie": f"sessionid={seed.code(self.rng, 40)}; HttpOnly; "
                                        "Path=/; SameSite=Lax"}

    def _payment(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        if not isinstance(body.get("email_address"), str) or "@" not in body["email_address"]:
            raise HttpError(400, "InvalidRequestData")
        if "sessionid=" not in req.headers.get("cookie", ""):
            raise HttpError(403, "SessionExpired")
        return seed.code(self.rng, 32, "0123456789abcdef")
