"""Emulator of TickeTing REST API v3 (the admission parts a gate uses).

``X-API-Key`` (401 when missing, 403 when wrong) and ``X-Client-Version``
(412 when missing or below 3.0.0) on every request. An admission token
code is exchanged with ``GET /tokens/{code}`` for ``{key, event,
sections}``; tokens are issued, listed and shown under
``/events/{event}/tokens``. Tickets page 1-based with ``records`` and
``page`` (404 past the last page) and ``modified_since``; admissions
answer 201 with the admitted subset, 400 when none admits.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request

MIN_VERSION = (3, 0, 0)
NO_RESOURCE = {"error": "There is presently no resource with the given URI."}
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _version(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (text or "").split("."))
    except ValueError:
        return ()


class TicketingEmulator(Emulator):
    """One TickeTing event with sections, tokens and tickets."""

    name = "ticketing"
    base_path = "/v3"

    def setup(self, tickets: int) -> None:
        rng = self.rng
        self.api_key = seed.code(rng, 32, "0123456789abcdef")
        self.event = str(16993717817996 + rng.randrange(1000))
        ev = f"/events/{self.event}"
        self.sections = {f"{ev}/sections/{16993964783416 + i}": name
                         for i, name in enumerate(("Floor", "Balcony", "VIP"))}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {self.api_key: {"admin": True}}
        self._issue_token(list(self.sections), global_=True)
        self._issue_token([next(iter(self.sections))], global_=False)
        self.tickets: dict[str, dict[str, Any]] = {}
        t0 = seed.base_time()
        for i in range(tickets):
            self._new_ticket(t0 + i * 3600 / max(1, tickets), i)
        self.route("GET", "/v3/tokens/{code}", self._exchange)
        self.route("POST", "/v3/events/{event}/tokens", self._post_token)
        self.route("GET", "/v3/events/{event}/tokens", self._list_tokens)
        self.route("GET", "/v3/events/{event}/tokens/{token}", self._token_detail)
        self.route("GET", "/v3/events/{event}/tickets", self._list_tickets)
        self.route("POST", "/v3/events/{event}/admissions", self._admit)

    @property
    def credentials(self) -> dict[str, str]:
        codes = list(self.tokens)
        return {"api_key": self.api_key, "event": self.event, "global_token_code": codes[0],
                "section_token_code": codes[1]}

    def error_body(self, status: int) -> Any:
        return {"message": "There was a server error while excuting this request. Please "
                           "see system logs for details."}

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        return 404, {"message": f"The requested endpoint {req.path.removeprefix('/v3')} does "
                                "not exist on this server."}, {}

    # -- state -------------------------------------------------------------
    def _issue_token(self, sections: list[str], global_: bool) -> dict[str, Any]:
        tid = str(17370490770235 + len(self.tokens))
        code = seed.code(self.rng, 8, ALNUM)
        token = {"self": f"/events/{self.event}/tokens/{tid}", "code": code,
                 "global": global_, "sections": sections}
        key = seed.code(self.rng, 32, "0123456789abcdef")
        self.tokens[code] = {**token, "id": tid, "key": key}
        self.keys[key] = {"admin": False, "sections": set(sections)}
        return token

    def _new_ticket(self, at: float, i: int) -> dict[str, Any]:
        rng = self.rng
        section = list(self.sections)[i % len(self.sections)]
        serial = f"{seed.code(rng, 6, ALNUM)}-{seed.code(rng, 12, ALNUM)}"
        first, last = seed.person(rng)
        t = {"self": f"/events/{self.event}/tickets/{serial}", "serial": serial,
             "status": "Issued" if rng.random() > 0.05 else "Void",
             "section": {"self": section, "name": self.sections[section]},
             "owner": {"firstName": first, "lastName": last,
                       "email": f"{first.lower()}@example.org"},
             "issued": seed.iso_s(at), "redeemed": "N/A", "_modified": at}
        self.tickets[serial] = t
        return t

    def add_tickets(self, n: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(self._new_ticket(time.time(), len(self.tickets) + k))
                    for k in range(n)]

    def update_ticket(self, serial: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            t = self.tickets[serial]
            t.update(changes, _modified=time.time())
            return self._public(t)

    def cancel(self, serial: str) -> dict[str, Any]:
        return self.update_ticket(serial, status="Void")

    def rezone(self, serial: str, section: str) -> dict[str, Any]:
        return self.update_ticket(serial, section={"self": section,
                                                   "name": self.sections[section]})

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        action = body.get("action")
        if action == "add":
            return self.add_tickets(int(body.get("count", 1)))
        if action == "cancel":
            return self.cancel(str(body["serial"]))
        if action == "rezone":
            return self.rezone(str(body["serial"]), str(body["section"]))
        raise ValueError("action must be add, cancel or rezone")

    @staticmethod
    def _public(t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if not k.startswith("_")}

    # -- checks ------------------------------------------------------------
    def _client(self, req: Request, key_required: bool = True) -> dict[str, Any] | None:
        if _version(req.headers.get("x-client-version")) < MIN_VERSION:
            raise HttpError(412, {"error": "Please upgrade your client to complete this "
                                           "request"})
        if not key_required:
            return None
        key = req.headers.get("x-api-key", "")
        if not key:
            raise HttpError(401, {"message": "Your request could not be authenticated."})
        who = self.keys.get(key)
        if who is None:
            raise HttpError(403, {"message": "You are restricted from accessing this "
                                             "resource."})
        return who

    def _event(self, req: Request) -> None:
        if req.params["event"] != self.event:
            raise HttpError(404, NO_RESOURCE)

    @staticmethod
    def _paging(req: Request, default: int = 25) -> tuple[int, int]:
        try:
            records = int(req.query.get("records", default))
            page = int(req.query.get("page", 1))
        except ValueError:
            raise HttpError(400, {"error": "records and page must be integers"}) from None
        if records < 1 or records > 500 or page < 1:
            raise HttpError(400, {"error": "records must be 1..500 and page >= 1"})
        return records, page

    # -- routes ------------------------------------------------------------
    def _exchange(self, req: Request) -> Any:
        self._client(req, key_required=False)
        token = self.tokens.get(req.params["code"])
        if token is None:
            raise HttpError(404, NO_RESOURCE)
        self.record("token_exchange", code=req.params["code"])
        return {"key": token["key"], "event": f"/events/{self.event}",
                "sections": token["sections"]}

    def _post_token(self, req: Request) -> Any:
        who = self._client(req)
        self._event(req)
        if not who or not who["admin"]:
            raise HttpError(403, {"message": "You are restricted from accessing this "
                                             "resource."})
        sections = (req.body or {}).get("sections") if isinstance(req.body, dict) else None
        if not isinstance(sections, list) or not sections or \
                any(s not in self.sections for s in sections):
            raise HttpError(400, {"error": "sections must list sections of this event"})
        with self.lock:
            return 201, self._issue_token(sections, global_=False)

    def _list_tokens(self, req: Request) -> Any:
        self._client(req)
        self._event(req)
        records, page = self._paging(req)
        want = req.query.get("global")
        rows = [{k: v for k, v in t.items() if k in ("self", "code", "global", "sections")}
                for t in self.tokens.values()
                if want is None or t["global"] == (want.lower() == "true")]
        return {"total": len(rows), "page": page, "records": records,
                "entries": rows[(page - 1) * records:page * records]}

    def _token_detail(self, req: Request) -> Any:
        self._client(req)
        self._event(req)
        for t in self.tokens.values():
            if t["id"] == req.params["token"]:
                return {k: v for k, v in t.items() if k in ("self", "code", "global",
                                                            "sections")}
        raise HttpError(404, NO_RESOURCE)

    def _list_tickets(self, req: Request) -> Any:
        self._client(req)
        self._event(req)
        records, page = self._paging(req)
        since = req.query.get("modified_since")
        with self.lock:
            rows = sorted(self.tickets.values(), key=lambda t: (t["_modified"], t["serial"]))
            if since:
                try:
                    cut = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    raise HttpError(400, {"error": "modified_since must be ISO 8601"}) from None
                rows = [t for t in rows if t["_modified"] >= cut]
            pages = max(1, math.ceil(len(rows) / records))
            if page > pages:
                raise HttpError(404, NO_RESOURCE)
            entries = [self._public(t) for t in rows[(page - 1) * records:page * records]]
        return {"total": len(rows), "page": page, "records": records, "entries": entries}

    def _admit(self, req: Request) -> Any:
        who = self._client(req)
        self._event(req)
        body = req.body if isinstance(req.body, dict) else {}
        serials = body.get("serials")
        if not isinstance(serials, list) or not body.get("redeemer"):
            raise HttpError(400, {"error": "redeemer and serials are required"})
        allowed = None if who is None or who.get("admin") else who["sections"]
        admitted = []
        with self.lock:
            now = seed.iso_s(time.time())
            for serial in serials:
                t = self.tickets.get(serial)
                ok = (t is not None and t["status"] == "Issued" and t["redeemed"] == "N/A"
                      and (allowed is None or t["section"]["self"] in allowed))
                self.record("admission", serial=serial, admitted=ok,
                            device=body.get("device"))
                if ok:
                    t["redeemed"], t["_modified"] = now, time.time()
                    admitted.append({"redeemer": body["redeemer"], "device": body.get("device"),
                                     "ticket": t["self"], "patron": t["owner"],
                                     "section": t["section"]["self"], "admitted": now})
        if not admitted:
            raise HttpError(400, {"error": "None of the given tickets could be admitted."})
        return 201, admitted
