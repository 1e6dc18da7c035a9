"""SQLite connections shared by the cache and the journal.

Both files hold personal data (names, barcodes): a writer creates them
``0640`` and takes any wider mode back to that, so neither is ever
world-readable (SQLite gives ``-wal`` and ``-shm`` the database's mode).

:class:`Database` gives rows as dicts and turns WAL on: all that the cache
and the journal asked of ``sqlite_utils.Database``, whose import (click,
dateutil, pluggy and sqlite-utils' own 4,000 lines) cost about 3 MB of
RSS in each of the gate's two processes (``scripts/bench memory``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# How long a connection waits for another one's lock before giving up.
BUSY_TIMEOUT_S = 30.0


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode; read-only ones need the file to exist."""
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                               isolation_level=None, check_same_thread=False)
    restrict(path)
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)


FILE_MODE = 0o640


def restrict(path: Path) -> None:
    """Create *path* (and tighten its WAL files) with at most :data:`FILE_MODE`."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            mode = p.stat().st_mode & 0o777
            if mode & ~FILE_MODE:
                os.chmod(p, mode & FILE_MODE)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection,
                      poll_s: float | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error.

    SQLite rolls a transaction back by itself on some errors (a full disk
    among them); the original error is what the caller must see, so the
    explicit ROLLBACK runs only while a transaction is still open.

    While another process holds the write lock, SQLite's own busy handler
    sleeps 1, 2, 5, 10 ... ms between its looks. With *poll_s* the lock is
    looked for every *poll_s* instead (the scan path: a drain's commit
    ending must not cost a scan a further millisecond or three), for at
    most :data:`BUSY_TIMEOUT_S` as well.
    """
    if poll_s is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        _begin_polling(conn, poll_s)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _begin_polling(conn: sqlite3.Connection, poll_s: float) -> None:
    """``BEGIN IMMEDIATE``, waiting for a busy lock in steps of *poll_s*."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = None
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + BUSY_TIMEOUT_S
                elif now >= deadline:
                    raise
            time.sleep(poll_s)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


class Checkpointer:
    """Copies a WAL database's log back into it, in a thread of its own.

    SQLite runs such a checkpoint (a copy of the changed pages plus an
    fsync of the database) inside whichever commit finds the log past
    ``wal_autocheckpoint`` pages. A writer that must not wait for one
    turns that off and calls :meth:`kick` when it can spare the disk;
    this thread then runs a PASSIVE checkpoint on its own connection,
    which never blocks the writer's next transaction. Errors are logged,
    and the next kick tries again.
    """

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self._conn = connect(path, readonly=False)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._wake = threading.Event()
        self._stopping = False
        self._running = False
        self._thread = threading.Thread(target=self._run, name=f"checkpoint-{path.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a checkpoint runs or has been asked for."""
        return self._running or self._wake.is_set()

    def kick(self) -> None:
        """Checkpoint soon (at once, unless one is running: then right after it)."""
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        """End the thread after the checkpoint under way, if any; close its connection.

        A checkpoint still running after *timeout* is left to finish on its
        own (a daemon thread): stopping the gate must not wait for a disk.
        """
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            self._running = True
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception as exc:  # the thread must live on: the log would only grow
                logger.warning("checkpoint of %s failed (tried again later): %s",
                               self.name, exc)
            finally:
                self._running = False


class Database:
    """Rows as dicts, and WAL on, over one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """The rows of one SELECT, each a dict of its column names."""
        cursor = self.conn.execute(sql, params)
        if cursor.description is None:
            raise ValueError("query() is for statements that return rows")
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def enable_wal(self) -> None:
        """Write-ahead logging: readers never wait for the writer (outside a transaction)."""
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode=wal")
