"""Chapter-event ticket API: online validation only, with an explicit offline policy.

There is no ticket list: a scan asks ``PUT /validate_ticket/`` with the
shared validation password and ``use_ticket`` (true at the gate, false
for ``turnstilectl lookup``). The server does not judge: the gate admits
when ``status == "PAID"`` and ``times_used == 0`` (the count before this
call). When the server cannot be reached, ``offline_policy`` decides:
``deny`` (default), or ``admit-and-journal`` for codes that look like
ticket ids; such admissions are registered when the network returns,
and one found already used is recorded as a conflict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from turnstiled import rules
from turnstiled.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    OnlineAnswer,
    TransientError,
    UploadResult,
    UploadScan,
)
from turnstiled.backends.http import Http
from turnstiled.rules import Decision, Ticket
from turnstiled.secret import Secret

NAME = "chapterevents"
EXTERNAL_ID = re.compile(r"^[A-Z]{6}$")


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
    capabilities = Capabilities(online_check=True, scan_upload=True)

    def __init__(self, settings: ChapterEventsSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url, timeout=settings.timeout_s, vendor=NAME)

    def close(self) -> None:
        self.http.close()

    def uploads(self, granted: bool, direction: str) -> bool:
        # Only offline admissions are uploaded; the pipeline marks online ones confirmed.
        return granted and direction == "in"

    def events(self) -> list[dict[str, Any]]:
        """``GET /get_chapterevents/`` (for commissioning: which event is on sale)."""
        _, body = self.http.request("GET", "get_chapterevents/")
        return list(body.get("chapter_events") or []) if isinstance(body, dict) else []

    def _validate(self, external_id: str, use: bool, timeout: float | None) -> tuple[int, Any]:
        return self.http.request(
            "PUT", "validate_ticket/",
            json_body={"external_id": external_id, "password": self.settings.password.reveal(),
                       "use_ticket": use},
            timeout=timeout, allow=(404,))

    def online_check(self, barcode: str, consume: bool = True) -> OnlineAnswer:
        status, body = self._validate(barcode, consume, self.settings.online_deadline_s)
        if status == 404 or not isinstance(body, dict):
            return OnlineAnswer(None, Decision(False, rules.UNKNOWN, "no such ticket upstream"))
        used = body.get("times_used")
        paid = body.get("status")
        if not isinstance(used, int):
            raise TransientError("chapterevents validate_ticket: no times_used in answer")
        ticket = Ticket(NAME, barcode, str(body.get("chapter_event") or self.settings.event),
                        "valid" if paid == "PAID" else "invalid", ticket_id=barcode)
        if paid != "PAID":
            verdict = Decision(False, rules.INVALID, f"payment status {paid}")
        elif used > 0:
            verdict = Decision(False, rules.ALREADY_USED, f"used {used} time(s) upstream")
        else:
            verdict = Decision(True, rules.GRANTED, "validated online")
        return OnlineAnswer(ticket, verdict, times_used=used, consumed=consume)

    def offline_answer(self, barcode: str) -> OnlineAnswer | None:
        if self.settings.offline_policy != "admit-and-journal" or not EXTERNAL_ID.match(barcode):
            return None
        ticket = Ticket(NAME, barcode, self.settings.event, "valid", ticket_id=barcode)
        return OnlineAnswer(ticket, Decision(True, rules.GRANTED,
                                             "offline: admitted, to be reconciled"))

    def upload(self, scans: Sequence[UploadScan]) -> UploadResult:
        """Register offline admissions; a ticket already used upstream is a conflict."""
        result = UploadResult()
        for s in scans:
            try:
                status, body = self._validate(s.barcode, True, None)
            except BackendError:
                if result.confirmed or result.rejected:
                    return result  # keep what was registered; the rest goes back to pending
                raise
            if status == 404 or not isinstance(body, dict):
                result.rejected[s.nonce] = "conflict: ticket does not exist upstream"
            elif body.get("times_used", 0) > 0:
                result.rejected[s.nonce] = (f"conflict: already used {body['times_used']} "
                                            "time(s) upstream")
            elif body.get("status") != "PAID":
                result.rejected[s.nonce] = f"conflict: payment status {body.get('status')}"
            else:
                result.confirmed.append(s.nonce)
        return result
