"""Emulator of CrowdManager's read-only Ticketing API (``https://{system}.woow.no/api``).

``Authorization: Basic <token>`` (401 when missing, malformed or wrong).
Every list (``users``, ``tickets``, ``merchandise``, ``members``,
``users-permissions``) requires ``date_init`` and ``date_end`` (Unix seconds,
both inclusive, on ``last_update``; 400 when either is missing or not a
number, when ``date_end < date_init``, or when they are more than 3 years
apart). Pages are 0-based (``page``, default 0), ``count_elements`` defaults
to 10 and may be 1..200, ``order`` is ``ASC`` or ``DESC`` on
``last_update``. Answers are ``{count, page, items}``; a page past the end
has no items. 400 bodies are ``{"error": ...}``.

``count`` and ``page`` arrive as strings on some deployments: with
``strings="alternate"`` (the default) every second list answer carries
them as strings, ``"always"`` and ``"never"`` fix the choice.

Ticket items carry ``id``, ``barcode``, ``last_update``, ``id_event``,
``match_date``, ``match_time``, ``user_held_id`` and coded fields with
``_txt`` companions (``status``: 1 Active, 2 Cancelled, 3 Refunded;
``sector``; ``ticket_type``). Members carry ``id``, ``name``, ``category``,
``max_tickets_per_match`` and a ``card_number``.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable
from typing import Any

from turnstiled.sim import seed
from turnstiled.sim.server import Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.wire import HttpError, Request

logger = logging.getLogger(__name__)

THREE_YEARS = (3 * 365 + 1) * seed.DAY
STATUS = {1: "Active", 2: "Cancelled", 3: "Refunded"}
PICK_STATUS = seed.weighted(((1, 92.0), (2, 5.0), (3, 3.0)))
SECTORS = {10: "North stand", 20: "South stand", 30: "VIP lounge"}
TYPES = {1: "Adult", 2: "Child", 3: "Season card"}
CATEGORIES = ("Gold", "Silver", "Family")
LISTS = ("users", "tickets", "merchandise", "members", "users-permissions")
STRINGS = ("alternate", "always", "never")


def _bad(message: str) -> HttpError:
    return HttpError(400, {"error": message})


class CrowdManagerState(TicketState):
    """One system's tickets (indexed by last_update) and its other, static lists."""

    key_field = "id"
    zone_field = "sector"
    int_keys = True
    add_options = ("event",)

    def __init__(self, emu: CrowdManagerEmulator, n: int) -> None:
        super().__init__(emu.lock, emu.now)
        r = emu.rng
        self.rng = r
        now = int(emu.now)
        self.events = [{"id": 7001 + i, "match_date": seed.iso_s(now + (2 * i + 1) * seed.DAY)[
            :10], "match_time": ("19:00", "16:00", "20:30")[i]} for i in range(3)]
        self.data: dict[str, list[dict[str, Any]]] = {k: [] for k in LISTS}
        self.by_id: dict[int, dict[str, Any]] = {}
        self._index: list[tuple[int, int]] = []
        self._codes: set[str] = set()
        for i in range(n):
            item = self._ticket(int(seed.spread(now, i, n, 3 * seed.DAY)))
            if i >= 3:
                self._set_status(item, PICK_STATUS(r))
        self._index.sort()
        for i in range(max(5, n // 20)):
            first, last = seed.person(r)
            stamp = now - 5 * seed.DAY + i
            self.data["members"].append({
                "id": 500 + i, "name": f"{first} {last}", "category": CATEGORIES[i % 3],
                "max_tickets_per_match": 1 + i % 4, "card_number": f"M{seed.code(r, 9)}",
                "last_update": stamp})
            self.data["users"].append({"id": 900 + i, "first_name": first, "last_name": last,
                                       "email": seed.email(first, last, i),
                                       "last_update": stamp})
        self.data["merchandise"] = [
            {"id": 1, "name": "Scarf", "price": 250, "last_update": now - 9 * seed.DAY},
            {"id": 2, "name": "Home shirt", "price": 899, "last_update": now - 4 * seed.DAY}]
        self.data["users-permissions"] = [
            {"id": 1, "user_id": 900, "permission": 2, "permission_txt": "Scanner",
             "last_update": now - seed.DAY}]
        self._last_change = float(now)

    def _ticket(self, updated: int, event: int | None = None) -> dict[str, Any]:
        r = self.rng
        i = len(self.data["tickets"])
        ev = next((e for e in self.events if e["id"] == event), None) or \
            self.events[i % len(self.events)]
        sector, ttype = list(SECTORS)[i % len(SECTORS)], list(TYPES)[i % len(TYPES)]
        item = {"id": 100000 + i,
                "barcode": seed.unique(lambda: seed.crowdmanager_barcode(r), self._codes),
                "last_update": updated, "id_event": ev["id"], "match_date": ev["match_date"],
                "match_time": ev["match_time"], "user_held_id": 900 + i % 50,
                "status": 1, "status_txt": STATUS[1], "sector": sector,
                "sector_txt": SECTORS[sector], "ticket_type": ttype,
                "ticket_type_txt": TYPES[ttype]}
        self._codes.add(item["barcode"])
        self.data["tickets"].append(item)
        self.by_id[item["id"]] = item
        self._index.append((updated, item["id"]))
        return item

    @staticmethod
    def _set_status(item: dict[str, Any], status: int) -> None:
        item["status"], item["status_txt"] = status, STATUS[status]

    # -- TicketState -----------------------------------------------------------
    def rows(self) -> Any:
        return self.data["tickets"]

    def row(self, key: Any) -> dict[str, Any]:
        return self.by_id[key]

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return dict(row)

    def create(self, n: int, event: int | str | None = None) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            stamp = math.ceil(self.stamp())
            item = self._ticket(stamp, int(event) if event is not None else None)
            self._index.pop()
            bisect.insort(self._index, (stamp, item["id"]))
            out.append(item)
        return out

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        if "status" in changes and "status_txt" not in changes:
            changes = {**changes, "status_txt": STATUS.get(int(changes["status"]), "")}
        old = (row["last_update"], row["id"])
        del self._index[bisect.bisect_left(self._index, old)]
        row.update(changes, last_update=max(math.ceil(stamp), row["last_update"]))
        bisect.insort(self._index, (row["last_update"], row["id"]))

    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"status": 2, "status_txt": STATUS[2]}

    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        sector = int(zone)
        return {"sector": sector, "sector_txt": SECTORS.get(sector, str(sector))}

    def first_listed(self, n: int, scope: Any = None) -> list[int]:
        """Ids of the *n* least recently changed tickets (the list's ``ASC`` order)."""
        with self.lock:
            return [k for _, k in self._index[:n]]

    # -- queries ---------------------------------------------------------------
    def window(self, what: str, lo: int, hi: int, page: int, size: int, desc: bool
               ) -> tuple[list[dict[str, Any]], int]:
        """One page of *what* with ``lo <= last_update <= hi``, and how many match."""
        with self.lock:
            if what != "tickets":
                rows = sorted((i for i in self.data[what] if lo <= i["last_update"] <= hi),
                              key=lambda i: (i["last_update"], i["id"]), reverse=desc)
                return [dict(i) for i in rows[page * size:(page + 1) * size]], len(rows)
            a = bisect.bisect_left(self._index, (lo,))
            b = bisect.bisect_left(self._index, (hi + 1,))
            if desc:
                keys = self._index[max(a, b - (page + 1) * size):max(a, b - page * size)][::-1]
            else:
                keys = self._index[a + page * size:min(b, a + (page + 1) * size)]
            return [dict(self.by_id[k]) for _, k in keys], max(0, b - a)


class CrowdManagerEmulator(Emulator[CrowdManagerState]):
    """One CrowdManager system with tickets, members, users and merchandise."""

    name = "crowdmanager"
    base_path = "/api"

    def __init__(self, *, strings: str = "alternate", **kwargs: Any) -> None:
        if strings not in STRINGS:
            raise ValueError(f"strings must be one of {', '.join(STRINGS)}")
        self.strings = strings
        self._answers = 0
        super().__init__(**kwargs)

    def setup(self, tickets: int) -> CrowdManagerState:
        self.token = seed.code(self.rng, 32).lower()
        state = CrowdManagerState(self, tickets)
        for what in LISTS:
            self.route("GET", f"/api/{what}", self._lister(what))
        return state

    @property
    def data(self) -> dict[str, list[dict[str, Any]]]:
        """Every list by endpoint name (live; change tickets through ``state``)."""
        return self.state.data

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.state.events

    @property
    def credentials(self) -> dict[str, str]:
        return {"token": self.token}

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}", "message": "The server could not answer"}

    def _as_text(self) -> bool:
        with self.lock:
            self._answers += 1
            return self.strings == "always" or (
                self.strings == "alternate" and self._answers % 2 == 0)

    def _lister(self, what: str) -> Callable[[Request], Any]:
        def handler(req: Request) -> Any:
            auth = req.headers.get("authorization", "")
            if not auth.startswith("Basic ") or auth[6:].strip() != self.token:
                raise HttpError(401, {"error": "Unauthorized",
                                      "message": "Missing or invalid Basic token"})
            q = req.query
            if not q.get("date_init") or not q.get("date_end"):
                raise _bad("date_init and date_end are required")
            try:
                lo, hi = int(q["date_init"]), int(q["date_end"])
            except ValueError:
                raise _bad("date_init and date_end must be Unix timestamps") from None
            if hi < lo:
                raise _bad("date_end must not be before date_init")
            if hi - lo > THREE_YEARS:
                raise _bad("Date range cannot exceed 3 years")
            try:
                page = int(q.get("page") or 0)
                size = int(q.get("count_elements") or 10)
            except ValueError:
                raise _bad("page and count_elements must be integers") from None
            if page < 0:
                raise _bad("page must be 0 or more (pages are 0-based)")
            if not 1 <= size <= 200:
                raise _bad("count_elements must be between 1 and 200")
            order = str(q.get("order") or "ASC").upper()
            if order not in ("ASC", "DESC"):
                raise _bad("order must be ASC or DESC")
            state = self.state
            items, count = state.window(what, lo, hi, page, size, order == "DESC")
            if what == "tickets":
                self.churn()
            text = self._as_text()
            return {"count": str(count) if text else count, "page": str(page) if text else page,
                    "items": items}
        return handler
