"""Emulator of the chapter-event ticket API (a Django REST app selling student shows).

``PUT /validate_ticket/`` takes ``{external_id, password, use_ticket}`` as
JSON or form fields, all required (else 400 ``"InvalidRequestData"``;
``use_ticket`` is read the Django REST way, so ``"true"``/``"0"`` count);
a wrong password answers 401 ``"Incorrect password"``; an unknown ticket
404 ``{"times_used": -1, "status": "Ticket does not exist"}``; otherwise 200
``{external_id, times_used, chapter_event, status}`` where ``times_used``
is the count *before* this call; with ``use_ticket`` the count then goes up
by one. The server does not judge: the gate admits when ``status == "PAID"``
and ``times_used == 0``.

Also ``GET /get_chapterevents/`` (events whose ``sales_stop_at`` has not
passed, with their ticket types), ``POST /reserve_ticket/`` (201, empty
body, a ``sessionid`` cookie; the tickets exist as ``RESERVED``) and
``POST /start_payment/`` (a Swish token for the session's reservation).
There is no ticket list. Payment statuses: ``RESERVED``, ``PAID``,
``FAILED_EXPIRED_RESERVATION``, ``FAILED_ADMIN``, ``FAILED_OUT_OF_IDS``;
``extended_statuses=True`` adds ``FORM_SUBMITTED`` and ``CONFIRMED``, as
some deployments do.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request
from turnstiled.sim.state import TicketState

logger = logging.getLogger(__name__)

STATUSES = (("PAID", 84.0), ("RESERVED", 5.0), ("FAILED_EXPIRED_RESERVATION", 5.0),
            ("FAILED_ADMIN", 3.0), ("FAILED_OUT_OF_IDS", 3.0))
EXTENDED = (("FORM_SUBMITTED", 3.0), ("CONFIRMED", 3.0))
TRUE = {"true", "True", "TRUE", "1", "yes", "on", "y", "t"}
FALSE = {"false", "False", "FALSE", "0", "no", "off", "n", "f"}
TICKET_TYPES = [
    {"id": 1, "price": "199.99", "title": "Standardbiljett", "description": "En vanlig biljett."},
    {"id": 2, "price": "99.50", "title": "Studentbiljett", "description": "En billigare biljett."}]
SHOWS = (("Fysikalen Dag 1", "Första dagen av Fysikalen.", 10),
         ("Fysikalen Dag 2", "Andra dagen av Fysikalen.", 11),
         ("Vårbalen", "Balen som redan har varit.", -5))


def _boolean(value: Any) -> bool:
    """A Django REST ``BooleanField``: ValueError unless the value reads as one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value) in TRUE | FALSE:
        return str(value) in TRUE
    raise ValueError(value)


class ChapterEventsState(TicketState):
    """Shows and their tickets, keyed by external_id."""

    key_field = "external_id"
    zone_field = "chapter_event"
    add_options = ("chapter_event", "status")

    def __init__(self, emu: ChapterEventsEmulator, n: int, extended: bool) -> None:
        super().__init__(emu.lock, emu.now)
        r = emu.rng
        self.rng = r
        self.events = []
        for i, (title, text, days) in enumerate(SHOWS):
            at = emu.now + days * seed.DAY
            self.events.append({
                "id": i + 1, "title": title, "description": text,
                "event_at": seed.iso_local(at), "max_tickets_per_payment": 8,
                "sales_stop_at": seed.iso_local(at - 1800), "ticket_types": [1, 2],
                "_sales_stop": at - 1800})
        self.pick = seed.weighted(STATUSES + (EXTENDED if extended else ()))
        self.by_ext: dict[str, dict[str, Any]] = {}
        for i in range(n):  # tickets of the two coming shows; the first one is PAID
            self.make(1 + i % 2, "PAID" if i == 0 else self.pick(r), emu.now)

    def make(self, event: int, status: str, at: float) -> dict[str, Any]:
        ext = seed.unique(lambda: seed.external_id(self.rng), self.by_ext)
        self.by_ext[ext] = {"external_id": ext, "times_used": 0, "chapter_event": event,
                             "status": status, "_modified": at}
        return self.by_ext[ext]

    def rows(self) -> Any:
        return self.by_ext.values()

    def row(self, key: Any) -> dict[str, Any]:
        return self.by_ext[key]

    def __len__(self) -> int:
        return len(self.by_ext)

    def create(self, n: int, chapter_event: int | str = 1, status: str = "PAID"
               ) -> list[dict[str, Any]]:
        event = int(chapter_event)
        if not any(e["id"] == event for e in self.events):
            raise ValueError(f"no chapter event {chapter_event!r}")
        return [self.make(event, status, self.stamp()) for _ in range(n)]

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        row.update(changes, _modified=stamp)

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": "FAILED_ADMIN"}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        if not any(str(e["id"]) == str(zone) for e in self.events):
            raise ValueError(f"no chapter event {zone!r}")
        return {"chapter_event": int(zone)}

    def extra_admin(self, action: str, key: Any, body: dict[str, Any]) -> Any:
        if action == "use":  # used at another door
            with self.lock:
                row = self.row(str(key))
                self.apply(row, {"times_used": row["times_used"] + 1}, self.stamp())
                return self.public(row)
        return super().extra_admin(action, key, body)


class ChapterEventsEmulator(Emulator):
    """One chapter-event server with three shows (one past) and tickets for two."""

    name = "chapterevents"

    def __init__(self, *, extended_statuses: bool = False, **kwargs: Any) -> None:
        self.extended_statuses = extended_statuses
        self.sessions: dict[str, dict[str, Any]] = {}
        super().__init__(**kwargs)

    def setup(self, tickets: int) -> ChapterEventsState:
        self.password = "val-" + seed.code(self.rng, 12).lower()
        state = ChapterEventsState(self, tickets, self.extended_statuses)
        self.route("PUT", "/validate_ticket/", self._validate)
        self.route("GET", "/get_chapterevents/", self._events)
        self.route("POST", "/reserve_ticket/", self._reserve)
        self.route("POST", "/start_payment/", self._payment)
        return state

    @property
    def tickets(self) -> dict[str, dict[str, Any]]:
        """Tickets by external_id (live; change them through ``state``)."""
        return self.state.by_ext  # type: ignore[attr-defined, no-any-return]

    @property
    def credentials(self) -> dict[str, str]:
        return {"password": self.password}

    def error_body(self, status: int) -> Any:
        if status == 405:
            return {"detail": "Method not allowed."}
        return {400: "InvalidRequestData", 404: "NotFound"}.get(status, "ServerError")

    def spoil_credentials(self, req: Request) -> None:
        if isinstance(req.body, dict) and "password" in req.body:
            req.body = {**req.body, "password": "wrong-credential"}

    @staticmethod
    def _form(req: Request) -> dict[str, Any]:
        if isinstance(req.body, dict):
            return req.body
        if req.raw_body and "json" not in req.headers.get("content-type", ""):
            form = parse_qs(req.raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            return {k: v[-1] for k, v in form.items()}
        return {}

    def _validate(self, req: Request) -> Any:
        body = self._form(req)
        try:
            ext, password = body["external_id"], body["password"]
            use = _boolean(body["use_ticket"])
            if not isinstance(ext, str | int) or not isinstance(password, str) or ext == "":
                raise ValueError(ext)
        except (KeyError, ValueError):
            raise HttpError(400, "InvalidRequestData") from None
        if password != self.password:
            raise HttpError(401, "Incorrect password")
        state: ChapterEventsState = self.state  # type: ignore[assignment]
        with self.lock:
            t = state.by_ext.get(str(ext))
            before = t["times_used"] if t else -1
            if t is not None and use:
                state.apply(t, {"times_used": before + 1}, state.stamp())
            self.record("validation", external_id=str(ext), use_ticket=use, times_used=before,
                        status=t["status"] if t else None)
            if t is None:
                raise HttpError(404, {"times_used": -1, "status": "Ticket does not exist"})
            return {**state.public(t), "times_used": before}

    def _events(self, req: Request) -> Any:
        state: ChapterEventsState = self.state  # type: ignore[assignment]
        now = self.clock()
        shows = [{k: v for k, v in e.items() if not k.startswith("_")} for e in state.events
                 if e["_sales_stop"] > now]
        wanted = {t for e in shows for t in e["ticket_types"]}
        return {"chapter_events": shows,
                "ticket_types": [t for t in TICKET_TYPES if t["id"] in wanted]}

    def clock(self) -> float:
        """The emulator's idea of now: its start time or, once later, the clock."""
        return max(self.now, time.time())

    def _reserve(self, req: Request) -> Any:
        body = self._form(req)
        state: ChapterEventsState = self.state  # type: ignore[assignment]
        tickets = body.get("tickets")
        try:
            wanted = [(int(t["ticket_type"]), int(t["count"])) for t in tickets]  # type: ignore[union-attr]
            if not body.get("chapter_event") or not wanted or any(c < 1 for _, c in wanted):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, "InvalidRequestData") from None
        show = next((e for e in state.events if str(e["id"]) == str(body["chapter_event"])
                     and e["_sales_stop"] > self.clock()), None)
        if show is None or any(t not in show["ticket_types"] for t, _ in wanted):
            raise HttpError(404, "NotFound")
        if sum(c for _, c in wanted) > show["max_tickets_per_payment"]:
            raise HttpError(403, "TooManyTickets")
        session = seed.code(self.rng, 40).lower()
        with self.lock:
            made = state.create(sum(c for _, c in wanted), show["id"], "RESERVED")
            self.sessions[session] = {"event": show["id"],
                                      "tickets": [t["external_id"] for t in made]}
        self.record("reservation", chapter_event=show["id"],
                    external_ids=self.sessions[session]["tickets"])
        return 201, b"", {"Set-Cookie": f"sessionid={session}; HttpOnly; Max-Age=1209600; "
                                        "Path=/; SameSite=Lax"}

    def _payment(self, req: Request) -> Any:
        body = self._form(req)
        email = body.get("email_address")
        if not isinstance(email, str) or "@" not in email:
            raise HttpError(400, "InvalidRequestData")
        cookies = dict(c.strip().split("=", 1) for c in req.headers.get("cookie", "").split(";")
                       if "=" in c)
        session = self.sessions.get(cookies.get("sessionid", ""))
        if session is None:
            raise HttpError(403, "SessionExpired")
        token = seed.code(self.rng, 32, "0123456789abcdef")
        self.record("payment", email_address=email, external_ids=session["tickets"],
                    swish_token=token)
        return token
