"""figures: the one reading of sources, backlog and last scan for status, metrics, heartbeat."""

from __future__ import annotations

from tests.conftest import make_config
from turnstiled import figures
from turnstiled.cache import Cache
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision, Ticket


def test_no_databases_yet_gives_empty_figures(tmp_path):
    figs = figures.stored(make_config(tmp_path))
    assert figs == {"sources": [], "journal": {}, "backlog": {}, "last_scan_at": None}


def test_sources_backlog_and_last_scan(tmp_path):
    cfg = make_config(tmp_path)
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("vivenu", "A"), Ticket("vivenu", "B"), Ticket("local", "C")])
    cache.mark_sync("vivenu", full=True, ok=True, now=1000.0)
    cache.mark_sync("vivenu", full=False, ok=False, error="HTTP 503", now=1100.0)
    cache.close()
    journal = Journal(cfg.paths.journal_db)
    for at, upload in ((1050.0, "pending"), (1060.0, "confirmed"), (1070.0, "pending")):
        journal.record(Scan(at, "g", "entry", "in", "A", Decision(True, "granted"),
                            "vivenu", upload=upload))
    journal.close()

    figs = figures.stored(cfg, now=1200.0)

    by_source = {s["source"]: s for s in figs["sources"]}
    assert by_source["vivenu"]["tickets"] == 2
    assert by_source["vivenu"]["sync_age_s"] == 200.0  # the last *successful* sync
    assert by_source["vivenu"]["last_error"] == "HTTP 503"
    assert by_source["local"]["sync_age_s"] is None  # never marked
    assert figs["backlog"] == {"vivenu": {"pending": 2, "oldest_at": 1050.0,
                                          "oldest_age_s": 150.0}}
    assert figs["journal"] == {"pending": 2, "confirmed": 1}
    assert figs["last_scan_at"] == 1070.0


def test_ticket_counts_follow_every_sync_and_import(tmp_path):
    """Counts are remembered between calls, and counted again after each recorded write."""
    cfg = make_config(tmp_path)
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("vivenu", "A")])
    cache.mark_sync("vivenu", full=True, ok=True, now=1000.0)
    assert figures.stored(cfg)["sources"][0]["tickets"] == 1
    cache.upsert([Ticket("vivenu", "B"), Ticket("vivenu", "C")])  # a delta sync...
    cache.mark_sync("vivenu", full=False, ok=True, now=1001.0)  # ...records itself
    assert figures.stored(cfg)["sources"][0]["tickets"] == 3
    cache.replace_source("vivenu", [Ticket("vivenu", "D")])
    cache.mark_sync("vivenu", full=True, ok=False, error="HTTP 500", now=1002.0)
    assert figures.stored(cfg)["sources"][0]["tickets"] == 1
    cache.close()
