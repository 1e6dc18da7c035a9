"""The scan's commit: no checkpoint inside it, and a short wait for another writer's lock.

A checkpoint (the WAL copied back into the database, with an fsync of its
own) is left to the journal's checkpoint thread, asked for after the relay
moved; a lock the drain's process holds is looked for in fine steps, not
SQLite's 1, 2, 5 ... ms sleeps. Asserted on what the files hold, never on
how long anything took.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from turnstiled import db
from turnstiled.journal import BACKSTOP_PAGES, CHECKPOINT_COMMITS, Journal, Scan
from turnstiled.rules import Decision, Usage

GRANT = Decision(True, "granted", "")


def record(j: Journal, i: int) -> int:
    now = time.time()
    return j.record(Scan(now, "g1", "entry", "in", f"CODE{i:06d}", GRANT, "local",
                         awaiting_gate=True), Usage(1, 0, True, now, now))


def scans_in_main_file(path: Path) -> int:
    """Scans the database file itself holds, its WAL ignored (what checkpoints copied)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM scans").fetchone()[0]
    except sqlite3.DatabaseError:  # not even the table copied yet, or a copy under way
        return 0
    finally:
        conn.close()


def test_commits_leave_the_checkpoint_to_the_thread(tmp_path):
    # Control: SQLite's own checkpoint runs inside a commit once the WAL has
    # 1000 pages, and the scans land in the database file.
    plain = Journal(tmp_path / "plain.db")
    for i in range(200):
        record(plain, i)
    assert scans_in_main_file(plain.path) > 0
    plain.close()

    j = Journal(tmp_path / "journal.db")
    assert not j.checkpointing
    j.start_checkpoints()
    assert j.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    for i in range(200):
        record(j, i)
    # No commit ran a checkpoint: every scan is still only in the WAL.
    assert scans_in_main_file(j.path) == 0
    assert j.checkpoint_if_due() is True
    assert wait_until(lambda: scans_in_main_file(j.path) == 200, timeout=30)
    assert wait_until(lambda: not j.checkpointing, timeout=30)
    assert j.checkpoint_if_due() is False  # nothing committed since it was asked for
    j.close()
    assert not any(t.name == "checkpoint-journal.db" for t in threading.enumerate())


def test_checkpoints_are_asked_for_every_so_many_commits(tmp_path):
    j = Journal(tmp_path / "journal.db")
    for i in range(CHECKPOINT_COMMITS):
        record(j, i)
    assert j.checkpoint_if_due() is False  # not started: SQLite's own checkpoints
    j.start_checkpoints()
    for i in range(CHECKPOINT_COMMITS - 1):
        record(j, 1000 + i)
    assert j.checkpoint_if_due() is False
    sid = record(j, 5000)
    j.record_outcome(sid, "opened")
    assert j.checkpoint_if_due() is True
    j.flush_outcomes()  # outcomes written on their own are commits too
    assert j.checkpoint_if_due() is False
    j.close()


def test_the_daemon_checkpoints_after_the_relay(start_gate):
    gate = start_gate([])
    daemon = gate.daemon
    assert daemon.journal.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
        BACKSTOP_PAGES
    for i in range(CHECKPOINT_COMMITS + 5):
        daemon.submit(f"UNKNOWN{i:05d}".encode(), "entry")
        assert gate.next().evaluation.decision.reason == "unknown"  # denied and journaled
    # The decision worker asked for a checkpoint after the 100th scan, and the
    # thread copied at least those into the database file.
    assert wait_until(lambda: scans_in_main_file(daemon.cfg.paths.journal_db)
                      >= CHECKPOINT_COMMITS, timeout=30)


def hold_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    return other


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "x.db"
    conn = db.connect(path, readonly=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (v INTEGER)")
    conn.close()
    return path


def test_a_busy_write_lock_is_waited_for_in_short_steps(table):
    conn = db.connect(table, readonly=False)
    other = hold_write_lock(table)
    threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
    with db.write_transaction(conn, poll_s=0.0002):
        conn.execute("INSERT INTO t VALUES (2)")
    assert sorted(v for (v,) in conn.execute("SELECT v FROM t")) == [1, 2]
    # The connection's own busy timeout is back for everything else.
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_S * 1000
    other.close()
    conn.close()


def test_a_lock_never_released_gives_up_after_the_busy_timeout(table, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.3)
    conn = db.connect(table, readonly=False)
    other = hold_write_lock(table)
    with (pytest.raises(sqlite3.OperationalError, match="locked"),
          db.write_transaction(conn, poll_s=0.0002)):
        conn.execute("INSERT INTO t VALUES (2)")
    assert not conn.in_transaction
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    other.execute("ROLLBACK")
    other.close()
    conn.close()
