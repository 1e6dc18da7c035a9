"""cache.db does not keep a WAL as large as the database after a full sync."""

from __future__ import annotations

from pathlib import Path

from turnstiled.cache import JOURNAL_SIZE_LIMIT, Cache
from turnstiled.rules import Ticket


def tickets(n: int, source: str = "vivenu", status: str = "valid") -> list[Ticket]:
    return [Ticket(source, f"BC{i:010d}", "ev1", status, ("GA",), None, None, "single",
                   f"Guest {i}", f"t{i}") for i in range(n)]


def test_a_full_replacement_leaves_no_wal_while_readers_stay_open(tmp_path):
    path = tmp_path / "cache.db"
    writer = Cache(path)
    reader = Cache(path, readonly=True)  # the daemon's connection stays open meanwhile
    try:
        for status in ("valid", "used"):
            writer.replace_source("vivenu", tickets(20_000, status=status))
            wal = Path(f"{path}-wal")
            assert not wal.exists() or wal.stat().st_size == 0
            assert reader.lookup("BC0000012345").status == status
        assert path.stat().st_size > JOURNAL_SIZE_LIMIT / 4  # the list itself is there
        assert writer.conn.execute("PRAGMA journal_size_limit").fetchone()[0] \
            == JOURNAL_SIZE_LIMIT
    finally:
        reader.close()
        writer.close()


def test_an_in_memory_cache_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # turnstilectl lookup runs where the technician stands
    cache = Cache(":memory:")
    cache.upsert(tickets(3))
    assert cache.lookup("BC0000000002") is not None
    cache.close()
    assert list(tmp_path.iterdir()) == []
