"""Bytes written into a real pty reach the daemon; the mock relay pin tells the rest."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.conftest import RunningGate, wait_until
from turnstiled import rules
from turnstiled.cache import Cache
from turnstiled.control import request
from turnstiled.journal import Scan
from turnstiled.rules import Decision, Ticket
from turnstiled.sim import start_emulator

NOW = time.time()
TICKETS = [
    Ticket("local", "OK-0001", "ev1"),
    Ticket("local", "OK-0002", "ev1", entries="reentry"),
    Ticket("local", "BAD-INVALID", "ev1", status="invalid"),
    Ticket("local", "BAD-CANCEL", "ev1", status="cancelled"),
    Ticket("local", "BAD-EVENT", "other"),
    Ticket("local", "BAD-ZONE", "ev1", zones=("BACKSTAGE",)),
    Ticket("local", "BAD-EARLY", "ev1", valid_from=NOW + 3600),
    Ticket("local", "BAD-LATE", "ev1", valid_until=NOW - 3600),
    Ticket("local", "USED-0001", "ev1"),
]


@pytest.fixture
def gate(start_gate) -> RunningGate:
    return start_gate(TICKETS, gate={"events": ["ev1"], "zones": ["GA"], "debounce_s": 0.5})


def test_valid_ticket_pulses_relay_after_journal_commit(gate):
    gate.scan(b"]Q1OK-0001")
    assert gate.next().evaluation.decision.granted
    assert gate.relay.state is True
    j = gate.journal()
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
def test_each_deny_reason_leaves_relay_low_and_is_journaled(gate, code, reason):
    gate.scan(code)
    o = gate.next()
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (False, reason)
    assert [s.state for s in gate.relay.states] == [False]
    j = gate.journal()
    assert j.recent(1)[0]["reason"] == reason
    j.close()


def test_second_use_denied_and_debounce_ignores_repeat(gate):
    gate.scan(b"USED-0001", b"USED-0001")  # a scanner's double send
    assert gate.next().evaluation.decision.granted
    time.sleep(0.6)  # past the 0.5 s debounce window
    gate.scan(b"USED-0001")
    assert gate.next().evaluation.decision.reason == rules.ALREADY_USED
    j = gate.journal()
    assert len(j.recent(10, barcode="USED-0001")) == 2
    j.close()


def test_control_socket_open_and_status(gate):
    sock = gate.daemon.cfg.paths.control_socket
    status = request(sock, "status")
    assert status["scanners"][0]["name"] == "entry"
    assert status["gate"]["relay"] == "locked"
    json.dumps(status)
    request(sock, "open", by="test")
    assert gate.relay.state is True
    j = gate.journal()
    assert j.events(1)[0]["kind"] == "manual_open"
    j.close()


def test_sigterm_path_locks_relay_and_stops_quickly(start_gate):
    g = start_gate([Ticket("local", "OK")], hardware={"relay_pulse_s": 30})
    g.scan(b"OK")
    g.next()
    assert g.relay.state is True
    t0 = time.monotonic()
    g.daemon.stop()
    assert time.monotonic() - t0 < 2.0
    assert g.relay.state is False


def test_passage_not_passed_rolls_usage_back(start_gate):
    g = start_gate([Ticket("local", "WALKAWAY")],
                   hardware={"passage_pin": 24, "passage_timeout_s": 0.2})
    g.scan(b"WALKAWAY")
    assert g.next().passed is False
    j = g.journal()
    row = j.recent(1)[0]
    assert row["passed"] == 0 and "not passed" in row["detail"]
    assert j.usage("local", "WALKAWAY").entries == 0  # annulled: may try again
    j.close()


@pytest.mark.parametrize(("policy", "relay_opens"), [("deny", False), ("decide", True)])
def test_journal_full_keeps_deciding_by_policy_and_loses_nothing(start_gate, policy,
                                                                  relay_opens):
    g = start_gate([Ticket("local", "FIRST-1"), Ticket("local", "SECOND-2")],
                   journal={"on_write_failure": policy})
    g.scan(b"FIRST-1")
    assert g.next().scan_id == 1
    assert wait_until(lambda: g.relay.state is False)  # the first pulse is over
    # The card fills up: cap the journal's size, then fill every page, so
    # SQLite answers SQLITE_FULL to the next scan's transaction.
    j = g.daemon.journal
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
    g.scan(b"SECOND-2")
    assert g.next().scan_id == 0
    assert (g.relay.state is True) is relay_opens
    assert "journal" in request(g.daemon.cfg.paths.control_socket, "status")["alarms"]
    g.daemon.stop()
    j = g.journal()
    rows = j.recent(100_000)
    assert len(rows) == filler + 1 and rows[-1]["barcode"] == "FIRST-1"  # all intact
    assert not any(r["barcode"] == "SECOND-2" for r in rows)
    j.close()


def start_vivenu_gate(start_gate, emu, tickets=(), **kw) -> RunningGate:
    """A gate syncing from the vivenu emulator *emu* and draining at once, once synced."""
    g = start_gate(list(tickets), sources={"vivenu": {
        "token": emu.credentials["token"], "base_url": emu.base_url, "sync_interval_s": 0.2}},
        journal={"upload_batch_delay_s": 0.0}, **kw)
    assert wait_until(lambda: g.daemon.cloud.status()["sources"].get("vivenu", {}).get(
        "last_full") is not None, 20)
    return g


def test_sources_sync_in_the_daemon_and_scans_reach_the_cloud(start_gate):
    """vivenu and a local staff list at once; a vivenu scan is uploaded by the drain."""
    with start_emulator("vivenu", tickets=200, seed=9) as emu:
        g = start_vivenu_gate(start_gate, emu, [Ticket("local", "STAFF-0001",
                                                       entries="unlimited")])
        d = g.daemon
        doc = next(x for x in emu.tickets.values() if x["status"] == "VALID")
        g.scan(doc["barcode"].encode(), b"STAFF-0001")
        assert g.next().evaluation.decision.granted
        assert g.next().evaluation.ticket.source == "local"
        assert wait_until(lambda: len(emu.received("scan")) == 1, 10)
        assert emu.received("scan")[0]["barcode"] == doc["barcode"]
        emu.cancel(doc["barcode"])
        assert request(d.cfg.paths.control_socket, "sync")["sources"] == ["vivenu"]
        assert wait_until(lambda: Cache(d.cfg.paths.cache_db, readonly=True).lookup(
            doc["barcode"]).status == "invalid", 10)
        d.stop()
        j = g.journal()
        assert j.counts() == {"confirmed": 1, "local": 1}
        j.close()
