"""TickeTing v3: admission-token exchange, section-filtered tickets, admissions upload.

At start the gate's admission token code (8 characters) is exchanged with
``GET /tokens/{code}`` for ``{key, event, sections}``; the key is the
``X-API-Key`` from then on, and only tickets of the token's sections are
kept. ``X-Client-Version`` is sent on every request; a 412 becomes a
"client upgrade required" alarm, never a crash loop. Tickets are paged
1-based (404 past the end); delta sync uses ``modified_since``. Offline
admissions are uploaded to ``POST /events/{event}/admissions``, whose 201
answer lists only the admitted subset: the rest are rejected upstream.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from turnstiled.backends.base import (
    Backend,
    Capabilities,
    Delta,
    Rejected,
    TransientError,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http
from turnstiled.errors import SettingError
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import iso, parse_iso

NAME = "ticketing"
CODE = re.compile(r"^[0-9A-Z]{8}$")


@dataclass(frozen=True)
class TicketingSettings:
    """``[sources.ticketing]``."""

    admission_code: Secret
    base_url: str = "https://api.ticketingevents.com/v3"
    client_version: str = "3.0.0"
    device: str = ""
    page_size: int = 100
    sync_interval_s: float = 15.0
    full_sync_interval_s: float = 21600.0
    overlap_s: float = 30.0
    timeout_s: float = 10.0
    upload_batch: int = 100

    def __post_init__(self) -> None:
        if not CODE.match(self.admission_code.reveal()):
            raise SettingError("admission_code", "expected the token code's 8 characters, "
                               "0-9 and A-Z")


def _section(entry: dict[str, Any]) -> tuple[str, str]:
    sec = entry.get("section")
    if isinstance(sec, dict):
        return str(sec.get("self") or ""), str(sec.get("name") or "")
    return str(sec or ""), str(sec or "")


class TicketingBackend(Backend):
    """One TickeTing admission token."""

    name = NAME
    capabilities = Capabilities(full_sync=True, delta_sync=True, scan_upload=True)

    def __init__(self, settings: TicketingSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url,
                         headers={"X-Client-Version": settings.client_version},
                         timeout=settings.timeout_s, vendor=NAME)
        self.event: str | None = None
        self.sections: set[str] = set()

    def close(self) -> None:
        self.http.close()

    def uploads(self, granted: bool, direction: str) -> bool:
        return granted and direction == "in"  # TickeTing records admissions only

    def status(self) -> dict[str, Any]:
        return {"event": self.event, "sections": sorted(self.sections)}

    def _exchange(self) -> str:
        """Trade the admission code for the key (once per start)."""
        if self.event is None:
            code = quote(self.settings.admission_code.reveal(), safe="")
            _, body = self.http.request("GET", f"tokens/{code}")
            if not isinstance(body, dict) or not body.get("key") or not body.get("event"):
                raise TransientError("ticketing tokens: answer lacks key or event")
            self.http.client.headers["X-API-Key"] = str(body["key"])
            event = str(body["event"]).rstrip("/")
            self.event = event.rsplit("/", 1)[-1]
            self.sections = {str(s) for s in body.get("sections") or []}
        return self.event

    def to_ticket(self, entry: dict[str, Any]) -> Ticket | None:
        serial = entry.get("serial")
        if not isinstance(serial, str) or not serial:
            return None
        sec_uri, sec_name = _section(entry)
        if self.sections and sec_uri not in self.sections:
            return None  # another section: not this gate's ticket
        status = str(entry.get("status") or "").lower()
        redeemed = entry.get("redeemed")
        if status != "issued":
            mapped = "cancelled" if status in ("void", "voided", "cancelled", "refunded") \
                else "invalid"
        elif redeemed not in (None, "", "N/A"):
            mapped = "used"  # admitted already, by another gate or device
        else:
            mapped = "valid"
        owner = entry.get("owner") if isinstance(entry.get("owner"), dict) else {}
        name = " ".join(str(owner.get(k) or "") for k in ("firstName", "lastName")).strip()
        return Ticket(NAME, serial, self.event or "", mapped, (sec_name,) if sec_name else (),
                      None, None, "single", name or str(owner.get("name") or ""), serial)

    def _pages(self, params: dict[str, Any]) -> Iterator[list[Ticket]]:
        event = self._exchange()
        page = 1
        while True:
            status, body = self.http.request(
                "GET", f"events/{quote(event, safe='')}/tickets",
                params={**params, "records": self.settings.page_size, "page": page},
                allow=(404,))
            if status == 404:
                return  # past the last page
            entries = body.get("entries") if isinstance(body, dict) else None
            if not isinstance(entries, list):
                raise TransientError("ticketing tickets: answer has no entries list")
            tickets = [t for t in map(self.to_ticket, entries) if t is not None]
            if tickets:
                yield tickets
            total = body.get("total")
            records = body.get("records") or self.settings.page_size
            if not entries or (isinstance(total, int) and page * int(records) >= total):
                return
            page += 1

    def full_sync(self) -> Iterator[list[Ticket]]:
        return self._pages({})

    def delta_sync(self, cursor: str | None) -> Delta:
        now = time.time()
        since = parse_iso(cursor) if cursor else None
        start = (since if since is not None else now - 3600) - self.settings.overlap_s
        stamp = iso(start) or ""
        return Delta(self._pages({"modified_since": stamp.replace("Z", "+00:00")}),
                     iso(now) or "")

    def upload(self, scans: Sequence[UploadScan]) -> UploadResult:
        event = self._exchange()
        device = self.settings.device or (scans[0].gate_id if scans else "turnstiled")
        body = {"redeemer": device, "device": device, "serials": [s.barcode for s in scans]}
        result = UploadResult()
        try:
            _, answer = self.http.request("POST", f"events/{quote(event, safe='')}/admissions",
                                          json_body=body, ok=(200, 201))
        except Rejected as exc:
            if exc.status == 400:  # none of the serials admits
                for s in scans:
                    result.rejected[s.nonce] = f"not admitted upstream: {exc}"
                return result
            raise
        admitted: set[str] = set()
        for item in answer if isinstance(answer, list) else []:
            ticket = str(item.get("ticket") or "") if isinstance(item, dict) else ""
            admitted.add(ticket.rstrip("/").rsplit("/", 1)[-1])
        for s in scans:
            if s.barcode in admitted:
                result.confirmed.append(s.nonce)
            else:
                result.rejected[s.nonce] = "not admitted upstream (already redeemed or void)"
        return result
