"""The figures one gate reports about itself: one function for status, heartbeat, metrics.

:func:`gate_figures` reads only (the cache, the journal and the running
gate's state) and returns plain JSON-able values; the mesh heartbeat
publishes exactly this, ``status --json`` shows it, and the metrics
exporter may read it rather than compute the same numbers again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib import metadata
from typing import Any, Protocol

from turnstiled.cache import Cache
from turnstiled.journal import Journal


class _Scanner(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...


def version() -> str:
    try:
        return metadata.version("turnstiled")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0+unknown"


def gate_figures(gate_id: str, cache: Cache | None, journal: Journal | None, *,
                 started: float, scanners: Iterable[_Scanner],
                 last_scan_at: float | None, now: float | None = None) -> dict[str, Any]:
    """Who this gate is and how it is doing, as the heartbeat publishes it.

    Keys: ``gate``, ``version``, ``uptime_s``, ``tickets`` and
    ``sync_age_s`` (per source; age None: never synced), ``backlog`` (scans
    waiting for upload, per source), ``mesh_backlog`` (decisions the broker
    has not acknowledged), ``scanners`` (name -> connected),
    ``scanner_connected`` (all of them), ``last_scan_at`` (Unix time or None).
    """
    now = time.time() if now is None else now
    tickets: dict[str, int] = {}
    sync_age: dict[str, float | None] = {}
    for s in cache.sources() if cache is not None else []:
        tickets[s["source"]] = int(s.get("tickets") or 0)
        last = s.get("last_sync")
        sync_age[s["source"]] = None if last is None else round(now - last, 1)
    backlog: dict[str, int] = {}
    mesh_backlog = 0
    if journal is not None:
        backlog = {src: int(b["pending"]) for src, b in journal.backlog().items()}
        mesh_backlog = journal.mesh_backlog()
    states = {s.name: bool(s.connected) for s in scanners}
    return {
        "gate": gate_id, "version": version(), "uptime_s": round(now - started, 1),
        "tickets": tickets, "sync_age_s": sync_age, "backlog": backlog,
        "mesh_backlog": mesh_backlog, "scanners": states,
        "scanner_connected": bool(states) and all(states.values()),
        "last_scan_at": last_scan_at,
    }
