"""The journal's upload part: the states a scan row goes through on its way to the cloud.

Part of the journal (:class:`turnstiled.journal.Journal` mixes it in). A
row is journaled ``pending`` (or ``local``: nothing to upload, or an
admission annulled); the drain (``drain.py``, in the cloud process, on a
Journal of its own: these methods take no lock) claims it ``inflight``
while a batch is sent, then settles it ``confirmed`` or ``rejected``, or
releases it back to ``pending`` after a failure that may pass. Settled
rows are pruned after the retention period; pending and in-flight ones
never are.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Container, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from turnstiled.db import Database, write_transaction

# Rows the drain may send: not a grant whose outcome at the gate is still open.
UPLOADABLE = "(outcome IS NULL OR outcome <> 'pending')"
# What the drain reads of a claimed row (``claim`` returns them as sqlite3.Row),
# and where each is in such a row.
CLAIMED = "id, nonce, barcode, at, granted, direction, event, ticket_id, gate_id, resent"
ID, NONCE, BARCODE, AT, GRANTED, DIRECTION, EVENT, TICKET_ID, GATE_ID, RESENT = range(10)
# A set of row ids bound as one JSON array: one statement for a whole batch.
_IDS = "(SELECT value FROM json_each(?))"
_first = itemgetter(0)


@dataclass
class Settlement:
    """What a drain pass learnt of its rows, for :meth:`UploadStateMixin.apply`.

    ``back``: rows going back to pending, as (ids, note, resent flag).
    """

    confirmed: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)  # remarks on confirmed rows
    back: list[tuple[list[int], str, int]] = field(default_factory=list)
    tail: bool = False  # rows were claimed beyond the batch (a lone refusal's tail): the chain ends

    def release(self, ids: Iterable[int], note: str, resent: Container[int] = ()) -> None:
        """Rows back to pending; those in *resent* may have reached the cloud."""
        ids = list(ids)
        for group, flag in (([i for i in ids if i in resent], 1),
                            ([i for i in ids if i not in resent], 0)):
            if group:
                self.back.append((group, note, flag))

    def __bool__(self) -> bool:
        return bool(self.confirmed or self.rejected or self.back)


def _where(source: str, skip: Collection[str | None]) -> tuple[str, list[Any]]:
    """The claim's row filter: *source*'s rows of any event not in *skip*."""
    where, args = "source = ?", [source]
    if skip:  # rare (an event refused): look past it
        named = [ev for ev in skip if ev is not None]
        if None in skip:
            where += " AND event IS NOT NULL"
        if named:
            where += (" AND (event IS NULL OR event NOT IN "
                      "(SELECT value FROM json_each(?)))")
            args.append(json.dumps(named))
    return where, args


class UploadStateMixin:
    """Upload-state methods of :class:`~turnstiled.journal.Journal` (which provides ``conn``)."""

    conn: sqlite3.Connection
    db: Database

    # -- the drain (its own connection; each step one short transaction) --
    def recover_inflight(self) -> int:
        """After a restart: rows left in flight go back to pending, marked ``resent``.

        The cloud may already hold them (if the process died between its
        answer and our commit); ``resent`` keeps that visible.
        """
        with write_transaction(self.conn) as conn:
            cur = conn.execute(
                "UPDATE scans SET upload = 'pending', resent = 1 WHERE upload = 'inflight'")
        return cur.rowcount

    def pending(self, source: str, limit: int | None = None) -> tuple[int, float | None]:
        """How many rows of *source* wait for upload, and when the oldest was scanned.

        With *limit*, only the first *limit* rows in journal order are looked
        at (the drain asks whether a batch is full: no need to count a
        backlog of thousands each time).
        """
        n, oldest = self.conn.execute(
            "SELECT COUNT(*), MIN(at) FROM (SELECT at FROM scans WHERE upload = 'pending' "
            f"AND source = ? AND {UPLOADABLE} ORDER BY id LIMIT ?)",
            (source, -1 if limit is None else limit)).fetchone()
        return int(n), oldest

    def claim(self, source: str, limit: int,
              skip: Collection[str | None] = ()) -> list[sqlite3.Row]:
        """Move the oldest pending rows of *source* (of any event not in *skip*) to in flight.

        The rows come in journal order, as :data:`CLAIMED` columns; one
        batch may hold several events (the drain sends each its request).
        Oldest first whatever the event keeps a batch's rows on few pages,
        so its commits write little.
        """
        with write_transaction(self.conn) as conn:
            return self._claim(conn, *_where(source, skip), limit)

    def peek(self, source: str, limit: int,
             skip: Collection[str | None] = ()) -> list[tuple[Any, ...]]:
        """The rows :meth:`claim` would take now, read only (the drain reads ahead);
        tuples of the :data:`CLAIMED` columns."""
        where, args = _where(source, skip)
        return self.conn.execute(
            f"SELECT {CLAIMED} FROM scans WHERE upload = 'pending' AND {where} AND "
            f"{UPLOADABLE} ORDER BY id LIMIT ?", (*args, limit)).fetchall()

    def claimed(self, ids: list[int]) -> list[sqlite3.Row]:
        """Rows *ids* as :meth:`claim` returns them, in journal order."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(f"SELECT {CLAIMED} FROM scans WHERE id IN {_IDS} ORDER BY id",
                           (json.dumps(ids),)).fetchall()

    def claim_event(self, source: str, event: str | None, limit: int) -> list[sqlite3.Row]:
        """Move the oldest pending rows of *source* and *event* to in flight."""
        with write_transaction(self.conn) as conn:
            return self._claim(conn, "source = ? AND event IS ?", [source, event], limit)

    def _claim(self, conn: sqlite3.Connection, where: str, args: list[Any],
               limit: int) -> list[sqlite3.Row]:
        # One statement: the rows are chosen, moved and read in one pass, in C.
        cur = conn.cursor()
        cur.row_factory = sqlite3.Row
        rows = cur.execute(
            "UPDATE scans SET upload = 'inflight', attempts = attempts + 1 WHERE id IN "
            f"(SELECT id FROM scans WHERE upload = 'pending' AND {where} AND {UPLOADABLE} "
            f"ORDER BY id LIMIT ?) RETURNING {CLAIMED}", (*args, limit)).fetchall()
        rows.sort(key=_first)  # RETURNING promises no order
        return rows

    def settle(self, confirmed: list[int], rejected: dict[int, str],
               at: float | None = None, notes: dict[int, str] | None = None) -> None:
        """Mark in-flight rows confirmed or rejected (with the cloud's reason), in one commit.

        *notes* keeps a remark on a confirmed row (``already upstream: our earlier send``).
        """
        self.apply(Settlement(confirmed=list(confirmed), rejected=dict(rejected),
                              notes=dict(notes or {})), at=at)

    def release(self, ids: Iterable[int], note: str, *, resent: Container[int] = ()) -> None:
        """Put in-flight rows back to pending after a failure that may pass, in one commit.

        Rows in *resent* may have reached the cloud (its answer was lost):
        they are marked ``resent``, as their next send may be a duplicate.
        """
        s = Settlement()
        s.release(ids, note, resent)
        self.apply(s)

    def apply(self, s: Settlement, at: float | None = None, *,
              claim: tuple[str, int, Collection[str | None]] | None = None) -> list[int]:
        """Write what a drain pass learnt (:class:`Settlement`) in one commit.

        Only in-flight rows change; the releases go last, in their order.
        With *claim* (source, limit, skip), the same commit then moves the
        next batch to in flight, as :meth:`claim` would, and its ids are
        returned in journal order (the drain sends that batch next: one
        commit per batch instead of two).
        """
        at = time.time() if at is None else at
        notes = s.notes
        plain = [i for i in s.confirmed if i not in notes] if notes else s.confirmed
        with write_transaction(self.conn) as conn:
            if plain:  # the usual answer: the whole batch taken, one statement
                conn.execute(
                    "UPDATE scans SET upload = 'confirmed', uploaded_at = ?, upload_note = NULL "
                    f"WHERE upload = 'inflight' AND id IN {_IDS}", (at, json.dumps(plain)))
            if notes:
                conn.executemany(
                    "UPDATE scans SET upload = 'confirmed', uploaded_at = ?, upload_note = ? "
                    "WHERE id = ? AND upload = 'inflight'",
                    [(at, notes[i], i) for i in s.confirmed if i in notes])
            if s.rejected:
                conn.executemany(
                    "UPDATE scans SET upload = 'rejected', uploaded_at = ?, upload_note = ? "
                    "WHERE id = ? AND upload = 'inflight'",
                    [(at, note[:500], i) for i, note in s.rejected.items()])
            for ids, note, flag in s.back:
                conn.execute(
                    "UPDATE scans SET upload = 'pending', upload_note = ?, resent = resent | ? "
                    f"WHERE upload = 'inflight' AND id IN {_IDS}",
                    (note[:500], flag, json.dumps(ids)))
            if claim is None:
                return []
            source, limit, skip = claim
            where, args = _where(source, skip)
            ids = [r[0] for r in conn.execute(
                "UPDATE scans SET upload = 'inflight', attempts = attempts + 1 WHERE id IN "
                f"(SELECT id FROM scans WHERE upload = 'pending' AND {where} AND {UPLOADABLE} "
                "ORDER BY id LIMIT ?) RETURNING id", (*args, limit))]
        ids.sort()  # RETURNING promises no order
        return ids

    def backlog(self) -> dict[str, dict[str, Any]]:
        """Per source: rows waiting for upload and the time of the oldest."""
        out: dict[str, dict[str, Any]] = {}
        for source, n, oldest in self.conn.execute(
                "SELECT source, COUNT(*), MIN(at) FROM scans "
                "WHERE upload IN ('pending', 'inflight') GROUP BY source"):
            out[source or ""] = {"pending": n, "oldest_at": oldest}
        return out

    def prune(self, older_than: float, batch: int = 5000) -> int:
        """Delete settled rows (confirmed, rejected, local) older than *older_than*.

        Pending and in-flight rows are never pruned, however old.
        """
        total = 0
        while True:
            with write_transaction(self.conn) as conn:
                cur = conn.execute(
                    "DELETE FROM scans WHERE id IN (SELECT id FROM scans WHERE at < ? AND "
                    "upload IN ('confirmed', 'rejected', 'local') ORDER BY id LIMIT ?)",
                    (older_than, batch))
            total += cur.rowcount
            if cur.rowcount < batch:
                return total
