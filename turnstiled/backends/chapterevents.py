"""Chapter-event ticket API: check, let the gate decide, then use from the journal.

There is no ticket list. A scan of a code the cache does not know asks
``PUT /validate_ticket/`` with ``use_ticket: false`` under the online
deadline, which changes nothing upstream. The answer (payment status,
``times_used`` by anyone, and the event's *title* as ``chapter_event``)
becomes a ticket that the gate's own rules judge: ``PAID`` is valid,
any other payment status invalid, a use we did not make "already used",
and ``[gate] events`` are matched against the event title. Only a
granted, journaled first entry is then registered with ``use_ticket:
true``, by the drain (:meth:`ChapterEventsBackend.upload`); an earlier use
found there is reported as a conflict (someone else got in on this code
first).

Errors are not "offline": a refused password (401/403), a 400, a
redirect (a base URL without the trailing slash), an HTML or non-JSON
page, or the route's own 404 raise an alarm and deny. Only transport
failures, timeouts and 5xx/429 let ``offline_policy`` decide: ``deny``
(default), or ``admit-and-journal`` for codes that look like ticket ids
(six capital letters), counted against the journal's usage like any
ticket and registered when the network returns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from turnstiled.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    Misconfigured,
    OnlineAnswer,
    Rejected,
    TransientError,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http
from turnstiled.rules import Ticket
from turnstiled.secret import Secret

logger = logging.getLogger(__name__)

NAME = "chapterevents"
EXTERNAL_ID = re.compile(r"^[A-Z]{6}$")
ROUTE = "validate_ticket/"


@dataclass(frozen=True)
class ChapterEventsSettings:
    """``[sources.chapterevents]``."""

    base_url: str
    password: Secret
    event: str = ""
    offline_policy: Literal["deny", "admit-and-journal"] = "deny"
    online_check: bool = True
    online_deadline_s: float = 0.8
    timeout_s: float = 10.0
    upload_batch: int = 20


class ChapterEventsBackend(Backend):
    """One chapter-event server and its validation password."""

    name = NAME
    capabilities = Capabilities(online_check=True, scan_upload=True, first_entry_only=True)

    def __init__(self, settings: ChapterEventsSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url, timeout=settings.timeout_s, vendor=NAME)

    def close(self) -> None:
        self.http.close()

    def uploads(self, granted: bool, direction: str) -> bool:
        # Only admissions are registered upstream; an exit never uses a ticket.
        return granted and direction == "in"

    def events(self) -> list[dict[str, Any]]:
        """``GET /get_chapterevents/`` (for commissioning: which event is on sale)."""
        _, body = self.http.request("GET", "get_chapterevents/")
        return list(body.get("chapter_events") or []) if isinstance(body, dict) else []

    def validate(self, code: str, use: bool, timeout: float | None = None
                 ) -> dict[str, Any] | None:
        """One ``PUT validate_ticket/``: the ticket as the server shows it, None if none.

        ``times_used`` in the answer is the count before this call.
        Raises :class:`TransientError` only for what may pass by itself
        (transport, timeout, 5xx, 429; ``ambiguous`` only for a use: a
        check changes nothing upstream); every other surprise is
        :class:`Misconfigured` or :class:`AuthError`.
        """
        what = f"{NAME} PUT {ROUTE}"
        try:
            status, body = self.http.request(
                "PUT", ROUTE, timeout=timeout, allow=(404,),
                json_body={"external_id": code, "password": self.settings.password.reveal(),
                           "use_ticket": use})
        except TransientError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                exc.ambiguous = exc.ambiguous and use  # a check uses nothing upstream
                raise
            raise Misconfigured(f"{exc} (is base_url right?)", status=exc.status) from None
        except Rejected as exc:  # 400 InvalidRequestData: our request is not what it expects
            raise Misconfigured(str(exc), status=exc.status) from None
        if status == 404:
            if isinstance(body, dict) and body.get("times_used") == -1:
                return None  # the server's own "Ticket does not exist"
            raise Misconfigured(f"{what}: HTTP 404 that is not the server's unknown-ticket "
                                "answer (is base_url right?)", status=404)
        if not (isinstance(body, dict) and type(body.get("times_used")) is int
                and isinstance(body.get("status"), str)):
            raise Misconfigured(f"{what}: answer without times_used and status", status=status)
        return body

    # -- scan path -------------------------------------------------------
    def online_check(self, barcode: str) -> OnlineAnswer:
        """Ask with ``use_ticket: false``: the ticket's state, nothing used."""
        if not barcode.strip():
            return OnlineAnswer(None, note="blank code: not asked")
        body = self.validate(barcode, False, self.settings.online_deadline_s)
        if body is None:
            return OnlineAnswer(None, note=f"{NAME}: no such ticket upstream")
        paid, used = body["status"], body["times_used"]
        ticket = Ticket(NAME, barcode, str(body.get("chapter_event") or ""),
                        "valid" if paid == "PAID" else paid, entries="reentry",
                        ticket_id=barcode)
        return OnlineAnswer(ticket, times_used=used,
                            note=f"{NAME}: payment status {paid}, used {used} time(s) upstream")

    def offline_answer(self, barcode: str) -> OnlineAnswer | None:
        if self.settings.offline_policy != "admit-and-journal" or not EXTERNAL_ID.match(barcode):
            return None
        ticket = Ticket(NAME, barcode, self.settings.event, "valid", entries="reentry",
                        ticket_id=barcode)
        return OnlineAnswer(ticket, note=f"{NAME} offline: admit-and-journal, "
                                         "registered when the server answers again")

    # -- drain -------------------------------------------------------------
    def upload(self, scans: Sequence[UploadScan], prepared: Any = None) -> UploadResult:
        """Register each journaled admission: check, then use; earlier uses are conflicts.

        A use whose answer was lost (a reset or timeout after it was
        written) comes back ``resent`` (:attr:`UploadResult.unsure`, or the
        drain's own marking when nothing was settled yet): its next check
        then counts the use it finds as ours, not a conflict.
        """
        result = UploadResult()
        for s in scans:
            try:
                refused = self._register(s)
            except BackendError as exc:
                if not (result.confirmed or result.rejected):
                    raise
                # Keep what was registered; the rest goes back to pending.
                if exc.ambiguous:
                    result.unsure.append(s.nonce)
                return result
            if refused is None:
                result.confirmed.append(s.nonce)
            else:
                result.rejected[s.nonce] = refused
                logger.warning("%s: admission %s not registered: %s", NAME, s.nonce[:8],
                               refused)
        return result

    def _register(self, s: UploadScan) -> str | None:
        """None once *s* is registered upstream (now or by our own earlier try), else why not."""
        ticket = self.validate(s.barcode, False)
        if ticket is None:
            return "conflict: no such ticket upstream"
        paid, used = ticket["status"], ticket["times_used"]
        if paid != "PAID":  # the payment status first: an unpaid ticket is not used up
            return f"conflict: payment status {paid}, not registered (used {used} time(s))"
        if used > 0:
            if s.resent:
                logger.info("%s: admission %s was sent before without an answer; the %d "
                            "use(s) upstream include ours", NAME, s.nonce[:8], used)
                return None
            return (f"conflict: already used {used} time(s) upstream before this admission "
                    "was registered (someone else got in on this code first)")
        answer = self.validate(s.barcode, True)
        if answer is None:
            return "conflict: ticket vanished upstream while being registered"
        if answer["times_used"] > 0:
            return (f"conflict: used {answer['times_used']} time(s) upstream just before ours "
                    "was registered (someone else got in on this code first)")
        return None
