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

import sqlite3
import time
from collections.abc import Container, Iterable
from typing import Any

import sqlite_utils

from turnstiled.db import write_transaction

# Rows the drain may send: not a grant whose outcome at the gate is still open.
UPLOADABLE = "(outcome IS NULL OR outcome <> 'pending')"


class UploadStateMixin:
    """Upload-state methods of :class:`~turnstiled.journal.Journal` (which provides ``conn``)."""

    conn: sqlite3.Connection
    db: sqlite_utils.Database

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

    def pending(self, source: str) -> tuple[int, float | None]:
        """How many rows of *source* wait for upload, and when the oldest was scanned."""
        n, oldest = self.conn.execute(
            "SELECT COUNT(*), MIN(at) FROM scans WHERE upload = 'pending' AND source = ? "
            f"AND {UPLOADABLE}",
            (source,)).fetchone()
        return int(n), oldest

    def claim(self, source: str, limit: int,
              skip: Container[str | None] = ()) -> list[dict[str, Any]]:
        """Move the oldest pending rows of *source* (one event, not in *skip*) to in flight."""
        with write_transaction(self.conn) as conn:
            if skip:  # rare (an event refused): look past it
                events = [ev for ev, _ in conn.execute(
                    "SELECT event, MIN(id) AS first FROM scans WHERE upload = 'pending' "
                    f"AND source = ? AND {UPLOADABLE} GROUP BY event ORDER BY first",
                    (source,)) if ev not in skip]
            else:
                events = [ev for (ev,) in conn.execute(
                    "SELECT event FROM scans WHERE upload = 'pending' AND source = ? "
                    f"AND {UPLOADABLE} ORDER BY id LIMIT 1", (source,))]
            if not events:
                return []
            return self._claim(conn, source, events[0], limit)

    def claim_event(self, source: str, event: str | None, limit: int) -> list[dict[str, Any]]:
        """Move the oldest pending rows of *source* and *event* to in flight."""
        with write_transaction(self.conn) as conn:
            return self._claim(conn, source, event, limit)

    def _claim(self, conn: sqlite3.Connection, source: str, event: str | None,
               limit: int) -> list[dict[str, Any]]:
        rows = list(self.db.query(
            "SELECT * FROM scans WHERE upload = 'pending' AND source = ? "
            f"AND event IS ? AND {UPLOADABLE} ORDER BY id LIMIT ?", (source, event, limit)))
        conn.executemany(
            "UPDATE scans SET upload = 'inflight', attempts = attempts + 1 "
            "WHERE id = ? AND upload = 'pending'", [(r["id"],) for r in rows])
        return rows

    def settle(self, confirmed: list[int], rejected: dict[int, str],
               at: float | None = None, notes: dict[int, str] | None = None) -> None:
        """Mark in-flight rows confirmed or rejected (with the cloud's reason), in one commit.

        *notes* keeps a remark on a confirmed row (``already upstream: our earlier send``).
        """
        at = time.time() if at is None else at
        notes = notes or {}
        with write_transaction(self.conn) as conn:
            conn.executemany(
                "UPDATE scans SET upload = 'confirmed', uploaded_at = ?, upload_note = ? "
                "WHERE id = ? AND upload = 'inflight'",
                [(at, notes.get(i), i) for i in confirmed])
            conn.executemany(
                "UPDATE scans SET upload = 'rejected', uploaded_at = ?, upload_note = ? "
                "WHERE id = ? AND upload = 'inflight'",
                [(at, note[:500], i) for i, note in rejected.items()])

    def release(self, ids: Iterable[int], note: str, *, resent: Container[int] = ()) -> None:
        """Put in-flight rows back to pending after a failure that may pass, in one commit.

        Rows in *resent* may have reached the cloud (its answer was lost):
        they are marked ``resent``, as their next send may be a duplicate.
        """
        with write_transaction(self.conn) as conn:
            conn.executemany(
                "UPDATE scans SET upload = 'pending', upload_note = ?, resent = resent | ? "
                "WHERE id = ? AND upload = 'inflight'",
                [(note[:500], int(i in resent), i) for i in ids])

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
