"""The ticket cache (``cache.db``): a disposable copy of the clouds' tickets.

One table per source (``"tickets:vivenu"``, ``"tickets:local"``), keyed
by barcode (a unique index), and the view ``tickets`` over them all, which
names each row's source. Scans read the view through :meth:`Cache.lookup`:
one index probe per source (:func:`pick` says which source counts when
several list a barcode); sync and ``turnstilectl import`` write it.

A full replacement of a source builds its new list into a table of its
own (``"build:vivenu"``: no old rows to delete; the rows appended as they
arrive, the barcode index built over all of them at the end), then, in
the same transaction, drops the old table and renames the new one into
its place. Readers (WAL)
see the old list until that commit and the new one after it, never half
of each; an interrupted build is rolled back with its transaction and
leaves the old list in use. That one transaction passes through the WAL
whole (a million tickets: some 140 MB), so a full replacement ends with a
checkpoint that truncates the WAL, and ``journal_size_limit`` caps what
any later checkpoint leaves behind.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from turnstiled.cache_tables import (
    BUILD_PREFIX,
    TABLE,
    TABLE_COLUMNS,
    decode_zones,
    ensure_table,
    index_barcodes,
    insert_sql,
    make_view,
    page_rows,
    quoted,
    source_tables,
    table_name,
    ticket_row,
)
from turnstiled.datafiles import ensure_cache
from turnstiled.db import Database, connect, write_transaction
from turnstiled.rules import Ticket

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 5  # 5: one table per source, the view `tickets` over them
SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source          TEXT PRIMARY KEY,
    last_full_sync  REAL,
    last_sync       REAL,
    last_attempt    REAL,
    last_error      TEXT,
    cursor          TEXT,
    state           TEXT NOT NULL DEFAULT 'idle'
);
"""
_LOOKUP = (
    "SELECT source, barcode, event, status, zones, valid_from, valid_until, entries, name, "
    "ticket_id, use_window FROM tickets WHERE barcode = ?"
)


# What a checkpoint may leave of the WAL (bytes); a full sync's WAL is truncated to 0.
JOURNAL_SIZE_LIMIT = 4 * 2**20
# A full sync's page caches (negative: KiB), main and temporary (see replace_pages).
BUILD_CACHE_KIB = -2000
BUILD_TEMP_CACHE_KIB = -1000

# Ticket counts per cache file, with the ``sources`` rows they were counted at.
_COUNTS: dict[Path, tuple[Any, dict[str, int]]] = {}


class Cache:
    """The ticket cache database; one instance per thread."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":  # turnstilectl lookup before any sync: no file at all
            self.conn = sqlite3.connect(":memory:", isolation_level=None,
                                        check_same_thread=False)
        else:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Disposable by design: a corrupt, foreign or older file is moved
                # aside and rebuilt, keeping the imported guest list (datafiles.py).
                ensure_cache(self.path)
            self.conn = connect(self.path, readonly)
        self.db = Database(self.conn)
        if not readonly:
            self.db.enable_wal()
            self.conn.executescript(SCHEMA)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            if not self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = 'tickets'"
            ).fetchone():
                with write_transaction(self.conn) as conn:
                    make_view(conn)
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self.conn.close()

    # -- the scan path ---------------------------------------------------
    def lookup(self, barcode: str, precedence: Sequence[str] | None = None) -> Ticket | None:
        """The ticket for *barcode* when several sources list it (see :func:`pick`)."""
        rows = self.conn.execute(_LOOKUP, (barcode,)).fetchall()
        r = pick(rows, precedence)
        if r is None:
            return None
        return Ticket(r[0], r[1], r[2], r[3], decode_zones(r[4]), r[5], r[6], r[7], r[8], r[9],
                      r[10])

    # -- writers ---------------------------------------------------------
    def upsert(self, tickets: Iterable[Ticket], *, batch: int = 5000) -> int:
        """Insert or update tickets, committing every *batch* tickets."""
        n = 0
        known: set[str] = set()
        now = time.time()
        for chunk in _chunks(tickets, batch):
            by_source: dict[str, list[tuple[Any, ...]]] = {}
            for t in chunk:
                by_source.setdefault(t.source, []).append(ticket_row(t, now))
            with write_transaction(self.conn) as conn:
                for source, rows in by_source.items():
                    ensure_table(conn, source, known)
                    conn.executemany(insert_sql(table_name(source)), rows)
            n += len(chunk)
        return n

    def put_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert rows given by column name (what :mod:`datafiles` keeps of an old cache)."""
        known: set[str] = set()
        with write_transaction(self.conn) as conn:
            for row in rows:
                cols = [c for c in TABLE_COLUMNS if c in row]
                ensure_table(conn, str(row["source"]), known)
                conn.execute(f"INSERT OR REPLACE INTO {table_name(str(row['source']))} "
                             f"({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                             [row[c] for c in cols])

    def replace_source(self, source: str, tickets: Iterable[Ticket]) -> int:
        """Swap the whole list of *source* for *tickets*, atomically."""
        return self.replace_pages(source, _chunks(tickets, 5000))

    def replace_pages(self, source: str, pages: Iterable[Iterable[Ticket]]) -> int:
        """Swap the whole list of *source* for the tickets of *pages*, atomically.

        The pages are read (fetched, decoded) and made statements by a thread
        of their own while this one runs them, appending the rows to the new
        table in the order they come (SQLite lets go of the GIL as it steps).
        Then the barcode index is built over the whole list at once: SQLite
        sorts the barcodes alone (in its temporary files, ``$TMPDIR``, else
        ``/var/tmp``: the unit's private one) and writes the index left to
        right, however much larger than the page cache it is. An error on
        either side rolls the whole build back.
        """
        n = 0
        table, build = table_name(source), quoted(BUILD_PREFIX + source)
        # What SQLite holds in memory while it builds, whatever the ticket
        # count: the page cache (its size is also that of the sort's runs in
        # memory, about 1 MB at the least) and the temporary one's. Appends
        # and the index build both go left to right and need few pages at
        # hand; 8 MB here cost 13 MB of peak RSS and were no faster, at 300k
        # nor at 1M tickets (issue 14).
        self.conn.execute(f"PRAGMA cache_size = {BUILD_CACHE_KIB}")
        self.conn.execute(f"PRAGMA temp.cache_size = {BUILD_TEMP_CACHE_KIB}")
        with write_transaction(self.conn) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {build}")
            conn.execute(f"CREATE TABLE {build} {TABLE}")
            for page in _ahead(page_rows(source, pages, build, time.time())):
                for sql, params, count in page:
                    conn.execute(sql, params)
                    n += count
            # The swap: the view is dropped first, as a rename checks every view.
            conn.execute("DROP VIEW IF EXISTS tickets")
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            if n:
                index_barcodes(conn, source, build)
                conn.execute(f"ALTER TABLE {build} RENAME TO {table}")
            else:  # no tickets: no table, and no probe of it at every lookup
                conn.execute(f"DROP TABLE {build}")
            make_view(conn)
        self.checkpoint()
        return n

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (after a bulk write).

        Readers in the middle of a lookup are waited for (the busy timeout);
        one that holds on longer only leaves the WAL for the next checkpoint.
        """
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.info("cache.db: a reader held the WAL; it is truncated at a later checkpoint")

    # -- freshness -------------------------------------------------------
    def mark_sync(self, source: str, *, full: bool, ok: bool, error: str | None = None,
                  cursor: str | None = None, state: str | None = None,
                  now: float | None = None) -> None:
        """Record a sync attempt of *source* (status shows it)."""
        now = time.time() if now is None else now
        self.conn.execute("INSERT OR IGNORE INTO sources (source) VALUES (?)", (source,))
        sets = ["last_attempt = ?", "last_error = ?"]
        args: list[Any] = [now, None if ok else (error or "failed")]
        if ok:
            sets.append("last_sync = ?")
            args.append(now)
            if full:
                sets.append("last_full_sync = ?")
                args.append(now)
        if cursor is not None:
            sets.append("cursor = ?")
            args.append(cursor)
        if state is not None:
            sets.append("state = ?")
            args.append(state)
        self.conn.execute(f"UPDATE sources SET {', '.join(sets)} WHERE source = ?",
                          (*args, source))

    def records(self) -> list[dict[str, Any]]:
        """Each source's sync record (the ``sources`` rows), without counting tickets."""
        return list(self.db.query("SELECT * FROM sources ORDER BY source"))

    def sources(self) -> list[dict[str, Any]]:
        """Each source's ticket count and sync record.

        Counting a million tickets takes a tenth of a second, and the count
        changes only when a sync or an import wrote, each of which then
        records its attempt in ``sources``: so a process remembers the count
        per database file and counts again only once those rows changed
        (status, the heartbeat and every metrics scrape ask).
        """
        rows = self.records()
        try:
            inode: int | None = self.path.stat().st_ino
        except OSError:  # ":memory:"
            inode = None
        key = (inode, tuple((r["source"], r["last_attempt"], r["last_sync"]) for r in rows))
        memo = _COUNTS.get(self.path)
        if inode is not None and memo is not None and memo[0] == key:
            counts = dict(memo[1])
        else:
            counts = {s: self.conn.execute(f"SELECT COUNT(*) FROM {table_name(s)}").fetchone()[0]
                      for s in source_tables(self.conn)}
            _COUNTS[self.path] = (key, dict(counts))
        out = []
        for row in rows:
            row["tickets"] = counts.pop(row["source"], 0)
            out.append(row)
        for source, count in sorted(counts.items()):
            out.append({"source": source, "tickets": count, "last_sync": None,
                        "last_full_sync": None, "last_attempt": None, "last_error": None,
                        "cursor": None, "state": "idle"})
        return out


def pick(rows: list[Any], precedence: Sequence[str] | None) -> Any:
    """Which row of one barcode counts (rows start with the source).

    *precedence* lists the active sources, first wins: the configured
    ``[sources.*]`` in configuration order, then ``local`` (a cloud knows
    its own tickets best; an imported list is the technician's fallback).
    Rows of sources not in it (a source removed from the configuration)
    are ignored. A row that refuses (``invalid``, ``cancelled``, ``used``,
    ``wrong_zone``) always wins over a ``valid`` one from another source:
    no source can overrule another's refusal. None: every source counts,
    by name.
    """
    if precedence is not None:
        rank = {s: i for i, s in enumerate(precedence)}
        rows = [r for r in rows if r[0] in rank]
    else:
        rank = {}
    if not rows:
        return None
    return min(rows, key=lambda r: (r[3] == "valid", rank.get(r[0], 0), r[0]))


def _ahead(chunks: Iterator[list[Any]], depth: int = 2) -> Iterator[list[Any]]:
    """*chunks*, produced by a thread of their own at most *depth* ahead.

    An error of the producer is raised here; when the consumer stops early
    (its write failed) the producer stops at its next chunk.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        else:
            put(("end", None))

    thread = threading.Thread(target=produce, name="cache-rows", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
