"""The scan journal (``journal.db``): the only record of what the gate did.

Precious, unlike the cache: WAL with ``synchronous=FULL``, and one
transaction per decision that appends the scan and updates the ticket's
local usage together. :meth:`Journal.record` returns only after that
commit, and the daemon moves the relay only after it returns. The
daemon's journal copies its log back into the database (a checkpoint,
with an fsync of its own) in a thread of its own, asked for after the
relay moved (:meth:`Journal.start_checkpoints`), never inside a scan's
commit. Nothing in the scan path deletes rows. Only this module writes
the journal, with the two parts :class:`Journal` mixes in:
:mod:`turnstiled.journal_peers` (the venue mesh) and
:mod:`turnstiled.journal_uploads` (the drain's upload states).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnstiled.db import Checkpointer, Database, connect, write_transaction
from turnstiled.journal_peers import PeerUsageMixin, migrate_peers
from turnstiled.journal_uploads import UploadStateMixin
from turnstiled.rules import Decision, Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce       TEXT NOT NULL UNIQUE,
    at          REAL NOT NULL,
    gate_id     TEXT NOT NULL,
    scanner     TEXT NOT NULL,
    direction   TEXT NOT NULL,
    barcode     TEXT NOT NULL,
    source      TEXT,
    event       TEXT,
    ticket_id   TEXT,
    granted     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    passed      INTEGER,
    upload      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    upload_note TEXT,
    uploaded_at REAL,
    resent      INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT
);
CREATE INDEX IF NOT EXISTS scans_upload ON scans (upload, id);
CREATE TABLE IF NOT EXISTS usage (
    barcode     TEXT NOT NULL,
    source      TEXT NOT NULL,
    entries     INTEGER NOT NULL DEFAULT 0,
    exits       INTEGER NOT NULL DEFAULT 0,
    inside      INTEGER NOT NULL DEFAULT 0,
    first_used  REAL,
    last_at     REAL,
    PRIMARY KEY (barcode, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
"""

# Upload states of a scan row. ``local``: its source has no upload endpoint
# (or the admission was annulled before upload: the arm never turned).
UPLOAD_STATES = ("pending", "inflight", "confirmed", "rejected", "local")

# What became of a granted scan at the gate (``outcome``; NULL for denials and
# rows from before this column). ``pending``: journaled, the gate not yet
# done; the drain holds such a row back. ``opened``: the relay pulsed (no
# passage sensor); ``passed`` / ``not passed``: what the passage sensor saw;
# ``unknown``: the process ended (or the gate failed) between the journal's
# commit and the relay; settled at the next start, usage kept (see
# :meth:`Journal.settle_unfinished`).
OUTCOMES = ("pending", "opened", "passed", "not passed", "unknown")

_INSERT_SCAN = (
    "INSERT INTO scans (nonce, at, gate_id, scanner, direction, barcode, source, event, "
    "ticket_id, granted, reason, detail, passed, upload, outcome) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The daemon's journal: a checkpoint after this many of its commits (a scan
# writes about 7 pages: SQLite's own default is a checkpoint per 1000), and
# SQLite's in-commit checkpoint only as a backstop, should that thread stall.
CHECKPOINT_COMMITS = 100
BACKSTOP_PAGES = 10000
# The scan's commit looks for a write lock another process holds (the
# drain) this often, instead of SQLite's 1, 2, 5 ... ms sleeps.
LOCK_POLL_S = 0.0002

NOTE_NOT_UPLOADED = "not passed: admission annulled, not uploaded"
NOTE_SETTLED = " (outcome unknown: the gate stopped before its outcome was journaled)"


def _put_usage(conn: sqlite3.Connection, barcode: str, source: str, usage: Usage,
               at: float) -> None:
    """Write the ticket's usage as of *at* (the newest row is the truth: see Journal.usage)."""
    conn.execute(
        "INSERT OR REPLACE INTO usage (barcode, source, entries, exits, inside, first_used, "
        "last_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (barcode, source, usage.entries, usage.exits, int(usage.inside), usage.first_used, at))


@dataclass(frozen=True, slots=True)
class Scan:
    """One decided scan, as it is written to the journal."""

    at: float
    gate_id: str
    scanner: str
    direction: str
    barcode: str
    decision: Decision
    source: str | None = None
    event: str | None = None
    ticket_id: str | None = None
    passed: bool | None = None
    upload: str = "pending"
    awaiting_gate: bool = False  # a grant whose relay has yet to move (outcome pending)


class Journal(PeerUsageMixin, UploadStateMixin):
    """The journal database; one instance per process that writes.

    Its writes (and the scan path's reads, and closing) are serialised by a
    lock, so the daemon's threads (decision worker, control socket) share
    one connection, never interleave transactions, and never use it while
    another thread closes it. The venue mesh's tables and methods (peer
    usage, occupancy, conflicts, the outbox) are in
    :mod:`turnstiled.journal_peers`; the drain's (upload states) in
    :mod:`turnstiled.journal_uploads`.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._wlock = threading.RLock()
        self._outcomes: dict[int, tuple[str, str]] = {}  # noted, not yet written
        self._checkpointer: Checkpointer | None = None
        self._commits = 0  # since the last checkpoint was asked for
        if readonly:
            self.conn = connect(self.path, readonly=True)
            self.db = Database(self.conn)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.path, readonly=False)
        self.db = Database(self.conn)
        self.db.enable_wal()
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        migrate_peers(self.conn)
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(scans)")}
        if "outcome" not in columns:  # a journal from before outcomes were recorded
            self.conn.execute("ALTER TABLE scans ADD COLUMN outcome TEXT")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._wlock:  # never under a thread that is still using the connection
            self.conn.close()

    # -- checkpoints -----------------------------------------------------
    def start_checkpoints(self) -> None:
        """Checkpoint in a thread of its own from now on, when :meth:`checkpoint_if_due`
        says so, not inside a commit (the daemon: a scan's commit must not wait
        for the copy and fsync of a thousand pages)."""
        with self._wlock:
            if self._checkpointer is None:
                self._checkpointer = Checkpointer(self.path)
                self._commits = 0
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")

    @property
    def checkpointing(self) -> bool:
        """True while the checkpoint thread copies (or is about to copy) the log."""
        return self._checkpointer is not None and self._checkpointer.busy

    def checkpoint_if_due(self) -> bool:
        """Ask for a checkpoint if :data:`CHECKPOINT_COMMITS` commits were made since
        the last one (call it when the disk can be spared: after the relay moved)."""
        if self._checkpointer is None or self._commits < CHECKPOINT_COMMITS:
            return False
        self._commits = 0
        self._checkpointer.kick()
        return True

    # -- the scan path ---------------------------------------------------
    def usage(self, source: str | None, barcode: str) -> Usage:
        """What *barcode* has done here, whichever source it was admitted under.

        Usage follows the barcode, not the source: a ticket listed by two
        sources, or one whose source was swapped or removed, never gets a
        fresh start. Each write carries the usage read here forward, so
        the most recent row (``last_at``) is the truth; *source* is kept
        for callers and ignored.
        """
        with self._wlock:
            row = self.conn.execute(
                "SELECT entries, exits, inside, first_used, last_at FROM usage "
                "WHERE barcode = ? ORDER BY last_at DESC LIMIT 1", (barcode,),
            ).fetchone()
        if row is None:
            return Usage()
        return Usage(row[0], row[1], bool(row[2]), row[3], row[4])

    def record(self, scan: Scan, usage: Usage | None = None) -> int:
        """Append *scan* and, if given, the ticket's new *usage*; durable on return."""
        d = scan.decision
        with self._wlock, write_transaction(self.conn, LOCK_POLL_S) as conn:
            if self._outcomes:
                self._write_outcomes(conn)
            cur = conn.execute(_INSERT_SCAN, (
                os.urandom(12).hex(), scan.at, scan.gate_id, scan.scanner, scan.direction,
                scan.barcode, scan.source, scan.event, scan.ticket_id, int(d.granted),
                d.reason, d.detail, None if scan.passed is None else int(scan.passed),
                scan.upload, "pending" if scan.awaiting_gate else None,
            ))
            if usage is not None and scan.source is not None:
                _put_usage(conn, scan.barcode, scan.source, usage, scan.at)
            self._commits += 1
        return int(cur.lastrowid or 0)

    def record_outcome(self, scan_id: int, outcome: str, note: str = "") -> None:
        """Note what the gate did after a grant (``opened`` or ``unknown``).

        Costs no write of its own: it is written in the next scan's
        transaction, or by :meth:`flush_outcomes` when the gate is idle. If
        the process ends first, the next start settles the row as
        ``unknown``, which is then the truth as far as the journal knows.
        """
        with self._wlock:
            self._outcomes[scan_id] = (outcome, note)

    def flush_outcomes(self) -> None:
        """Write the outcomes :meth:`record_outcome` noted (the decision worker, when idle)."""
        with self._wlock:
            if self._outcomes:
                with write_transaction(self.conn) as conn:
                    self._write_outcomes(conn)
                self._commits += 1

    def _write_outcomes(self, conn: sqlite3.Connection) -> None:
        conn.executemany("UPDATE scans SET outcome = ?, detail = detail || ? WHERE id = ?",
                         [(o, note, i) for i, (o, note) in self._outcomes.items()])
        self._outcomes.clear()

    def record_passage(self, scan_id: int, passed: bool, restore: Usage | None = None,
                       source: str | None = None, barcode: str | None = None) -> None:
        """Note whether the arm turned; if not, annul the admission.

        Not passed: the ticket's usage is put back, and the admission is
        never uploaded (``local``, with a note). No cloud has heard of it yet:
        the drain holds a grant back until this outcome is written, and the
        online checks use nothing upstream.
        """
        with self._wlock, write_transaction(self.conn) as conn:
            conn.execute(
                "UPDATE scans SET passed = ?, outcome = ?, detail = detail || ? WHERE id = ?",
                (int(passed), "passed" if passed else "not passed",
                 "" if passed else " (not passed)", scan_id),
            )
            self._commits += 1
            if passed:
                return
            conn.execute(
                "UPDATE scans SET upload = 'local', upload_note = ? "
                "WHERE id = ? AND upload = 'pending'", (NOTE_NOT_UPLOADED, scan_id))
            if restore is not None and source is not None and barcode is not None:
                _put_usage(conn, barcode, source, restore, time.time())

    def settle_unfinished(self) -> int:
        """At start-up: grants whose gate outcome never came become ``unknown``.

        The rule: the process ended between the journal's commit and the
        relay (or right after it), so nobody can say whether someone
        passed. The ticket's usage is KEPT and the admission is uploaded
        as usual: giving it back could let a second person in on the same
        ticket, while a guest wrongly counted is seen by staff (``scans``
        shows the row as ``unknown``) and let through by hand.
        """
        with self._wlock, write_transaction(self.conn) as conn:
            cur = conn.execute(
                "UPDATE scans SET outcome = 'unknown', detail = detail || ? "
                "WHERE outcome = 'pending'", (NOTE_SETTLED,))
        return cur.rowcount

    def log_event(self, kind: str, detail: str = "", at: float | None = None) -> None:
        """Journal a gate event that is not a scan (fire alarm, manual open, start)."""
        with self._wlock, self.conn:
            self.conn.execute("INSERT INTO events (at, kind, detail) VALUES (?, ?, ?)",
                              (time.time() if at is None else at, kind, detail))

    # -- readers ---------------------------------------------------------
    def recent(self, limit: int = 20, *, barcode: str | None = None,
               since_id: int = 0) -> list[dict[str, Any]]:
        """The newest scans first (optionally of one barcode)."""
        where, args = "id > ?", [since_id]
        if barcode is not None:
            where += " AND barcode = ?"
            args.append(barcode)
        return list(self.db.query(
            f"SELECT * FROM scans WHERE {where} ORDER BY id DESC LIMIT ?", (*args, limit)))

    def events(self, limit: int = 20,
               kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The newest gate events first (optionally only of *kinds*)."""
        if kinds is None:
            return list(self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?",
                                      (limit,)))
        marks = ", ".join("?" * len(kinds))
        return list(self.db.query(
            f"SELECT * FROM events WHERE kind IN ({marks}) ORDER BY id DESC LIMIT ?",
            (*kinds, limit)))

    def last_scan_at(self) -> float | None:
        """When the newest journaled scan was decided (None: no scan yet)."""
        row = self.conn.execute("SELECT at FROM scans ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def last_event(self, kind: str) -> dict[str, Any] | None:
        """The newest event of *kind* (e.g. whether an emergency hold is on)."""
        rows = list(self.db.query(
            "SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)))
        return rows[0] if rows else None

    def counts(self) -> dict[str, int]:
        """How many scans are in each upload state."""
        return dict(self.conn.execute(
            "SELECT upload, COUNT(*) FROM scans GROUP BY upload").fetchall())

    def iter_all(self) -> Iterator[dict[str, Any]]:
        yield from self.db.query("SELECT * FROM scans ORDER BY id")
