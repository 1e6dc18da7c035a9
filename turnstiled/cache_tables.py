"""How ``cache.db`` lays tickets out: one table per source, the view ``tickets`` over them.

Each source's tickets are a WITHOUT ROWID table keyed by barcode, named
after the source (``"tickets:vivenu"``); the view ``tickets`` unites them
with each row's source, so a lookup is one primary-key probe per source.
A full list is built as ``"build:<source>"`` (from a temporary heap of its
rows, sorted) before it takes the old table's place (:mod:`turnstiled.cache`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
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
# One source's tickets (its name is the table's: see table_name).
TABLE = f"({_COLUMN_DEFS},\n    PRIMARY KEY (barcode)\n) WITHOUT ROWID"
# A full list's rows as they arrive, in no order (a temporary table: see replace_pages).
HEAP = f"({_COLUMN_DEFS})"
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
            make_view(conn)
        known.add(source)


def ticket_row(t: Ticket, now: float) -> tuple[Any, ...]:
    """A ticket as its source table's row (:data:`TABLE_COLUMNS` order)."""
    return (t.barcode, t.event, t.status, encode_zones(t.zones), t.valid_from, t.valid_until,
            t.entries, t.name, t.ticket_id, now, t.use_window_s)


def page_rows(source: str, pages: Iterable[Iterable[Ticket]], table: str,
              now: float) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Each page as (statement, rows) for *table*; a ticket of another source is an error.

    A page of :class:`turnstiled.backends.base.Rows` (plain tuples, told by
    its ``rows``; not imported here, which would load every backend) is
    written without a Ticket per row, and what all its rows share is part of
    the statement rather than bound to every row (half the cost of a row).
    """
    insert = insert_sql(table)
    sep = ZONE_SEP
    for page in pages:
        if hasattr(page, "rows"):
            if page.source != source:
                raise ValueError(f"replace_source({source!r}) got a ticket of another source")
            yield (f"INSERT OR REPLACE INTO {table} (barcode, event, status, zones, name, "
                   f"ticket_id, entries, updated_at) VALUES (?, ?, ?, ?, ?, ?, "
                   f"{sql_text(page.entries)}, {float(now)!r})",
                   [(b, e, st, sep.join(z), nm, tid) for b, e, st, z, nm, tid in page.rows])
        else:
            rows = []
            for t in page:
                if t.source != source:
                    raise ValueError(
                        f"replace_source({source!r}) got a ticket of another source")
                rows.append(ticket_row(t, now))
            yield insert, rows


def sql_text(value: str) -> str:
    """*value* as an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
