"""Emulator of the chapter-event ticket API (a Django REST app selling student shows).

``PUT /validate_ticket/`` takes ``{external_id, password, use_ticket}`` as
JSON or a form (``application/x-www-form-urlencoded``), all required, read
the Django REST way: whitespace around ``external_id`` and ``password`` is
trimmed; ``use_ticket`` is a ``BooleanField`` (``"true"``/``"0"`` count; in
a form a missing one counts as false). A bad body answers 400
``"InvalidRequestData"`` (malformed JSON: 400 ``{"detail": "JSON parse
error - ..."}``), another content type 415; a wrong password 401
``"Incorrect password"`` (checked before the ticket); an unknown ticket 404
``{"times_used": -1, "status": "Ticket does not exist"}``; otherwise 200
``{external_id, times_used, chapter_event, status}`` where
``chapter_event`` is the event's *title* and ``times_used`` the count
*before* this call. With ``use_ticket`` the count then goes up by one,
whatever the payment status; ``nonatomic_use_s`` > 0 reads and writes the
count that far apart, so parallel uses of one code can all read 0, as the
real server's read-modify-save allows. The server does not judge: the gate
admits when ``status == "PAID"`` and ``times_used == 0``.

Routing is Django's: a known path without its trailing slash answers 301
to the slashed one, an unknown path an HTML 404 page, a wrong method 405
with ``Allow``. ``prefix`` puts every route under a deployment's URL
prefix (``prefix="bittan/api"``: ``/bittan/api/validate_ticket/``).

Also ``GET /get_chapterevents/`` (events whose ``sales_stop_at`` has not
passed, with ``tickets_left`` and their ticket types), ``POST
/reserve_ticket/`` (201, empty body, a ``sessionid`` cookie; the tickets
exist as ``RESERVED``) and ``POST /start_payment/`` (a Swish token for the
session's reservation). There is no ticket list. Payment statuses:
``RESERVED``, ``PAID``, ``FAILED_EXPIRED_RESERVATION``, ``FAILED_ADMIN``,
``FAILED_OUT_OF_IDS``; ``extended_statuses=True`` adds ``FORM_SUBMITTED``
and ``CONFIRMED``, as some deployments do. The admin API names an event by
id or title (``rezone``, ``add``).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode

from turnstiled.sim import seed
from turnstiled.sim.server import WRONG, Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.wire import HttpError, Request

logger = logging.getLogger(__name__)

STATUSES = (("PAID", 84.0), ("RESERVED", 5.0), ("FAILED_EXPIRED_RESERVATION", 5.0),
            ("FAILED_ADMIN", 3.0), ("FAILED_OUT_OF_IDS", 3.0))
EXTENDED = (("FORM_SUBMITTED", 3.0), ("CONFIRMED", 3.0))
TRUE = {"true", "True", "TRUE", "1", "yes", "on", "y", "t"}
FALSE = {"false", "False", "FALSE", "0", "no", "off", "n", "f"}
TICKET_TYPES = [
    {"id": 1, "price": "199.99", "title": "Standardbiljett", "description": "En vanlig biljett."},
    {"id": 2, "price": "99.50", "title": "Studentbiljett", "description": "En billigare biljett."}]
SEATS = 400
NOT_FOUND = (b'<!doctype html>\n<html lang="en">\n<head><title>Not Found</title></head>\n'
             b"<body><h1>Not Found</h1><p>The requested resource was not found on this "
             b"server.</p></body>\n</html>\n")
HTML = {"Content-Type": "text/html; charset=utf-8"}
FORM = "application/x-www-form-urlencoded"
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
                "_sales_stop": at - 1800, "_seats": SEATS})
        self.pick = seed.weighted(STATUSES + (EXTENDED if extended else ()))
        self.by_ext: dict[str, dict[str, Any]] = {}
        for i in range(n):  # tickets of the two coming shows; the first one is PAID
            self.make(1 + i % 2, "PAID" if i == 0 else self.pick(r), emu.now)

    def event(self, ref: Any) -> dict[str, Any]:
        """The event *ref* names (its id or its title); ValueError if none."""
        for e in self.events:
            if str(e["id"]) == str(ref) or e["title"] == ref:
                return e
        raise ValueError(f"no chapter event {ref!r}")

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        out = super().public(row)
        out["chapter_event"] = self.event(row["chapter_event"])["title"]
        return out

    def tickets_left(self, event: dict[str, Any]) -> int:
        alive = sum(1 for t in self.by_ext.values() if t["chapter_event"] == event["id"]
                    and t["status"] in ("PAID", "RESERVED"))
        return int(event["_seats"]) - alive

    def make(self, event: int, status: str, at: float) -> dict[str, Any]:
        ext = seed.unique(lambda: seed.external_id(self.rng), self.by_ext)
        self.by_ext[ext] = {"external_id": ext, "times_used": 0, "chapter_event": event,
                             "status": status, "_modified": at}
        return self.by_ext[ext]

    def rows(self) -> Any:
        return self.by_ext.values()

    def row(self, key: Any) -> dict[str, Any]:
        return self.by_ext[key]

    def create(self, n: int, chapter_event: int | str = 1, status: str = "PAID"
               ) -> list[dict[str, Any]]:
        event = self.event(chapter_event)["id"]
        return [self.make(event, status, self.stamp()) for _ in range(n)]

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        if "chapter_event" in changes:  # shown as the title, kept as the id
            changes = {**changes, "chapter_event": self.event(changes["chapter_event"])["id"]}
        row.update(changes, _modified=stamp)

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": "FAILED_ADMIN"}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        return {"chapter_event": self.event(zone)["id"]}

    def extra_admin(self, action: str, key: Any, body: dict[str, Any]) -> Any:
        if action == "use":  # used at another door
            with self.lock:
                row = self.row(str(key))
                self.apply(row, {"times_used": row["times_used"] + 1}, self.stamp())
                return self.public(row)
        return super().extra_admin(action, key, body)


class ChapterEventsEmulator(Emulator[ChapterEventsState]):
    """One chapter-event server with three shows (one past) and tickets for two."""

    name = "chapterevents"

    def __init__(self, *, extended_statuses: bool = False, nonatomic_use_s: float = 0.0,
                 prefix: str = "", **kwargs: Any) -> None:
        # The deployment's URL prefix (the real server's BITTAN_BACKEND_URL path).
        self.base_path = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.extended_statuses = extended_statuses
        self.nonatomic_use_s = nonatomic_use_s
        self.sessions: dict[str, dict[str, Any]] = {}
        super().__init__(**kwargs)

    def setup(self, tickets: int) -> ChapterEventsState:
        self.password = "val-" + seed.code(self.rng, 12).lower()
        state = ChapterEventsState(self, tickets, self.extended_statuses)
        for method, path, fn in (("PUT", "/validate_ticket/", self._validate),
                                 ("GET", "/get_chapterevents/", self._events),
                                 ("POST", "/reserve_ticket/", self._reserve),
                                 ("POST", "/start_payment/", self._payment)):
            self.route(method, self.base_path + path, fn)
        return state

    @property
    def tickets(self) -> dict[str, dict[str, Any]]:
        """Tickets by external_id (live internal rows: ``chapter_event`` is the event's id)."""
        return self.state.by_ext

    @property
    def credentials(self) -> dict[str, str]:
        return {"password": self.password}

    def error_body(self, status: int) -> Any:
        if status == 405:
            return {"detail": "Method not allowed."}
        return {400: "InvalidRequestData", 404: "NotFound"}.get(status, "ServerError")

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        """Django's routing: 301 to the path with its slash, else the HTML 404 page."""
        if not req.path.endswith("/") and any(r.match(req.path + "/") for _, r, _ in
                                              self.routes):
            query = "&".join(f"{k}={v}" for k, v in req.query.items())
            return 301, b"", {**HTML, "Location": req.path + "/" + ("?" + query if query
                                                                        else "")}
        return 404, NOT_FOUND, HTML

    def method_not_allowed(self, req: Request, methods: list[str]
                           ) -> tuple[int, Any, dict[str, str]]:
        allow = [*methods, *(["HEAD"] if "GET" in methods else []), "OPTIONS"]
        return 405, {"detail": f'Method "{req.method}" not allowed.'}, {
            "Allow": ", ".join(allow)}

    def spoil_credentials(self, req: Request) -> None:
        if isinstance(req.body, dict) and "password" in req.body:
            req.body = {**req.body, "password": WRONG}
        elif req.raw_body and req.body is None:  # a form
            form = parse_qs(req.raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            if "password" in form:
                req.raw_body = urlencode({**form, "password": [WRONG]}, doseq=True).encode()

    @staticmethod
    def _data(req: Request) -> tuple[Any, bool]:
        """The request's data as Django REST parses it, and whether it came as a form."""
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if not req.raw_body:
            return {}, ctype == FORM
        if ctype == FORM:
            form = parse_qs(req.raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            return {k: v[-1] for k, v in form.items()}, True
        if ctype != "application/json":
            raise HttpError(415, {"detail": f'Unsupported media type "{ctype}" in request.'})
        if req.body is None:
            try:
                json.loads(req.raw_body)
            except ValueError as exc:
                raise HttpError(400, {"detail": f"JSON parse error - {exc}"}) from None
        return req.body, False

    @staticmethod
    def _text(data: dict[str, Any], name: str) -> str:
        """A ``CharField``: str or number, whitespace trimmed, not blank."""
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(name)
        text = str(value).strip()
        if not text:
            raise ValueError(name)
        return text

    def _validate(self, req: Request) -> Any:
        data, form = self._data(req)
        try:
            if not isinstance(data, dict):
                raise ValueError(data)
            ext, password = self._text(data, "external_id"), self._text(data, "password")
            use = _boolean(data["use_ticket"]) if "use_ticket" in data or not form else False
        except (KeyError, ValueError):
            raise HttpError(400, "InvalidRequestData") from None
        if password != self.password:
            raise HttpError(401, "Incorrect password")
        state = self.state
        with self.lock:
            t = state.by_ext.get(ext)
            before = t["times_used"] if t else -1
            if t is not None and use and not self.nonatomic_use_s:
                state.apply(t, {"times_used": before + 1}, state.stamp())
            self.record("validation", external_id=ext, use_ticket=use, times_used=before,
                        status=t["status"] if t else None)
            if t is None:
                raise HttpError(404, {"times_used": -1, "status": "Ticket does not exist"})
            answer = {**state.public(t), "times_used": before}
        if use and self.nonatomic_use_s:  # read, think, save what was read plus one
            self.pause(self.nonatomic_use_s)
            with self.lock:
                state.apply(t, {"times_used": before + 1}, state.stamp())
        return answer

    def _events(self, req: Request) -> Any:
        state = self.state
        now = self.clock()
        with self.lock:
            shows = [{**{k: v for k, v in e.items() if not k.startswith("_")},
                      "tickets_left": state.tickets_left(e)}
                     for e in state.events if e["_sales_stop"] > now]
        wanted = {t for e in shows for t in e["ticket_types"]}
        return {"chapter_events": shows,
                "ticket_types": [t for t in TICKET_TYPES if t["id"] in wanted]}

    def clock(self) -> float:
        """The emulator's idea of now: its start time or, once later, the cloud's clock."""
        return max(self.now, self.cloud_time())

    def _reserve(self, req: Request) -> Any:
        body, _ = self._data(req)
        if not isinstance(body, dict):
            raise HttpError(400, "InvalidRequestData")
        state = self.state
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
        body, _ = self._data(req)
        if not isinstance(body, dict):
            raise HttpError(400, "InvalidRequestData")
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
