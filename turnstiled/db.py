"""SQLite connections shared by the cache and the journal.

Both files hold personal data (names, barcodes): a writer creates them
``0640`` and takes any wider mode back to that, so neither is ever
world-readable (SQLite gives ``-wal`` and ``-shm`` the database's mode).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode; read-only ones need the file to exist."""
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                               isolation_level=None, check_same_thread=False)
    restrict(path)
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)


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
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error.

    SQLite rolls a transaction back by itself on some errors (a full disk
    among them); the original error is what the caller must see, so the
    explicit ROLLBACK runs only while a transaction is still open.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
