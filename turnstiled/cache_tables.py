"""How ``cache.db`` lays tickets out: one table per source, the view ``tickets`` over them.

Each source's tickets are a table keyed by barcode (the unique index
``"barcode:<source>"``), named after the source (``"tickets:vivenu"``); the
view ``tickets`` unites them with each row's source, so a lookup is one
index probe per source. A full list is built as ``"build:<source>"`` (its
rows appended as they come, then indexed) before it takes the old table's
place (:mod:`turnstiled.cache`). A table of layout 5 as first released
(WITHOUT ROWID, keyed by its primary key) is read and written alike until
the next full sync replaces it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

from turnstiled.rules import Ticket

_COLUMN_DEFS = """
    barcode     TEXT NOT NULL,
    event       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'valid',
    zones       TEXT NOT NULL DEFAULT '',
    valid_from  REAL,
    valid_until REAL,
    entries     TEXT NOT NULL DEFAULT 'single',
    name        TEXT NOT NULL DEFAULT '',
    ticket_id   TEXT NOT NULL DEFAULT '',
    updated_at  REAL,
    use_window  REAL"""
# One source's tickets (its name is the table's: see table_name), keyed by barcode
# through the unique index index_barcodes gives it.
TABLE = f"({_COLUMN_DEFS})"
INDEX_PREFIX = "barcode:"
TABLE_PREFIX = "tickets:"
# A full replacement's new list, until it takes the old one's place.
BUILD_PREFIX = "build:"

COLUMNS = (  # the view's
    "barcode", "source", "event", "status", "zones", "valid_from", "valid_until",
    "entries", "name", "ticket_id", "updated_at", "use_window",
)
TABLE_COLUMNS = tuple(c for c in COLUMNS if c != "source")  # a source table's, in order
ZONE_SEP = "\x1f"  # ASCII unit separator: never part of a zone name


def encode_zones(zones: Iterable[str]) -> str:
    return ZONE_SEP.join(z for z in zones if z)


def decode_zones(text: str) -> tuple[str, ...]:
    return tuple(text.split(ZONE_SEP)) if text else ()


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name(source: str) -> str:
    """The quoted name of *source*'s table."""
    return quoted(TABLE_PREFIX + source)


def insert_sql(table: str) -> str:
    return (f"INSERT OR REPLACE INTO {table} "
            f"({', '.join(TABLE_COLUMNS)}) VALUES ({', '.join('?' for _ in TABLE_COLUMNS)})")


def source_tables(conn: sqlite3.Connection) -> list[str]:
    """The sources that have a table, by name."""
    return sorted(name[len(TABLE_PREFIX):] for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
        (len(TABLE_PREFIX), TABLE_PREFIX)))


def make_view(conn: sqlite3.Connection) -> None:
    """(Re)create the view ``tickets``: every source table's rows, with their source."""
    arms = [f"SELECT barcode, {sql_text(s)} AS source, "
            f"{', '.join(TABLE_COLUMNS[1:])} FROM {table_name(s)}" for s in source_tables(conn)]
    if not arms:  # no source yet: a view of the right columns and no rows
        arms = ["SELECT " + ", ".join(f"NULL AS {c}" for c in COLUMNS) + " WHERE 0"]
    conn.execute("DROP VIEW IF EXISTS tickets")
    conn.execute("CREATE VIEW tickets AS " + " UNION ALL ".join(arms))


def ensure_table(conn: sqlite3.Connection, source: str, known: set[str]) -> None:
    """Give *source* a table (and the view its rows), inside the caller's transaction."""
    if source not in known:
        if source not in source_tables(conn):
            conn.execute(f"CREATE TABLE {table_name(source)} {TABLE}")
            index_barcodes(conn, source, table_name(source))
            make_view(conn)
        known.add(source)


def index_barcodes(conn: sqlite3.Connection, source: str, table: str) -> None:
    """Key *table*, the list of *source*, by barcode: its unique index.

    Built over a whole list at once, SQLite sorts the barcodes and writes
    the index left to right. A barcode read twice (the cloud listed a ticket
    again after it changed mid-sync) keeps its last reading, the row
    inserted last.
    """
    index = quoted(INDEX_PREFIX + source)
    try:
        conn.execute(f"CREATE UNIQUE INDEX {index} ON {table} (barcode)")
    except sqlite3.IntegrityError:
        conn.execute(f"DELETE FROM {table} WHERE rowid NOT IN "
                     f"(SELECT max(rowid) FROM {table} GROUP BY barcode)")
        conn.execute(f"CREATE UNIQUE INDEX {index} ON {table} (barcode)")


def ticket_row(t: Ticket, now: float) -> tuple[Any, ...]:
    """A ticket as its source table's row (:data:`TABLE_COLUMNS` order)."""
    return (t.barcode, t.event, t.status, encode_zones(t.zones), t.valid_from, t.valid_until,
            t.entries, t.name, t.ticket_id, now, t.use_window_s)


# Rows a statement of :func:`page_rows` inserts: one execute binds them all, then
# SQLite inserts them with the GIL let go (executemany took it back for every row).
ROWS_PER_STATEMENT = 100


def page_rows(source: str, pages: Iterable[Iterable[Ticket]], table: str,
              now: float) -> Iterator[list[tuple[str, tuple[Any, ...], int]]]:
    """Each page as the (statement, parameters, rows) that insert it into *table*.

    A ticket of another source is an error. A page of
    :class:`turnstiled.backends.base.Rows` (plain tuples, told by its
    ``rows``; not imported here, which would load every backend) is written
    without a Ticket per row, and what all its rows share (``entries``, the
    time) is bound once per statement rather than to every row. Each
    statement inserts up to :data:`ROWS_PER_STATEMENT` rows (``VALUES
    (...), (...)``), which binds at half the cost of ``executemany``.
    """
    sep = ZONE_SEP
    for page in pages:
        if hasattr(page, "rows"):
            if page.source != source:
                raise ValueError(f"replace_pages({source!r}) got a ticket of another source")
            rows = page.rows if page.encoded else [
                (b, e, st, sep.join(z), nm, tid) for b, e, st, z, nm, tid in page.rows]
            yield list(_values(table, _ROWS_COLUMNS, rows, (page.entries, float(now))))
        else:
            rows = []
            for t in page:
                if t.source != source:
                    raise ValueError(
                        f"replace_pages({source!r}) got a ticket of another source")
                rows.append(ticket_row(t, now))
            yield list(_values(table, TABLE_COLUMNS, rows, ()))


# The columns of a Rows page's rows, then those it binds once for all of them.
_ROWS_COLUMNS = ("barcode", "event", "status", "zones", "name", "ticket_id", "entries",
                 "updated_at")


def _values(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]],
            shared: tuple[Any, ...]) -> Iterator[tuple[str, tuple[Any, ...], int]]:
    """Statements inserting *rows* (the first columns) with *shared* (the last ones) in each."""
    step = ROWS_PER_STATEMENT
    for i in range(0, len(rows), step):
        chunk = rows[i:i + step]
        yield (_values_sql(table, columns, len(shared), len(chunk)),
               (*shared, *chain.from_iterable(chunk)), len(chunk))


@functools.lru_cache(maxsize=64)
def _values_sql(table: str, columns: tuple[str, ...], shared: int, count: int) -> str:
    """``INSERT INTO table (columns) VALUES`` *count* rows; ``?1``.. are the shared values."""
    width = len(columns) - shared
    tail = "".join(f", ?{k + 1}" for k in range(shared))
    values = ", ".join(
        "(" + ", ".join(f"?{shared + r * width + k + 1}" for k in range(width)) + tail + ")"
        for r in range(count))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


def sql_text(value: str) -> str:
    """*value* as an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
