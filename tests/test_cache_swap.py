"""A full replacement builds the new list aside and swaps it in whole.

Readers keep the old list until the new one is complete; a build that fails,
or a process killed in the middle of one, leaves the old list in use.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.conftest import wait_until
from turnstiled.backends.base import Rows
from turnstiled.cache import Cache
from turnstiled.rules import Ticket


def tickets(n: int, status: str = "valid", source: str = "vivenu") -> list[Ticket]:
    return [Ticket(source, f"BC{i:08d}", "ev1", status, ("GA", "VIP"), None, None, "single",
                   f"Guest {i}", f"t{i}") for i in range(n)]


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_readers_see_the_old_list_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "cache.db"
    writer = Cache(path)
    writer.replace_source("vivenu", tickets(3000))
    reader = Cache(path, readonly=True)
    half, go = threading.Event(), threading.Event()

    def pages():
        yield tickets(2000, "used")[:1000]
        half.set()
        assert go.wait(30)
        yield [*tickets(2000, "used")[1000:], Ticket("vivenu", "NEW-1")]

    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(writer.replace_pages("vivenu", pages())))
    t.start()
    try:
        assert half.wait(30)
        assert reader.lookup("BC00000005").status == "valid"  # the old list, whole
        assert reader.lookup("BC00002500").status == "valid"
        assert reader.lookup("NEW-1") is None
    finally:
        go.set()
        t.join(30)
    assert done == [2001]
    assert reader.lookup("BC00000005").status == "used"
    assert reader.lookup("BC00002500") is None  # gone from the cloud's list: gone here
    assert reader.lookup("NEW-1").source == "vivenu"
    assert [s["tickets"] for s in writer.sources() if s["source"] == "vivenu"] == [2001]
    reader.close()
    writer.close()
    assert not {n for n in tables(path) if n.startswith("build:")}


def test_a_failed_build_leaves_the_old_list_and_no_build_behind(tmp_path):
    path = tmp_path / "cache.db"
    cache = Cache(path)
    cache.replace_source("vivenu", tickets(100))

    def pages():
        yield tickets(50, "used")
        raise ConnectionError("the cloud went away in the middle")

    with pytest.raises(ConnectionError):
        cache.replace_pages("vivenu", pages())
    with pytest.raises(ValueError, match="another source"):
        cache.replace_source("vivenu", [*tickets(10, "used"), Ticket("local", "X")])
    assert cache.lookup("BC00000001").status == "valid"
    assert cache.lookup("BC00000099") is not None
    assert not {n for n in tables(path) if n.startswith("build:")}
    cache.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from turnstiled.cache import Cache
    from turnstiled.rules import Ticket

    def pages():
        for p in range(40):
            if p == 20:  # 100,000 rows written: more than SQLite's page cache holds
                Path(sys.argv[2]).write_text("mid-build")
                time.sleep(600)
            yield [Ticket("vivenu", f"BC{p * 5000 + i:08d}", "ev1", "used", ("GA",), None, None,
                          "single", f"Guest number {p * 5000 + i} of the new list", f"t{i}")
                   for i in range(5000)]

    Cache(sys.argv[1]).replace_pages("vivenu", pages())
""")


def test_a_sync_killed_mid_build_leaves_a_cache_that_serves_the_old_list(tmp_path):
    path = tmp_path / "cache.db"
    cache = Cache(path)
    cache.replace_source("vivenu", tickets(1000))
    cache.close()
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker)],
                             cwd=Path(__file__).resolve().parent.parent)
    try:
        assert wait_until(lambda: marker.exists() or child.poll() is not None, timeout=120)
        assert child.poll() is None, "the child ended before the middle of its build"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    reader = Cache(path, readonly=True)
    assert reader.lookup("BC00000999").status == "valid"  # the old list
    assert reader.lookup("BC00001000") is None
    reader.close()
    cache = Cache(path)  # the next sync's writer opens it and starts again
    assert not {n for n in tables(path) if n.startswith("build:")}
    assert cache.lookup("BC00000001").status == "valid"
    assert cache.replace_source("vivenu", tickets(10, "used")) == 10
    assert cache.lookup("BC00000001").status == "used"
    cache.close()


def test_rows_pages_are_stored_as_the_tickets_they_stand_for(tmp_path):
    rows = Rows("vivenu", "reentry", [("R1", "ev1", "valid", ("GA", "VIP"), "Ann", "id1"),
                                      ("R2", "", "wrong_zone", ("\x1e",), "", "")])
    assert list(rows) == [
        Ticket("vivenu", "R1", "ev1", "valid", ("GA", "VIP"), None, None, "reentry", "Ann", "id1"),
        Ticket("vivenu", "R2", "", "wrong_zone", ("\x1e",), None, None, "reentry", "", "")]
    a, b = Cache(tmp_path / "a.db"), Cache(tmp_path / "b.db")
    assert a.replace_pages("vivenu", [rows]) == b.replace_source("vivenu", list(rows)) == 2
    for code in ("R1", "R2"):
        assert a.lookup(code) == b.lookup(code) == next(t for t in rows if t.barcode == code)
    with pytest.raises(ValueError, match="another source"):
        a.replace_pages("local", [rows])
    assert a.lookup("R1") is not None
    a.close()
    b.close()


def test_each_source_has_its_own_table_and_an_empty_list_has_none(tmp_path):
    path = tmp_path / "cache.db"
    cache = Cache(path)
    cache.upsert([Ticket("local", "SAME", status="valid"), Ticket("vivenu", "SAME", "ev1")])
    cache.replace_source("vivenu", [Ticket("vivenu", "SAME", "ev2", "cancelled")])
    assert {"tickets:local", "tickets:vivenu"} <= tables(path)
    assert cache.lookup("SAME").status == "cancelled"  # a refusal wins over a valid row
    assert cache.lookup("SAME", ["local"]).source == "local"
    assert {s["source"]: s["tickets"] for s in cache.sources()} == {"local": 1, "vivenu": 1}
    assert cache.replace_source("vivenu", []) == 0
    cache.mark_sync("vivenu", full=True, ok=True)  # as the syncer records every sync
    assert "tickets:vivenu" not in tables(path)  # no probe of an empty list at every scan
    assert cache.lookup("SAME").source == "local"
    assert {s["source"]: s["tickets"] for s in cache.sources()} == {"local": 1, "vivenu": 0}
    cache.close()


def test_a_barcode_listed_twice_keeps_the_last_reading(tmp_path):
    cache = Cache(tmp_path / "cache.db")
    pages = [[Ticket("vivenu", "TWICE", "ev1", "valid"), *tickets(3)],
             Rows("vivenu", "single", [("TWICE", "ev1", "cancelled", (), "", "")]),
             [Ticket("vivenu", "ONCE"), Ticket("vivenu", "ALSO", "ev2"),
              Ticket("vivenu", "ALSO", "ev3")]]
    assert cache.replace_pages("vivenu", pages) == 8
    assert cache.lookup("TWICE").status == "cancelled"  # the cloud's later page
    assert cache.lookup("ALSO").event == "ev3"
    assert cache.conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 6
    cache.close()


@pytest.mark.parametrize("sizes", [(1,), (100,), (101, 250), (999, 1, 100)])
def test_every_row_of_every_page_is_stored_whatever_the_page_sizes(tmp_path, sizes):
    # Rows go in as statements of many rows each (VALUES (...), (...)); the last
    # statement of a page is shorter. Encoded rows hold the zones as stored.
    pages, k = [], 0
    for i, size in enumerate(sizes):
        rows = [(f"P{k + j:06d}", f"ev{i}", "valid", "GA\x1fVIP" if j % 2 else "", f"Guest {k + j}",
                 f"id{k + j}") for j in range(size)]
        pages.append(Rows("vivenu", "reentry" if i % 2 else "single", rows, encoded=True))
        k += size
    cache = Cache(tmp_path / "cache.db")
    assert cache.replace_pages("vivenu", pages) == k
    assert cache.conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == k
    for page in pages:
        for t in page:
            assert cache.lookup(t.barcode) == t
    cache.close()


def test_a_lookup_is_one_index_probe_per_source_table(tmp_path):
    cache = Cache(tmp_path / "cache.db")
    cache.upsert([Ticket("local", "L1")])
    cache.replace_source("vivenu", tickets(10))
    plan = [r[3] for r in cache.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM tickets WHERE barcode = ?", ("BC00000001",))
            if "tickets:" in r[3]]
    assert len(plan) == 2 and all(p.startswith("SEARCH") and "(barcode=?)" in p for p in plan)
    cache.close()


def test_a_list_of_the_older_shape_is_read_updated_and_replaced(tmp_path):
    # Layout 5 as first released keyed each source table by a WITHOUT ROWID primary
    # key; a full sync now builds a table keyed by a unique index. Both read alike.
    path = tmp_path / "cache.db"
    cache = Cache(path)
    cache.replace_source("vivenu", tickets(3))
    conn = cache.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DROP VIEW tickets")
    conn.execute('ALTER TABLE "tickets:vivenu" RENAME TO old')
    cols = ", ".join(f"{r[1]} {r[2]}" for r in conn.execute("PRAGMA table_info(old)"))
    conn.execute(f'CREATE TABLE "tickets:vivenu" ({cols}, PRIMARY KEY (barcode)) WITHOUT ROWID')
    conn.execute('INSERT INTO "tickets:vivenu" SELECT * FROM old')
    conn.execute("DROP TABLE old")
    conn.execute("CREATE VIEW tickets AS SELECT barcode, 'vivenu' AS source, event, status, "
                 "zones, valid_from, valid_until, entries, name, ticket_id, updated_at, "
                 'use_window FROM "tickets:vivenu"')
    conn.execute("COMMIT")
    assert cache.lookup("BC00000001").name == "Guest 1"
    cache.upsert([Ticket("vivenu", "BC00000001", "ev1", "cancelled")])
    assert cache.lookup("BC00000001").status == "cancelled"
    assert cache.replace_source("vivenu", tickets(5, "used")) == 5
    assert cache.lookup("BC00000004").status == "used"
    assert cache.conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 5
    cache.close()
