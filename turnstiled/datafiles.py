"""The data directory and the two databases at start-up: usable, recovered, or refused.

One place for what a broken file means (ARCHITECTURE.md, "two promises"):

- ``cache.db`` is disposable. A corrupt, foreign or old-layout file is
  moved aside (``cache.db.broken-<time>``, never deleted) and rebuilt from
  the sources, with one warning line. The imported guest list (source
  ``local``) exists nowhere else: its rows are copied from the old file
  when it can still be read; when not, the rebuilt cache carries a
  ``reimport_needed`` mark that ``status`` shows as an alarm until the
  next ``turnstilectl import``.
- ``journal.db`` is precious. A corrupt or foreign file is never touched:
  start-up stops with one line naming the file and what to do.
- A read-only data directory or a full disk stops start-up with one line.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from pathlib import Path

from turnstiled.errors import DataFileError

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
PROBE_BYTES = 1 << 20  # a start-up needs at least this much room for the journal
LOCAL = "local"  # importer.SOURCE (the importer imports the cache; not the other way)
REIMPORT = "reimport_needed"


def _inspect(path: Path) -> tuple[set[str], int, str]:
    """Tables, user_version and quick_check verdict of an SQLite file; raises on garbage."""
    with path.open("rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise sqlite3.DatabaseError("not an SQLite database")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    finally:
        conn.close()
    return tables, version, verdict


# -- the data directory ----------------------------------------------------
def check_data_dir(data_dir: str | Path, *, as_other_user: bool = False) -> None:
    """Refuse a data directory that cannot be created, is read-only or has no room.

    *as_other_user* (``--check``, often run by a technician, not the
    service's user): create nothing, and leave permissions to the daemon.
    """
    data = Path(data_dir)
    if as_other_user and not data.is_dir():
        return
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / f".turnstiled-probe-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block = bytes(PROBE_BYTES)
                while block:  # a nearly full disk takes part of a write, then refuses
                    block = block[os.write(fd, block):]
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataFileError(f"data directory {data}: the disk is full; free some space "
                                "(the journal needs room for every scan)") from None
        if as_other_user and exc.errno in (errno.EACCES, errno.EPERM):
            return
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise DataFileError(f"data directory {data} is not writable ({exc.strerror}): "
                                "check the mount and its owner ([paths] data_dir)") from None
        raise DataFileError(f"data directory {data}: {exc.strerror}") from None


# -- the journal: refuse, never repair -------------------------------------
def check_journal(path: str | Path, *, as_other_user: bool = False) -> None:
    """Refuse a ``journal.db`` that is corrupt or not a turnstiled journal; never changes it."""
    path = Path(path)
    if not path.exists():
        return
    what = None
    try:
        tables, _version, verdict = _inspect(path)
    except PermissionError:
        if as_other_user:
            return
        raise DataFileError(f"{path} is not readable by this user: check its owner") from None
    except (sqlite3.Error, OSError) as exc:
        what = f"cannot be read as a journal ({exc})"
    else:
        if tables and "scans" not in tables:
            what = "is not a turnstiled journal (another program's database?)"
        elif verdict != "ok":
            what = f"is damaged (integrity check: {verdict})"
    if what:
        raise DataFileError(
            f"{path} {what}; it was left untouched: it may hold scans not yet uploaded. "
            "Stop the service, move the file aside (keep it for recovery), then start again "
            "to begin a new journal")


# -- the cache: move aside and rebuild -------------------------------------
def ensure_cache(path: str | Path) -> str | None:
    """Make ``cache.db`` usable; returns the one line logged when it had to be rebuilt."""
    from turnstiled.cache import SCHEMA_VERSION
    from turnstiled.cache_tables import COLUMNS
    path = Path(path)
    if not path.exists():
        return None
    try:
        tables, version, verdict = _inspect(path)
    except (sqlite3.Error, OSError) as exc:
        problem = f"unreadable ({exc})"
    else:
        if not tables:
            return None  # a new, empty file: Cache lays it out
        if "tickets" not in tables:
            problem = "not a ticket cache (another program's database?)"
        elif version != SCHEMA_VERSION:
            problem = f"an older layout (version {version}, this version uses {SCHEMA_VERSION})"
        elif verdict != "ok":
            problem = f"damaged (integrity check: {verdict})"
        elif set(COLUMNS) - _columns(path):
            problem = "a layout this version does not know"
        else:
            return None
    rows = _local_rows(path, COLUMNS)
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(f"{aside}{suffix}")
    _rebuild(path, rows)
    if rows is None:
        kept = "the imported guest list could not be read: re-import it (turnstilectl import)"
    else:
        kept = f"{len(rows)} imported guest-list row(s) kept"
    line = (f"{path} is {problem}: moved aside to {aside.name} and rebuilt from the sources; "
            f"{kept}")
    logger.warning("%s", line)
    return line


def _columns(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return {r[1] for r in conn.execute("PRAGMA table_info(tickets)")}
    finally:
        conn.close()


def _local_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, object]] | None:
    """The imported rows of an old cache, by column name; None when they cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            have = {r[1] for r in conn.execute("PRAGMA table_info(tickets)")}
            if not have:
                return []  # no tickets table: nothing of ours was in it
            if not {"barcode", "source"} <= have:
                return None
            cols = [c for c in columns if c in have]
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM tickets WHERE source = ?",
                                (LOCAL,)).fetchall()
            return [dict(r) for r in rows]
        finally:
            conn.close()
    except (sqlite3.Error, OSError):
        return None


def _rebuild(path: Path, rows: list[dict[str, object]] | None) -> None:
    from turnstiled.cache import Cache
    cache = Cache(path)
    try:
        if rows:
            cache.put_rows(rows)
        if rows is None:
            cache.mark_sync(LOCAL, full=False, ok=False, state=REIMPORT,
                            error="cache.db was rebuilt and the imported guest list was "
                                  "unreadable: re-import it")
    finally:
        cache.close()


def cache_alarm(path: str | Path) -> str | None:
    """The alarm a rebuilt cache leaves until the guest list is imported again."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT last_error FROM sources WHERE source = ? AND state = ?",
                               (LOCAL, REIMPORT)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None
