"""Emulator of CrowdManager's read-only Ticketing API (``https://{system}.woow.no/api``).

``Authorization: Basic <token>`` (401 when missing or malformed). Every
list endpoint (users, tickets, merchandise, members, users-permissions)
requires ``date_init``/``date_end`` (Unix seconds, on ``last_update``;
400 when missing or further apart than 3 years), pages 0-based with
``count_elements`` up to 200 and ``order`` ASC|DESC, and answers
``{count, page, items}``; every other answer carries ``count`` and
``page`` as strings, as some deployments do.
"""

from __future__ import annotations

import time
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator, HttpError, Request

THREE_YEARS = 3 * 366 * 86400
STATUS = {1: "Active", 2: "Cancelled", 3: "Refunded"}
SECTORS = {10: "North stand", 20: "South stand", 30: "VIP lounge"}
TYPES = {1: "Adult", 2: "Child", 3: "Season card"}
CATEGORIES = ("Gold", "Silver", "Family")


class CrowdManagerEmulator(Emulator):
    """One CrowdManager system with tickets and members."""

    name = "crowdmanager"
    base_path = "/api"

    def setup(self, tickets: int) -> None:
        rng = self.rng
        self.token = seed.code(rng, 32).lower()
        self.strings = 0
        now = int(time.time())
        self.events = [{"id": 7001 + i, "match_date": time.strftime(
            "%Y-%m-%d", time.gmtime(now + 86400 * (i + 1))), "match_time": "19:00"}
            for i in range(3)]
        self.data: dict[str, list[dict[str, Any]]] = {"tickets": [], "members": [],
                                                      "users": [], "merchandise": [],
                                                      "users-permissions": []}
        for i in range(tickets):
            self._ticket(now - 3600 + i * 3600 // max(1, tickets))
        for i in range(max(5, tickets // 20)):
            first, last = seed.person(rng)
            self.data["members"].append({
                "id": 500 + i, "name": f"{first} {last}", "category": CATEGORIES[i % 3],
                "max_tickets_per_match": 1 + i % 4, "card_number": f"M{seed.code(rng, 9)}",
                "last_update": now - 7200 + i})
            self.data["users"].append({"id": 900 + i, "first_name": first, "last_name": last,
                                       "last_update": now - 7200 + i})
        self.data["merchandise"] = [{"id": 1, "name": "Scarf", "last_update": now - 9000}]
        self.data["users-permissions"] = [{"id": 1, "user_id": 900, "permission": 2,
                                           "permission_txt": "Scanner", "last_update": now}]
        for what in self.data:
            self.route("GET", f"/api/{what}", self._lister(what))

    def _ticket(self, updated: int) -> dict[str, Any]:
        rng = self.rng
        i = len(self.data["tickets"])
        ev = self.events[i % len(self.events)]
        status = 1 if rng.random() > 0.08 else rng.choice((2, 3))
        sector = list(SECTORS)[i % len(SECTORS)]
        ttype = list(TYPES)[i % len(TYPES)]
        item = {"id": 100000 + i, "barcode": seed.code(rng, 16, "0123456789"),
                "last_update": updated, "id_event": ev["id"], "match_date": ev["match_date"],
                "match_time": ev["match_time"], "user_held_id": 900 + i % 50,
                "status": status, "status_txt": STATUS[status],
                "sector": sector, "sector_txt": SECTORS[sector],
                "ticket_type": ttype, "ticket_type_txt": TYPES[ttype]}
        self.data["tickets"].append(item)
        return item

    @property
    def credentials(self) -> dict[str, str]:
        return {"token": self.token}

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}", "message": "server trouble"}

    # -- state changes -----------------------------------------------------
    def add_tickets(self, n: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(self._ticket(int(time.time()))) for _ in range(n)]

    def update_ticket(self, ticket_id: int, **changes: Any) -> dict[str, Any]:
        with self.lock:
            item = next(t for t in self.data["tickets"] if t["id"] == ticket_id)
            item.update(changes, last_update=int(time.time()) + 1)
            return dict(item)

    def cancel(self, ticket_id: int) -> dict[str, Any]:
        return self.update_ticket(ticket_id, status=2, status_txt=STATUS[2])

    def rezone(self, ticket_id: int, sector: int) -> dict[str, Any]:
        return self.update_ticket(ticket_id, sector=sector, sector_txt=SECTORS.get(
            sector, str(sector)))

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        action = body.get("action")
        if action == "add":
            return self.add_tickets(int(body.get("count", 1)))
        if action == "cancel":
            return self.cancel(int(body["id"]))
        if action == "rezone":
            return self.rezone(int(body["id"]), int(body["sector"]))
        raise ValueError("action must be add, cancel or rezone")

    # -- routes ------------------------------------------------------------
    def _lister(self, what: str):
        def handler(req: Request) -> Any:
            auth = req.headers.get("authorization", "")
            if not auth.startswith("Basic ") or auth[6:].strip() != self.token:
                raise HttpError(401, {"error": "Unauthorized",
                                      "message": "Missing or invalid Basic token"})
            q = req.query
            try:
                date_init, date_end = int(q["date_init"]), int(q["date_end"])
            except KeyError:
                raise HttpError(400, {"error": "date_init and date_end are required"}) from None
            except ValueError:
                raise HttpError(400, {"error": "date_init and date_end must be Unix "
                                               "timestamps"}) from None
            if date_end < date_init or date_end - date_init > THREE_YEARS:
                raise HttpError(400, {"error": "Date range cannot exceed 3 years"})
            try:
                page = int(q.get("page", 0))
                size = int(q.get("count_elements", 10))
            except ValueError:
                raise HttpError(400, {"error": "page and count_elements must be "
                                               "integers"}) from None
            if page < 0 or not 1 <= size <= 200:
                raise HttpError(400, {"error": "count_elements must be between 1 and 200"})
            order = str(q.get("order", "ASC")).upper()
            if order not in ("ASC", "DESC"):
                raise HttpError(400, {"error": "order must be ASC or DESC"})
            with self.lock:
                items = [dict(i) for i in self.data[what]
                         if date_init <= i["last_update"] <= date_end]
                self.strings += 1
                as_text = self.strings % 2 == 0
            items.sort(key=lambda i: (i["last_update"], i["id"]), reverse=order == "DESC")
            self.record("list", endpoint=what, page=page)
            chunk = items[page * size:(page + 1) * size]
            count: Any = len(items)
            return {"count": str(count) if as_text else count,
                    "page": str(page) if as_text else page, "items": chunk}
        return handler
