"""Octopus Tickets module: timed access codes of one Location.

Bearer auth; ``services`` tell what each kind of ticket allows (``ttf``,
"tiempo corrido": valid for ``expTime`` seconds from first use;
``maxUsers`` people per code), ``tickets`` lists the issued codes in the
``{data, pagination}`` envelope. A ticket is valid from ``start_time`` to
``valid_until``; a ``ttf`` ticket also expires ``expTime`` seconds after
its first use at this gate; a one-person code may go in and out during
its time. ``numusers``/``maxUsers`` bound *simultaneous* users: a code for
N people lets at most N be inside at once (``inside:N``: a 4-person pass
admits 4; when one leaves, one may come back; counted by this gate's exit
scans). Octopus has no scan endpoint: scans are kept on the gate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from turnstiled.backends.base import Backend, Capabilities, TransientError
from turnstiled.backends.http import Http
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.timeutil import parse_iso

NAME = "octopus"


@dataclass(frozen=True)
class OctopusSettings:
    """``[sources.octopus]``."""

    base_url: str
    api_key: Secret
    location_id: str
    page_size: int = 1000
    sync_interval_s: float = 30.0
    full_sync_interval_s: float = 30.0
    timeout_s: float = 10.0


class OctopusBackend(Backend):
    """One Octopus Location."""

    name = NAME
    capabilities = Capabilities(full_sync=True)  # no delta: every sync is a full list

    def __init__(self, settings: OctopusSettings) -> None:
        self.settings = settings
        self.http = Http(settings.base_url,
                         headers={"Authorization": f"Bearer {settings.api_key.reveal()}"},
                         timeout=settings.timeout_s, vendor=NAME)
        self.base = f"Location/{quote(settings.location_id, safe='')}"

    def close(self) -> None:
        self.http.close()

    def _paged(self, what: str) -> Iterator[list[dict[str, Any]]]:
        offset, limit = 0, max(1, min(5000, self.settings.page_size))
        while True:
            _, body = self.http.request("GET", f"{self.base}/{what}",
                                        params={"offset": offset, "limit": limit})
            data = body.get("data") if isinstance(body, dict) else None
            pag = body.get("pagination") if isinstance(body, dict) else None
            if not isinstance(data, list) or not isinstance(pag, dict):
                raise TransientError(f"octopus {what}: answer lacks data or pagination")
            if data:
                yield data
            offset += len(data)
            if not data or offset >= int(pag.get("rows", 0)):
                return

    def services(self) -> dict[str, dict[str, Any]]:
        return {str(s.get("id")): s for page in self._paged("services") for s in page}

    @staticmethod
    def to_ticket(item: dict[str, Any], services: dict[str, dict[str, Any]]) -> Ticket | None:
        code = item.get("code")
        if not code:
            return None
        svc = services.get(str(item.get("service")), {})
        kind = svc.get("type") if isinstance(svc.get("type"), dict) else {}
        use_window = float(svc["expTime"]) if (kind.get("timetofinish") or svc.get(
            "typeId") == "ttf") and svc.get("expTime") else None
        users = int(item.get("numusers") or svc.get("maxUsers") or 1)
        status = str(item.get("status") or "active").lower()
        mapped = {"active": "valid", "cancelled": "cancelled"}.get(status, "invalid")
        return Ticket(NAME, str(code), "", mapped, (), parse_iso(item.get("start_time")),
                      parse_iso(item.get("valid_until")),
                      "reentry" if users <= 1 else f"inside:{users}",
                      str(svc.get("name") or ""), str(item.get("id") or ""), use_window)

    def full_sync(self) -> Iterator[list[Ticket]]:
        services = self.services()
        for page in self._paged("tickets"):
            yield [t for t in (self.to_ticket(i, services) for i in page) if t is not None]
