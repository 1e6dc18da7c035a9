"""SQLite connections shared by the cache and the journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode; read-only ones need the file to exist."""
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                               isolation_level=None, check_same_thread=False)
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
