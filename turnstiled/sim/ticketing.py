"""Emulator of the TickeTing REST API v3 (the admission parts a gate uses), under ``/v3``.

The client version and API key every request needs, the admission tokens
that give a gate its key and the token endpoints are in
:mod:`~turnstiled.sim.ticketing_tokens`. Unknown endpoints answer 404
``{"message": "The requested endpoint ... does not exist on this
server."}``, unknown resources 404 ``{"error": "There is presently no
resource with the given URI."}``.

- ``GET /events/{event}/tickets?records=&page=&modified_since=``:
  ``{total, page, records, entries}``, 1-based pages (``records`` 1..500,
  default 25), 404 past the last page ("The specified page does not exist
  ..."), 404 "no resource" for an unknown event; ``modified_since`` is
  inclusive. The list is ordered by modification time, oldest first.
- ``POST /events/{event}/admissions`` ``{redeemer, device, serials}``: 201
  with the admitted subset, 400 when none of the serials admits.
- ``GET /events/{event}/admissions?redeemer=&device=&ticket=&records=&page=``
  lists the admissions made (the way a gate learns whether a lost upload
  was applied).

The integration key in ``credentials["api_key"]`` may do everything. With
``strings=True`` the ticket list sends ``total``, ``page`` and ``records``
as strings. The main event holds ``tickets`` tickets over three sections;
a second event holds a quarter as many.
"""

from __future__ import annotations

import bisect
import logging
import math
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.ticketing_tokens import NO_RESOURCE, TokenApi, token_view
from turnstiled.sim.wire import HttpError, Request

logger = logging.getLogger(__name__)

NO_PAGE = {"error": "The specified page does not exist for the given records per page."}
PICK_STATUS = seed.weighted((("Issued", 95.0), ("Void", 5.0)))
EVENTS = ((("Floor", "Balcony", "VIP"), 1), (("Floor", "Standing"), 4))


class TicketingState(TicketState):
    """Two events with their sections, admission tokens and tickets."""

    key_field = "serial"
    zone_field = "section"
    add_options = ("event",)

    def __init__(self, emu: TicketingEmulator, n: int) -> None:
        super().__init__(emu.lock, emu.now)
        r = emu.rng
        self.rng = r
        self.admin_key = seed.code(r, 32, "0123456789abcdef")
        first = 16993717817996 + r.randrange(1000)
        self.events = [str(first + 7 * k) for k in range(len(EVENTS))]
        self.sections: dict[str, str] = {}  # uri -> name
        self.section_event: dict[str, str] = {}
        self.tokens: dict[str, dict[str, Any]] = {}  # by code
        self.keys: dict[str, dict[str, Any]] = {self.admin_key: {"admin": True}}
        self.by_serial: dict[str, dict[str, Any]] = {}  # by serial
        self.admissions: list[dict[str, Any]] = []  # every admission made, in order
        self._index: dict[str, list[tuple[float, str]]] = {e: [] for e in self.events}
        for k, (ev, (names, _)) in enumerate(zip(self.events, EVENTS, strict=True)):
            for j, name in enumerate(names):
                uri = f"/events/{ev}/sections/{16993964783416 + 10 * k + j}"
                self.sections[uri], self.section_event[uri] = name, ev
        for ev in self.events:
            self.issue_token(ev, self.event_sections(ev), global_=True)
        self.issue_token(self.events[0], self.event_sections(self.events[0])[:1], global_=False)
        for ev, (_, div) in zip(self.events, EVENTS, strict=True):
            count = n // div
            for i in range(count):
                t = self._new(ev, seed.spread(emu.now, i, count, 3 * seed.DAY), i)
                t["status"] = PICK_STATUS(r)
        for idx in self._index.values():
            idx.sort()
        self._last_change = emu.now

    def event_sections(self, event: str) -> list[str]:
        return [u for u, e in self.section_event.items() if e == event]

    def issue_token(self, event: str, sections: list[str], global_: bool) -> dict[str, Any]:
        tid = str(17370490770235 + len(self.tokens))
        code = seed.unique(lambda: seed.ticketing_token_code(self.rng), self.tokens)
        key = seed.code(self.rng, 32, "0123456789abcdef")
        token = {"self": f"/events/{event}/tokens/{tid}", "code": code, "global": global_,
                 "sections": list(sections), "id": tid, "key": key, "event": event}
        self.tokens[code] = token
        self.keys[key] = {"admin": False, "event": event, "sections": set(sections)}
        return token_view(token)

    def _new(self, event: str, at: float, i: int) -> dict[str, Any]:
        r = self.rng
        section = self.event_sections(event)[i % len(self.event_sections(event))]
        serial = seed.unique(lambda: seed.ticketing_serial(r), self.by_serial)
        first, last = seed.person(r)
        t = {"self": f"/events/{event}/tickets/{serial}", "serial": serial, "status": "Issued",
             "section": {"self": section, "name": self.sections[section]},
             "owner": {"firstName": first, "lastName": last,
                       "email": seed.email(first, last, len(self.by_serial))},
             "issued": seed.iso_s(at), "redeemed": "N/A", "_modified": at, "_event": event}
        self.by_serial[serial] = t
        self._index[event].append((at, serial))
        return t

    # -- TicketState -----------------------------------------------------------
    def rows(self) -> Any:
        return self.by_serial.values()

    def row(self, key: Any) -> dict[str, Any]:
        return self.by_serial[key]

    def create(self, n: int, event: str | None = None) -> list[dict[str, Any]]:
        ev = str(event) if event is not None else self.events[0]
        if ev not in self._index:
            raise ValueError(f"no event {event!r}")
        out = []
        for _ in range(n):
            t = self._new(ev, self.stamp(), len(self.by_serial))
            self._index[ev].pop()
            bisect.insort(self._index[ev], (t["_modified"], t["serial"]))
            out.append(t)
        return out

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        idx = self._index[row["_event"]]
        del idx[bisect.bisect_left(idx, (row["_modified"], row["serial"]))]
        row.update(changes, _modified=stamp)
        bisect.insort(idx, (stamp, row["serial"]))

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Void"}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        mine = self.event_sections(row["_event"])
        uri = next((u for u in mine if str(zone) in (u, self.sections[u])), None)
        if uri is None:
            raise ValueError(f"no section {zone!r} in event {row['_event']}")
        return {"section": {"self": uri, "name": self.sections[uri]}}

    def first_listed(self, n: int, scope: Any = None) -> list[str]:
        """Serials of the *n* least recently changed tickets of the event *scope*."""
        with self.lock:
            return [s for _, s in self._index[scope][:n]]

    # -- queries ---------------------------------------------------------------
    def modified(self, event: str, since: float | None) -> list[str]:
        """Serials of *event* modified at or after *since*, oldest change first."""
        with self.lock:
            idx = self._index[event]
            a = 0 if since is None else bisect.bisect_left(idx, (since,))
            return [s for _, s in idx[a:]]


class TicketingEmulator(Emulator[TicketingState]):
    """TickeTing v3 with an integration key, two events, tokens and tickets."""

    name = "ticketing"
    base_path = "/v3"

    def __init__(self, *, strings: bool = False, **kwargs: Any) -> None:
        self.strings = strings  # send total, page and records as strings (as some answers do)
        super().__init__(**kwargs)

    def setup(self, tickets: int) -> TicketingState:
        state = TicketingState(self, tickets)
        self.token_api = TokenApi(self)
        routes = (*self.token_api.routes(),
                  ("GET", "/events/{event}/admissions", self._list_admissions),
                  ("GET", "/events/{event}/tickets", self._list_tickets),
                  ("POST", "/events/{event}/admissions", self._admit))
        for method, path, fn in routes:
            self.route(method, self.base_path + path, fn)
        return state

    @property
    def tickets(self) -> dict[str, dict[str, Any]]:
        """Every ticket by serial (live; change them through ``state``)."""
        return self.state.by_serial

    @property
    def event(self) -> str:
        return self.state.events[0]

    @property
    def credentials(self) -> dict[str, str]:
        s = self.state
        codes = [c for c, t in s.tokens.items() if t["event"] == self.event]
        return {"api_key": s.admin_key, "event": self.event, "global_token_code": codes[0],
                "section_token_code": codes[1], "other_event": s.events[1]}

    def error_body(self, status: int) -> Any:
        if status == 404:
            return NO_RESOURCE
        return {"message": "There was a server error while excuting this request. Please "
                           "see system logs for details."}

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        return 404, {"message": f"The requested endpoint {req.path.removeprefix('/v3')} does "
                                "not exist on this server."}, {}

    # -- paging (every list) -------------------------------------------------
    @staticmethod
    def paging(req: Request) -> tuple[int, int]:
        try:
            records = int(req.query.get("records") or 25)
            page = int(req.query.get("page") or 1)
        except ValueError:
            raise HttpError(400, {"error": "records and page must be integers"}) from None
        if not 1 <= records <= 500 or page < 1:
            raise HttpError(400, {"error": "records must be 1..500 and page at least 1"})
        return records, page

    @staticmethod
    def paged(rows: list[Any], records: int, page: int) -> dict[str, Any]:
        if page > max(1, math.ceil(len(rows) / records)):
            raise HttpError(404, NO_PAGE)
        return {"total": len(rows), "page": page, "records": records,
                "entries": rows[(page - 1) * records:page * records]}

    # -- routes ------------------------------------------------------------
    def _list_admissions(self, req: Request) -> Any:
        self.token_api.key(req)
        records, page = self.paging(req)
        s = self.state
        q = {k: req.query[k] for k in ("redeemer", "device", "ticket") if req.query.get(k)}
        with self.lock:
            rows = [dict(a) for a in s.admissions if a["_event"] == req.params["event"]
                    and all(a[k] == v or (k == "ticket" and a["_serial"] == v)
                            for k, v in q.items())]
        for a in rows:
            a.pop("_event"), a.pop("_serial")
        return self.paged(rows, records, page)

    def _list_tickets(self, req: Request) -> Any:
        self.token_api.key(req)
        records, page = self.paging(req)
        since = req.query.get("modified_since")
        try:
            cut = seed.parse_iso(since) if since else None
        except ValueError:
            raise HttpError(400, {"error": "modified_since must be an ISO 8601 time"}) from None
        s = self.state
        with self.lock:
            serials = s.modified(req.params["event"], cut)
            body = self.paged(serials, records, page)
            body["entries"] = [s.public(s.by_serial[x]) for x in body["entries"]]
            self.churn(req.params["event"])
        if self.strings:
            body.update({k: str(body[k]) for k in ("total", "page", "records")})
        return body

    def _admit(self, req: Request) -> Any:
        who = self.token_api.key(req)
        body = req.body if isinstance(req.body, dict) else {}
        serials = body.get("serials")
        if not isinstance(serials, list) or not body.get("redeemer"):
            raise HttpError(400, {"error": "redeemer and serials are required"})
        allowed = None if who["admin"] else who["sections"]
        s = self.state
        admitted = []
        with self.lock:
            now = self.cloud_time()
            for serial in serials:
                t = s.by_serial.get(str(serial))
                ok = (t is not None and t["_event"] == req.params["event"]
                      and t["status"] == "Issued" and t["redeemed"] == "N/A"
                      and (allowed is None or t["section"]["self"] in allowed))
                self.record("admission", serial=serial, admitted=ok, device=body.get("device"),
                            redeemer=body.get("redeemer"))
                if ok:
                    s.apply(t, {"redeemed": seed.iso_s(now)}, s.stamp())
                    admitted.append({"redeemer": body["redeemer"], "device": body.get("device"),
                                     "ticket": t["self"], "patron": dict(t["owner"]),
                                     "section": t["section"]["self"],
                                     "admitted": t["redeemed"]})
                    s.admissions.append({**admitted[-1], "_event": t["_event"],
                                         "_serial": t["serial"]})
        if not admitted:
            raise HttpError(400, {"error": "None of the given tickets could be admitted."})
        return 201, admitted
