"""The figures one gate reports about itself, read once for status, heartbeat and metrics.

:func:`read` is the one reading of the databases: each ticket source's
count and sync record with its age, the upload backlog with its oldest
scan, and when the gate last decided a scan. Everyone shows it in their
own shape: :func:`stored` (``turnstilectl status``, the Prometheus
metrics) opens read-only connections of its own per call, so it never
touches the scan thread's connection and works whether the daemon runs or
not; :func:`gate_figures` is what the mesh heartbeat publishes, through the
mesh thread's connections. The daemon's live figures (relay, scanners,
alarms) are :meth:`turnstiled.daemon.Daemon.status`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from importlib import metadata
from typing import Any, Protocol

from turnstiled.cache import Cache
from turnstiled.config import Config
from turnstiled.journal import Journal


class _Scanner(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...


@functools.cache
def version() -> str:
    try:
        return metadata.version("turnstiled")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0+unknown"


def _age(ts: float | None, now: float) -> float | None:
    return None if ts is None else round(now - ts, 1)


def read(cache: Cache | None, journal: Journal | None, now: float | None = None, *,
         counts: bool = False) -> dict[str, Any]:
    """Sources, upload backlog and last scan, as the databases hold them.

    ``sources``: one dict per source (``source``, ``tickets``, ``last_sync``,
    ``last_full_sync``, ``last_attempt``, ``last_error``, ``state``, ...) plus
    ``sync_age_s`` (None: never synced). ``backlog``: per source, scans the
    cloud has not confirmed yet (``pending``), the time of the oldest
    (``oldest_at``) and its age. ``last_scan_at``: the newest journaled
    scan. With *counts*, ``journal``: scans per upload state. Times are Unix
    seconds; a database not given gives empty figures.
    """
    now = time.time() if now is None else now
    out: dict[str, Any] = {"sources": [], "backlog": {}, "last_scan_at": None}
    if counts:
        out["journal"] = {}
    if cache is not None:
        out["sources"] = [{**s, "sync_age_s": _age(s.get("last_sync"), now)}
                          for s in cache.sources()]
    if journal is not None:
        out["backlog"] = {src: {**b, "oldest_age_s": _age(b["oldest_at"], now)}
                          for src, b in journal.backlog().items()}
        out["last_scan_at"] = journal.last_scan_at()
        if counts:
            out["journal"] = journal.counts()
    return out


def open_readonly(cfg: Config) -> tuple[Cache | None, Journal | None]:
    """Read-only connections to both databases (None for a file not there yet)."""
    try:
        cache: Cache | None = Cache(cfg.paths.cache_db, readonly=True)
    except (FileNotFoundError, OSError):
        cache = None
    try:
        journal: Journal | None = Journal(cfg.paths.journal_db, readonly=True)
    except (FileNotFoundError, OSError):
        journal = None
    return cache, journal


def stored(cfg: Config, now: float | None = None, *, counts: bool = True) -> dict[str, Any]:
    """:func:`read` through read-only connections of its own (per call)."""
    cache, journal = open_readonly(cfg)
    try:
        return read(cache, journal, now, counts=counts)
    finally:
        for db in (cache, journal):
            if db is not None:
                db.close()


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
    figs = read(cache, journal, now)
    states = {s.name: bool(s.connected) for s in scanners}
    return {
        "gate": gate_id, "version": version(), "uptime_s": round(now - started, 1),
        "tickets": {s["source"]: int(s.get("tickets") or 0) for s in figs["sources"]},
        "sync_age_s": {s["source"]: s["sync_age_s"] for s in figs["sources"]},
        "backlog": {src: int(b["pending"]) for src, b in figs["backlog"].items()},
        "mesh_backlog": journal.mesh_backlog() if journal is not None else 0,
        "scanners": states,
        "scanner_connected": bool(states) and all(states.values()),
        "last_scan_at": last_scan_at if last_scan_at is not None else figs["last_scan_at"],
    }
