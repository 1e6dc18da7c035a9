"""The journal's venue part: usage shared by the gates of one venue (the mesh).

Part of the journal (:class:`turnstiled.journal.Journal` mixes it in):
only these methods write the mesh tables, and the mesh thread calls them.

- ``mesh_events``: every usage-changing decision of every gate of the
  venue, this gate's own included, keyed by the scan's nonce, so a
  duplicate or late delivery changes nothing. ``passed`` only ever goes
  from unknown (NULL) to 0 (not passed: the admission is annulled) or 1.
- ``occupancy``: people in per zone, kept with the events in one
  transaction, so the scan path reads one row.
- ``mesh_conflicts``: admissions beyond what a ticket allows, by gates
  that had not yet heard of each other (propagation window, partition).
- ``scans.mesh_pub``: the outbox. A granted scan whose state (its
  ``passed``, -1 while unknown) differs from ``mesh_pub`` has not been
  acknowledged by the broker yet and is published (again) by the mesh.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from turnstiled import rules
from turnstiled.db import write_transaction
from turnstiled.rules import Usage

PEER_SCHEMA = """
CREATE TABLE IF NOT EXISTS mesh_events (
    nonce       TEXT PRIMARY KEY,
    gate_id     TEXT NOT NULL,
    at          REAL NOT NULL,
    source      TEXT,
    bkey        TEXT NOT NULL,
    direction   TEXT NOT NULL,
    passed      INTEGER,
    policy      TEXT NOT NULL DEFAULT '',
    zone        TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mesh_events_bkey ON mesh_events (bkey, at);
CREATE INDEX IF NOT EXISTS mesh_events_received ON mesh_events (received_at);
CREATE TABLE IF NOT EXISTS occupancy (
    zone    TEXT PRIMARY KEY,
    ins     INTEGER NOT NULL DEFAULT 0,
    outs    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mesh_conflicts (
    nonce       TEXT PRIMARY KEY,
    bkey        TEXT NOT NULL,
    gate_id     TEXT NOT NULL,
    at          REAL NOT NULL,
    with_nonce  TEXT NOT NULL,
    with_gate   TEXT NOT NULL,
    with_at     REAL NOT NULL,
    detected_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mesh_conflicts_bkey ON mesh_conflicts (bkey);
"""

_OUTBOX_WHERE = "granted = 1 AND mesh_pub IS NOT coalesce(passed, -1)"


@dataclass(frozen=True, slots=True)
class VenueEvent:
    """One usage-changing decision of some gate of the venue."""

    nonce: str
    gate_id: str
    at: float
    bkey: str
    direction: str
    passed: bool | None = None
    source: str | None = None
    policy: str = ""
    zone: str = ""


@dataclass(frozen=True, slots=True)
class MergeResult:
    new: int = 0           # events (or annulments) this gate did not know
    conflicts: tuple[dict[str, Any], ...] = ()  # conflicts first seen in this merge
    gates: frozenset[str] = frozenset()  # the gates those new ones came from


def migrate_peers(conn: sqlite3.Connection) -> None:
    """Create the venue tables and the outbox column (journals from before the mesh)."""
    conn.executescript(PEER_SCHEMA)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(scans)")}
    if "mesh_pub" not in cols:
        conn.execute("ALTER TABLE scans ADD COLUMN mesh_pub INTEGER")
    conn.execute(f"CREATE INDEX IF NOT EXISTS scans_mesh ON scans (id) WHERE {_OUTBOX_WHERE}")


_ADMITTED = rules.Decision(True, rules.GRANTED)  # a peer's event that was not annulled


def _combine(local: Usage, peer: Usage) -> Usage:
    """This gate's usage plus its peers': counts add up, the newest change says inside."""
    newest = local
    if peer.last_at is not None and (local.last_at is None or peer.last_at > local.last_at):
        newest = peer
    firsts = [t for t in (local.first_used, peer.first_used) if t is not None]
    return Usage(local.entries + peer.entries, local.exits + peer.exits, newest.inside,
                 min(firsts) if firsts else None, newest.last_at)


class PeerUsageMixin:
    """Venue methods of :class:`~turnstiled.journal.Journal` (which provides ``conn``)."""

    conn: sqlite3.Connection
    _wlock: threading.RLock  # the journal's: one transaction at a time per connection

    # -- the scan path (reads only) ----------------------------------------
    def venue_usage(self, source: str, barcode: str, bkey: str,
                    gate_id: str) -> tuple[Usage, Usage]:
        """(this gate's usage, this gate's plus its peers') of one ticket."""
        # usage follows the barcode, whichever source (Journal.usage ignores *source*)
        local = self.usage(source, barcode)  # type: ignore[attr-defined]
        with self._wlock:
            rows = self.conn.execute(
                "SELECT direction, at FROM mesh_events WHERE bkey = ? AND gate_id != ? "
                "AND passed IS NOT 0 ORDER BY at, nonce", (bkey, gate_id)).fetchall()
        if not rows:
            return local, local
        peer = Usage()
        for direction, at in rows:  # what each admission or exit did, as at this gate
            peer = rules.apply(peer, _ADMITTED, direction, at)
        return local, _combine(local, peer)

    def occupancy(self) -> dict[str, int]:
        """People inside per zone (entries minus exits over every gate, never below 0)."""
        with self._wlock:
            rows = self.conn.execute("SELECT zone, ins, outs FROM occupancy "
                                     "WHERE ins OR outs ORDER BY zone").fetchall()
        return {z: max(0, i - o) for z, i, o in rows}

    def zone_occupancy(self, zone: str) -> int:
        with self._wlock:
            row = self.conn.execute("SELECT ins - outs FROM occupancy WHERE zone = ?",
                                    (zone,)).fetchone()
        return max(0, row[0]) if row else 0

    # -- the outbox ------------------------------------------------------
    def mesh_outbox(self, limit: int = 500) -> list[dict[str, Any]]:
        """Granted scans whose current state the broker has not acknowledged, oldest first."""
        return self._rows(
            "SELECT id, nonce, at, gate_id, direction, barcode, source, passed, "
            f"coalesce(passed, -1) AS state FROM scans WHERE {_OUTBOX_WHERE} "
            "ORDER BY id LIMIT ?", (limit,))

    def mesh_backlog(self) -> int:
        with self._wlock:
            return int(self.conn.execute(f"SELECT COUNT(*) FROM scans WHERE {_OUTBOX_WHERE}")
                       .fetchone()[0])

    # -- merging ---------------------------------------------------------
    def mesh_merge(self, events: Iterable[VenueEvent], now: float | None = None) -> MergeResult:
        """Merge venue events (this gate's own included) in one transaction, by nonce."""
        return self.mesh_step(events, (), now)

    def mesh_step(self, events: Iterable[VenueEvent], acked: Iterable[tuple[int, int]],
                  now: float | None = None) -> MergeResult:
        """One mesh worker step in one transaction: merge *events*, record *acked*.

        One short transaction per step, under the journal's lock, so the
        scan path waits for the mesh at most once per step (never on
        SQLite's busy-retry sleeps).
        """
        now = time.time() if now is None else now
        new = 0
        touched: set[str] = set()
        gates: set[str] = set()
        events, acked = list(events), list(acked)
        if not events and not acked:
            return MergeResult()
        with self._wlock, write_transaction(self.conn) as conn:
            conn.executemany("UPDATE scans SET mesh_pub = ? WHERE id = ?",
                             [(state, sid) for sid, state in acked])
            for ev in events:
                passed = None if ev.passed is None else int(ev.passed)
                cur = conn.execute(
                    "INSERT OR IGNORE INTO mesh_events (nonce, gate_id, at, source, bkey, "
                    "direction, passed, policy, zone, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ev.nonce, ev.gate_id, ev.at, ev.source, ev.bkey, ev.direction, passed,
                     ev.policy, ev.zone, now))
                if cur.rowcount == 1:
                    if passed != 0:
                        self._count(conn, ev.zone, ev.direction, +1)
                elif passed is not None:
                    cur = conn.execute(
                        "UPDATE mesh_events SET passed = ? WHERE nonce = ? AND passed IS NULL",
                        (passed, ev.nonce))
                    if cur.rowcount == 0:
                        continue  # a duplicate or an older state: nothing changes
                    if passed == 0:
                        self._count(conn, ev.zone, ev.direction, -1)
                else:
                    continue
                new += 1
                touched.add(ev.bkey)
                gates.add(ev.gate_id)
            conflicts: list[dict[str, Any]] = []
            for bkey in sorted(touched):
                conflicts += self._conflicts_of(conn, bkey, now)
        return MergeResult(new, tuple(conflicts), frozenset(gates))

    @staticmethod
    def _count(conn: sqlite3.Connection, zone: str, direction: str, delta: int) -> None:
        col = "ins" if direction == "in" else "outs"
        conn.execute(f"INSERT INTO occupancy (zone, {col}) VALUES (?, ?) "
                     f"ON CONFLICT (zone) DO UPDATE SET {col} = {col} + excluded.{col}",
                     (zone, delta))

    @staticmethod
    def _conflicts_of(conn: sqlite3.Connection, bkey: str, now: float) -> list[dict[str, Any]]:
        """Recompute one ticket's conflicts; return those not recorded before.

        Every gate sees the same events in the end and orders them the same
        way (time, then nonce), so every gate records the same conflicts.
        """
        old = {r[0] for r in conn.execute("SELECT nonce FROM mesh_conflicts WHERE bkey = ?",
                                          (bkey,))}
        conn.execute("DELETE FROM mesh_conflicts WHERE bkey = ?", (bkey,))
        limits = [rules.entry_limit(p) for (p,) in conn.execute(
            "SELECT DISTINCT policy FROM mesh_events WHERE bkey = ?", (bkey,))]
        limit = min((n for n in limits if n is not None), default=None)
        if limit is None:
            return []
        adm = conn.execute(
            "SELECT nonce, gate_id, at FROM mesh_events WHERE bkey = ? AND direction = 'in' "
            "AND passed IS NOT 0 ORDER BY at, nonce", (bkey,)).fetchall()
        fresh = []
        for i in range(limit, len(adm)):
            (nonce, gate, at), (w_nonce, w_gate, w_at) = adm[i], adm[i - limit]
            if gate == w_gate:
                continue  # one gate's own count: not a disagreement between gates
            conn.execute("INSERT INTO mesh_conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (nonce, bkey, gate, at, w_nonce, w_gate, w_at, now))
            if nonce not in old:
                fresh.append({"nonce": nonce, "gate_id": gate, "at": at,
                              "with_nonce": w_nonce, "with_gate": w_gate, "with_at": w_at})
        return fresh

    def prune_mesh(self, older_than: float, batch: int = 1000) -> int:
        """Forget venue events (and their conflicts) older than the journal's retention.

        Events go by when this gate received them (indexed: no scan of the
        whole table), *batch* at a time, each batch one short transaction
        under the journal's lock, so a scan waits for one batch at most.
        Occupancy counts stay as they are; a ticket's peer usage from before
        then is forgotten with them, as its scans are on the gate that made them.
        """
        total = 0
        while True:
            with self._wlock, write_transaction(self.conn) as conn:
                n = conn.execute(
                    "DELETE FROM mesh_events WHERE nonce IN (SELECT nonce FROM mesh_events "
                    "WHERE received_at < ? LIMIT ?)", (older_than, batch)).rowcount
                if n < batch:
                    conn.execute("DELETE FROM mesh_conflicts WHERE at < ?", (older_than,))
            total += n
            if n < batch:
                return total

    # -- readers ---------------------------------------------------------
    def mesh_conflicts(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT nonce, gate_id, at, with_nonce, with_gate, with_at, detected_at "
            "FROM mesh_conflicts ORDER BY detected_at DESC, at DESC LIMIT ?", (limit,))

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._wlock:
            cur = self.conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur]

    def conflicts_of_scans(self, nonces: list[str]) -> dict[str, dict[str, Any]]:
        """For each of these scan nonces in a conflict: the other admission (gate, time)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(nonces), 400):
            part = nonces[i:i + 400]
            marks = ",".join("?" * len(part))
            with self._wlock:
                rows = self.conn.execute(
                    "SELECT nonce, gate_id, at, with_nonce, with_gate, with_at FROM "
                    f"mesh_conflicts WHERE nonce IN ({marks}) OR with_nonce IN ({marks})",
                    (*part, *part)).fetchall()
            for n, g, at, wn, wg, wat in rows:
                if n in part:
                    out[n] = {"gate_id": wg, "at": wat}
                if wn in part:
                    out[wn] = {"gate_id": g, "at": at}
        return out

    def mesh_summary(self, gate_id: str) -> dict[str, Any]:
        """Counts for status and the heartbeat: peers heard, newest peer event, conflicts."""
        with self._wlock:
            peers, last = self.conn.execute(
                "SELECT COUNT(DISTINCT gate_id), MAX(received_at) FROM mesh_events "
                "WHERE gate_id != ?", (gate_id,)).fetchone()
            conflicts = self.conn.execute("SELECT COUNT(*) FROM mesh_conflicts").fetchone()[0]
        return {"peers_heard": int(peers or 0), "last_peer_event_at": last,
                "conflicts": int(conflicts)}
