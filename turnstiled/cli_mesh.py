"""``turnstilectl`` commands of the venue mesh: occupancy, fleet, and status' mesh block.

Occupancy and conflicts are read from the journal (read-only); the fleet
comes from the running daemon, which hears every gate's heartbeat.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import time
from typing import Any

from turnstiled.cli_common import emit, journal_readonly
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.errors import ControlError
from turnstiled.journal import Journal
from turnstiled.timeutil import ago, iso


def conflicts_of(journal: Journal | None, nonces: list[str]) -> dict[str, dict[str, Any]]:
    if journal is None or not nonces:
        return {}
    try:
        return journal.conflicts_of_scans(nonces)
    except sqlite3.OperationalError:  # a journal from before the mesh, not yet migrated
        return {}


def mesh_status(cfg: Config, daemon: dict[str, Any] | None, journal: Journal | None,
                 now: float) -> tuple[dict[str, Any], list[str]]:
    """status' ``mesh`` block: the daemon's link, the journal's conflicts."""
    live = (daemon or {}).get("mesh") or {}
    summary: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    if journal is not None:
        try:
            summary = journal.mesh_summary(cfg.gate.id)
            conflicts = journal.mesh_conflicts(10)
        except sqlite3.OperationalError:
            pass
    last = summary.get("last_peer_event_at")
    block = {
        "connected": bool(live.get("connected")), "peers": live.get("peers", 0),
        "last_event_age_s": live.get("last_event_age_s",
                                     None if last is None else round(now - last, 1)),
        "venue": cfg.mesh.venue if cfg.mesh else None, "broker": cfg.mesh.broker if cfg.mesh
        else None, "partitioned": live.get("partitioned"),
        "unacknowledged": live.get("unacknowledged"),
        "conflicts": [{"gates": [c["with_gate"], c["gate_id"]],
                       "times": [iso(c["with_at"]), iso(c["at"])]} for c in conflicts],
        "conflict_count": summary.get("conflicts", 0),
    }
    state = "connected" if block["connected"] else "NOT CONNECTED"
    lines = [f"mesh     {block['venue']} via {block['broker']}: {state}, "
             f"{block['peers']} peer(s) online, last peer event {ago(last, now)}"]
    lines += [f"CONFLICT one ticket admitted at {c['gates'][0]} {c['times'][0]} and at "
              f"{c['gates'][1]} {c['times'][1]}" for c in block["conflicts"]]
    return block, lines


def cmd_occupancy(cfg: Config, args: argparse.Namespace) -> int:
    zones: dict[str, int] = {}
    with journal_readonly(cfg) as journal:
        if journal is not None:
            with contextlib.suppress(sqlite3.OperationalError):  # a journal from before the mesh
                zones = journal.occupancy()
    g = cfg.gate
    data = {"zones": zones, "gate_zone": g.zone, "max_occupancy": g.max_occupancy or None}
    lines = [f"{zone:<20} {n:>7} inside" + (f" (max {g.max_occupancy})"
             if zone == g.zone and g.max_occupancy else "") for zone, n in zones.items()]
    if cfg.mesh is None:
        lines.insert(0, "no [mesh] configured: occupancy is counted from the venue's events")
    emit(args, data, "\n".join(lines) or "nobody inside (no entries recorded)")
    return 0


def cmd_fleet(cfg: Config, args: argparse.Namespace) -> int:
    if cfg.mesh is None:
        raise ControlError("no [mesh] configured: this gate has no fleet")
    rows = request(cfg.paths.control_socket, "fleet")["fleet"] or []
    now = time.time()
    data = [{"gate": r["gate"], "state": r["state"], "seen_age_s": r["seen_age_s"],
             "version": r.get("version"), "uptime_s": r.get("uptime_s"),
             "tickets": r.get("tickets"), "sync_age_s": r.get("sync_age_s"),
             "backlog": r.get("backlog"), "mesh_backlog": r.get("mesh_backlog"),
             "scanner_connected": r.get("scanner_connected"),
             "last_scan_at": iso(r.get("last_scan_at"))} for r in rows]
    lines = [f"{'GATE':<16} {'STATE':<8} {'SEEN':<10} {'VERSION':<10} {'TICKETS':>8} "
             f"{'BACKLOG':>7} SCANNER  LAST SCAN"]
    for r, row in zip(data, rows, strict=True):
        tickets = sum((r["tickets"] or {}).values())
        backlog = sum((r["backlog"] or {}).values())
        scanner = {True: "ok", False: "DOWN", None: "-"}[r["scanner_connected"]]
        last = row.get("last_scan_at")  # a Unix time (data holds it as ISO 8601)
        lines.append(f"{r['gate']:<16} {r['state']:<8} {ago(now - r['seen_age_s'], now):<10} "
                     f"{r['version'] or '-':<10} {tickets:>8} {backlog:>7} {scanner:<8} "
                     f"{ago(last, now)}")
    emit(args, data, "\n".join(lines) if data else "no gate heard of yet")
    return 0
