"""TickeTing v3: admission-token exchange, section-filtered tickets, admissions upload.

The gate's admission token code (8 characters) is exchanged with
``GET /tokens/{code}``, sent with the integration's own ``X-API-Key``
(``api_key``: the vendor's SDK always sends one and the API answers 401
without it), for ``{key, event, sections}``; the returned key is the
``X-API-Key`` of the ticket list and admissions. The exchange is made
again every ``exchange_interval_s`` and after any 401/403, so sections an
organiser changed (or a token invalidated) take effect without a restart.
An unknown or invalidated code (404) is the alarm "admission code not
recognised", never a retry loop; so is a 404 "no resource" on the ticket
list (a wrong or deleted event): the cached list stays as it was.

``X-Client-Version`` is sent on every request; a 412 becomes a "client
upgrade required" alarm. The ticket list is ordered by modification time
and paged by page number, so an edit made while the gate pages moves a
ticket to the end and shifts the rest. The gate therefore reads page 1
(for ``total``, which may be a string like ``records``), then the pages
from the last one down to 1: a shift then only makes it read a ticket
twice. A ticket whose edit moved it behind the pages already read is
picked up by a catch-up delta from the cloud's time the full sync started.
A ticket in a section outside the token's is dropped from a full sync and
stored as ``wrong_zone`` by a delta, so a ticket moved away stops
admitting at the next delta.

Offline admissions are uploaded to ``POST /events/{event}/admissions``,
whose 201 answer lists only the admitted subset. A serial missing from
it (or a 400 "none admits") is rejected upstream, unless its row is
``resent`` (an earlier upload's answer was lost) and the admissions
listing (``GET /events/{event}/admissions?device=&ticket=``) shows it
admitted by this device: that was our own upload, and it is confirmed.
A row never sent before needs no look-up: an admission by "this device"
would be another gate's that shares the device name.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from turnstiled.backends.base import (
    AuthError,
    Backend,
    Capabilities,
    Delta,
    Rejected,
    TransientError,
    Unrecognised,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http
from turnstiled.backends.window import Anchor, window_start
from turnstiled.errors import SettingError
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import iso

logger = logging.getLogger(__name__)

NAME = "ticketing"
CODE = re.compile(r"^[0-9A-Z]{8}$")
PAGE_GONE = "page does not exist"  # the 404 past the last page, unlike "no resource"


@dataclass(frozen=True)
class TicketingSettings:
    """``[sources.ticketing]``."""

    admission_code: Secret
    api_key: Secret
    base_url: str = "https://api.ticketingevents.com/v3"
    client_version: str = "3.0.0"
    device: str = ""
    page_size: int = 100
    sync_interval_s: float = 15.0
    full_sync_interval_s: float = 21600.0
    exchange_interval_s: float = 600.0
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


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise TransientError(f"ticketing tickets: {what} {value!r} is not a number") from None


def _serial(value: Any) -> str:
    return str(value or "").rstrip("/").rsplit("/", 1)[-1]


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
        self._key: str | None = None
        self._exchanged = 0.0  # monotonic time of the last exchange

    def close(self) -> None:
        self.http.close()

    def uploads(self, granted: bool, direction: str) -> bool:
        return granted and direction == "in"  # TickeTing records admissions only

    def status(self) -> dict[str, Any]:
        return {"event": self.event, "sections": sorted(self.sections)}

    # -- the admission session --------------------------------------------
    def _exchange(self, force: bool = False) -> str:
        """Trade the admission code for the key (again when due or *force*d)."""
        due = time.monotonic() - self._exchanged >= self.settings.exchange_interval_s
        if self.event is None or self._key is None or due or force:
            code = quote(self.settings.admission_code.reveal(), safe="")
            status, body = self.http.request(
                "GET", f"tokens/{code}", allow=(404,),
                headers={"X-API-Key": self.settings.api_key.reveal()})
            if status == 404:
                raise Unrecognised("ticketing: admission code not recognised (unknown or "
                                   "invalidated token)", status=404)
            if not isinstance(body, dict) or not body.get("key") or not body.get("event"):
                raise TransientError("ticketing tokens: answer lacks key or event")
            sections = {str(s) for s in body.get("sections") or []}
            if self.event is not None and sections != self.sections:
                logger.info("ticketing: the token's sections changed (%d now)", len(sections))
            self._key = str(body["key"])
            self.event = _serial(body["event"])
            self.sections = sections
            self._exchanged = time.monotonic()
        return self.event

    def _request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """A request with the session key; a 401/403 exchanges the code once and retries."""
        for attempt in (0, 1):
            self._exchange(force=attempt == 1)
            try:
                return self.http.request(method, path, headers={"X-API-Key": self._key or ""},
                                         **kw)
            except AuthError:
                if attempt:
                    raise
                logger.info("ticketing: key refused; exchanging the admission code again")
        raise AssertionError("unreachable")

    # -- tickets ---------------------------------------------------------
    def to_ticket(self, entry: dict[str, Any], *, keep_foreign: bool = False) -> Ticket | None:
        serial = entry.get("serial")
        if not isinstance(serial, str) or not serial:
            return None
        sec_uri, sec_name = _section(entry)
        foreign = bool(self.sections) and sec_uri not in self.sections
        if foreign and not keep_foreign:
            return None  # another section: not this gate's ticket
        status = str(entry.get("status") or "").lower()
        redeemed = entry.get("redeemed")
        if status != "issued":
            mapped = "cancelled" if status in ("void", "voided", "cancelled", "refunded") \
                else "invalid"
        elif foreign:
            mapped = "wrong_zone"  # moved to a section this token does not admit
        elif redeemed not in (None, "", "N/A"):
            mapped = "used"  # admitted already, by another gate or device
        else:
            mapped = "valid"
        owner = entry.get("owner") if isinstance(entry.get("owner"), dict) else {}
        name = " ".join(str(owner.get(k) or "") for k in ("firstName", "lastName")).strip()
        return Ticket(NAME, serial, self.event or "", mapped, (sec_name,) if sec_name else (),
                      None, None, "single", name or str(owner.get("name") or ""), serial)

    def _page(self, params: dict[str, Any], page: int) -> tuple[list[Any], int, int] | None:
        """Entries, total and records of one page; None for a page past the end."""
        event = self._exchange()
        status, body = self._request(
            "GET", f"events/{quote(event, safe='')}/tickets",
            params={**params, "records": self.settings.page_size, "page": page},
            allow=(404,))
        if status == 404:
            text = str(body.get("error") or body.get("message") or "") if isinstance(
                body, dict) else ""
            if PAGE_GONE in text.lower():
                return None
            raise Unrecognised(f"ticketing: event {event} not found ({text or 'HTTP 404'}); "
                               "the cached list stays", status=404)
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise TransientError("ticketing tickets: answer has no entries list")
        total = _int(body.get("total", len(entries)), "total")
        records = _int(body.get("records") or self.settings.page_size, "records")
        return entries, total, max(1, records)

    def _pages(self, params: dict[str, Any], *, keep_foreign: bool) -> Iterator[list[Ticket]]:
        """Page 1, then the last page down to page 1 again (immune to shifts)."""
        first = self._page(params, 1)
        if first is None:
            return  # nothing at all (a delta with no change)
        entries, total, records = first

        def convert(rows: list[Any]) -> list[Ticket]:
            return [t for t in (self.to_ticket(e, keep_foreign=keep_foreign)
                                for e in rows if isinstance(e, dict)) if t is not None]
        yield convert(entries)
        pages = math.ceil(total / records)
        if pages <= 1:
            return
        for page in range(pages, 0, -1):
            got = self._page(params, page)
            if got is not None:  # the list shrank meanwhile: nothing there now
                yield convert(got[0])

    @staticmethod
    def _since(start: float) -> dict[str, str]:
        return {"modified_since": (iso(start) or "").replace("Z", "+00:00")}

    def full_sync(self) -> Delta:
        anchor = Anchor(self.http.clock)

        def pages() -> Iterator[list[Ticket]]:
            self._exchange()
            yield from self._pages({}, keep_foreign=False)
            start = window_start(anchor.cursor(), self.settings.overlap_s)
            if start is not None:  # the tickets edited while we paged, at their new place
                yield from self._pages(self._since(start), keep_foreign=False)
        return Delta(pages(), anchor)

    def delta_sync(self, cursor: str) -> Delta:
        anchor = Anchor(self.http.clock, cursor)
        start = window_start(cursor, self.settings.overlap_s)
        params = self._since(start) if start is not None else {}
        return Delta(self._pages(params, keep_foreign=True), anchor)

    # -- drain -----------------------------------------------------------
    def upload(self, scans: Sequence[UploadScan], prepared: Any = None) -> UploadResult:
        event = self._exchange()
        device = self._device(scans)
        body = {"redeemer": device, "device": device, "serials": [s.barcode for s in scans]}
        result = UploadResult()
        note = "not admitted upstream (already redeemed or void)"
        try:
            _, answer = self._request("POST", f"events/{quote(event, safe='')}/admissions",
                                      json_body=body, ok=(200, 201))
        except Rejected as exc:
            # Only "none of the serials admits" speaks of the rows; any other
            # refusal concerns the request, and the drain keeps the rows.
            if exc.status != 400 or "none of the" not in str(exc).lower():
                raise
            answer, note = [], f"not admitted upstream: {exc}"
        admitted = {_serial(item.get("ticket")) for item in
                    (answer if isinstance(answer, list) else []) if isinstance(item, dict)}
        for s in scans:
            if s.barcode in admitted or (s.resent and self.admitted_here(s.barcode, device)):
                result.confirmed.append(s.nonce)
            else:
                result.rejected[s.nonce] = note
        return result

    def _device(self, scans: Sequence[UploadScan]) -> str:
        return self.settings.device or (scans[0].gate_id if scans else "turnstiled")

    def admitted_here(self, serial: str, device: str) -> bool:
        """Whether the cloud lists an admission of *serial* by *device* (a lost answer)."""
        event = self._exchange()
        status, body = self._request(
            "GET", f"events/{quote(event, safe='')}/admissions",
            params={"device": device, "ticket": serial, "records": 25, "page": 1},
            allow=(404,))
        entries = body.get("entries") if status == 200 and isinstance(body, dict) else None
        return any(isinstance(a, dict) and _serial(a.get("ticket")) == serial
                   and a.get("device") == device for a in entries or ())
