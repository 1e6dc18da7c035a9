"""The ticket clouds, one module each behind :class:`~turnstiled.backends.base.Backend`.

``[sources.NAME]`` tables in the configuration name the backends to use;
:data:`REGISTRY` maps each name to its settings schema and backend class.
"""

from __future__ import annotations

from typing import Any

from turnstiled.backends import chapterevents, crowdmanager, octopus, ticketing, vivenu
from turnstiled.backends.base import (
    AuthError,
    Backend,
    BackendError,
    Capabilities,
    Misconfigured,
    OnlineAnswer,
    Rejected,
    RequestRefused,
    TransientError,
    UpgradeRequired,
    UploadResult,
    UploadScan,
)

REGISTRY: dict[str, tuple[type, type[Backend]]] = {
    vivenu.NAME: (vivenu.VivenuSettings, vivenu.VivenuBackend),
    ticketing.NAME: (ticketing.TicketingSettings, ticketing.TicketingBackend),
    crowdmanager.NAME: (crowdmanager.CrowdManagerSettings, crowdmanager.CrowdManagerBackend),
    octopus.NAME: (octopus.OctopusSettings, octopus.OctopusBackend),
    chapterevents.NAME: (chapterevents.ChapterEventsSettings,
                         chapterevents.ChapterEventsBackend),
}


def make_backends(sources: dict[str, Any]) -> list[Backend]:
    """One backend per configured ``[sources.NAME]`` table."""
    return [REGISTRY[name][1](settings) for name, settings in sources.items()]


__all__ = [
    "REGISTRY", "AuthError", "Backend", "BackendError", "Capabilities", "Misconfigured",
    "OnlineAnswer", "Rejected", "RequestRefused", "TransientError", "UpgradeRequired",
    "UploadResult", "UploadScan",
    "make_backends",
]
