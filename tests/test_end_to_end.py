"""Bytes written into a real pty reach the daemon; the mock relay pin tells the rest."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import make_config, wait_until
from turnstiled import rules
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision, Ticket

NOW = time.time()
TICKETS = [
    Ticket("local", "OK-0001"),
    Ticket("local", "OK-0002", entries="reentry"),
    Ticket("local", "BAD-INVALID", status="invalid"),
    Ticket("local", "BAD-CANCEL", status="cancelled"),
    Ticket("local", "BAD-EVENT", event="other"),
    Ticket("local", "BAD-ZONE", event="ev1", zones=("BACKSTAGE",)),
    Ticket("local", "BAD-EARLY", event="ev1", valid_from=NOW + 3600),
    Ticket("local", "BAD-LATE", event="ev1", valid_until=NOW - 3600),
    Ticket("local", "USED-0001", event="ev1"),
]
TICKETS = [Ticket(t.source, t.barcode, t.event or "ev1", t.status, t.zones, t.valid_from,
                  t.valid_until, t.entries) for t in TICKETS]


@pytest.fixture
def pty_gate(tmp_path: Path, pins):
    master, slave = os.openpty()
    cfg = make_config(tmp_path, gate={"events": ["ev1"], "zones": ["GA"], "debounce_s": 0.5},
                      scanner=[{"name": "entry", "type": "serial", "url": os.ttyname(slave)},
                               ])
    cache = Cache(cfg.paths.cache_db)
    cache.replace_source("local", TICKETS)
    cache.close()
    outcomes: queue.Queue = queue.Queue()
    daemon = Daemon(cfg, pins, on_outcome=outcomes.put)
    daemon.start()
    assert daemon.wait_scanners()
    wait = lambda: outcomes.get(timeout=5)  # noqa: E731
    yield master, daemon, wait, pins.pin(cfg.hardware.relay_pin)
    daemon.stop()
    os.close(master)
    os.close(slave)


def test_valid_ticket_pulses_relay_after_journal_commit(pty_gate):
    master, daemon, wait, relay = pty_gate
    os.write(master, b"]Q1OK-0001\r")
    o = wait()
    assert o.evaluation.decision.granted
    assert relay.state is True
    j = Journal(daemon.cfg.paths.journal_db, readonly=True)
    row = j.recent(1)[0]
    assert (row["barcode"], row["granted"], row["reason"], row["scanner"]) == \
        ("OK-0001", 1, "granted", "entry")
    assert j.usage("local", "OK-0001").entries == 1
    j.close()


@pytest.mark.parametrize(("code", "reason"), [
    (b"NOT-IN-CACHE", rules.UNKNOWN),
    (b"X" * 300, rules.UNREADABLE),
    (b"\x01\x02\x03", rules.UNREADABLE),
    (b"BAD-INVALID", rules.INVALID),
    (b"BAD-CANCEL", rules.CANCELLED),
    (b"BAD-EVENT", rules.WRONG_EVENT),
    (b"BAD-ZONE", rules.WRONG_ZONE),
    (b"BAD-EARLY", rules.NOT_YET_VALID),
    (b"BAD-LATE", rules.EXPIRED),
])
def test_each_deny_reason_leaves_relay_low_and_is_journaled(pty_gate, code, reason):
    master, daemon, wait, relay = pty_gate
    os.write(master, code + b"\r")
    o = wait()
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (False, reason)
    assert [s.state for s in relay.states] == [False]
    j = Journal(daemon.cfg.paths.journal_db, readonly=True)
    assert j.recent(1)[0]["reason"] == reason
    j.close()


def test_second_use_denied_and_debounce_ignores_repeat(pty_gate):
    master, daemon, wait, _relay = pty_gate
    os.write(master, b"USED-0001\rUSED-0001\r")  # a scanner's double send
    assert wait().evaluation.decision.granted
    time.sleep(0.6)  # past the 0.5 s debounce window
    os.write(master, b"USED-0001\r")
    second = wait()
    assert second.evaluation.decision.reason in (rules.ALREADY_USED,)
    j = Journal(daemon.cfg.paths.journal_db, readonly=True)
    assert len(j.recent(10, barcode="USED-0001")) == 2
    j.close()


def test_sigterm_path_locks_relay_and_stops_quickly(tmp_path, pins):
    master, slave = os.openpty()
    cfg = make_config(tmp_path, hardware={"relay_pulse_s": 30},
                      scanner=[{"name": "s", "type": "serial", "url": os.ttyname(slave)}])
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("local", "OK")])
    cache.close()
    got: queue.Queue = queue.Queue()
    daemon = Daemon(cfg, pins, on_outcome=got.put)
    daemon.start()
    assert daemon.wait_scanners()
    os.write(master, b"OK\r")
    got.get(timeout=5)
    assert pins.pin(17).state is True
    t0 = time.monotonic()
    daemon.stop()
    assert time.monotonic() - t0 < 2.0
    assert pins.pin(17).state is False
    os.close(master)
    os.close(slave)


def test_passage_not_passed_rolls_usage_back(tmp_path, pins):
    master, slave = os.openpty()
    cfg = make_config(tmp_path, hardware={"passage_pin": 24, "passage_timeout_s": 0.2},
                      scanner=[{"name": "s", "type": "serial", "url": os.ttyname(slave)}])
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("local", "WALKAWAY")])
    cache.close()
    got: queue.Queue = queue.Queue()
    daemon = Daemon(cfg, pins, on_outcome=got.put)
    daemon.start()
    assert daemon.wait_scanners()
    os.write(master, b"WALKAWAY\r")
    o = got.get(timeout=5)
    assert o.passed is False
    j = Journal(cfg.paths.journal_db, readonly=True)
    row = j.recent(1)[0]
    assert row["passed"] == 0 and "not passed" in row["detail"]
    assert j.usage("local", "WALKAWAY").entries == 0  # annulled: may try again
    j.close()
    time.sleep(daemon.cfg.gate.debounce_s * 0 + 0.01)
    daemon.stop()
    os.close(master)
    os.close(slave)


def test_control_socket_open_and_status(pty_gate):
    from turnstiled.control import request
    _master, daemon, _wait, relay = pty_gate
    status = request(daemon.cfg.paths.control_socket, "status")
    assert status["scanners"][0]["name"] == "entry"
    assert status["gate"]["relay"] == "locked"
    request(daemon.cfg.paths.control_socket, "open", by="test")
    assert relay.state is True
    j = Journal(daemon.cfg.paths.journal_db, readonly=True)
    assert j.events(1)[0]["kind"] == "manual_open"
    j.close()
    json.dumps(status)


@pytest.mark.parametrize(("policy", "relay_opens"), [("deny", False), ("decide", True)])
def test_journal_full_keeps_deciding_by_policy_and_loses_nothing(tmp_path, pins, policy,
                                                                  relay_opens):
    master, slave = os.openpty()
    cfg = make_config(tmp_path, journal={"on_write_failure": policy},
                      scanner=[{"name": "s", "type": "serial", "url": os.ttyname(slave)}])
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("local", "FIRST-1"), Ticket("local", "SECOND-2")])
    cache.close()
    got: queue.Queue = queue.Queue()
    daemon = Daemon(cfg, pins, on_outcome=got.put)
    daemon.start()
    assert daemon.wait_scanners()
    os.write(master, b"FIRST-1\r")
    assert got.get(timeout=5).scan_id == 1
    assert wait_until(lambda: pins.pin(17).state is False)  # the first pulse is over
    # The card fills up: cap the journal's size, then fill every page, so
    # SQLite answers SQLITE_FULL to the next scan's transaction.
    j = daemon.journal
    pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
    j.conn.execute(f"PRAGMA max_page_count = {pages + 20}")
    filler = 0
    for size in (2000, 500, 120, 40, 10, 1):
        while True:
            try:
                j.record(Scan(1.0, "g", "fill", "in", "F" * size, Decision(False, "unknown")))
                filler += 1
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                break
    os.write(master, b"SECOND-2\r")
    o = got.get(timeout=5)
    assert o.scan_id == 0
    assert (pins.pin(17).state is True) is relay_opens
    from turnstiled.control import request
    assert "journal" in request(cfg.paths.control_socket, "status")["alarms"]
    daemon.stop()
    j = Journal(cfg.paths.journal_db, readonly=True)
    rows = j.recent(100_000)
    assert len(rows) == filler + 1 and rows[-1]["barcode"] == "FIRST-1"  # all intact
    assert not any(r["barcode"] == "SECOND-2" for r in rows)
    j.close()
    os.close(master)
    os.close(slave)


def test_sources_sync_in_the_daemon_and_scans_reach_the_cloud(tmp_path, pins):
    """vivenu and a local staff list at once; a vivenu scan is uploaded by the drain."""
    from turnstiled.control import request
    from turnstiled.sim import start_emulator
    with start_emulator("vivenu", tickets=200, seed=9) as emu:
        master, slave = os.openpty()
        cfg = make_config(tmp_path, sources={"vivenu": {
            "token": emu.credentials["token"], "base_url": emu.base_url,
            "sync_interval_s": 0.2}}, journal={"upload_batch_delay_s": 0.0},
            scanner=[{"name": "s", "type": "serial", "url": os.ttyname(slave)}])
        cache = Cache(cfg.paths.cache_db)
        cache.upsert([Ticket("local", "STAFF-0001", entries="unlimited")])
        cache.close()
        got: queue.Queue = queue.Queue()
        daemon = Daemon(cfg, pins, on_outcome=got.put)
        daemon.start()
        assert daemon.wait_scanners()
        assert wait_until(lambda: daemon.syncer.sources["vivenu"].last_full is not None, 10)
        doc = next(d for d in emu.tickets.values() if d["status"] == "VALID")
        os.write(master, doc["barcode"].encode() + b"\rSTAFF-0001\r")
        assert got.get(timeout=5).evaluation.decision.granted
        assert got.get(timeout=5).evaluation.ticket.source == "local"
        assert wait_until(lambda: len(emu.received("scan")) == 1, 10)
        assert emu.received("scan")[0]["barcode"] == doc["barcode"]
        emu.cancel(doc["barcode"])
        assert request(cfg.paths.control_socket, "sync")["sources"] == ["vivenu"]
        assert wait_until(lambda: Cache(cfg.paths.cache_db, readonly=True).lookup(
            doc["barcode"]).status == "invalid", 10)
        daemon.stop()
        j = Journal(cfg.paths.journal_db, readonly=True)
        assert j.counts() == {"confirmed": 1, "local": 1}
        j.close()
        os.close(master)
        os.close(slave)
