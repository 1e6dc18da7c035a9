"""Drain batches: the oldest scans whatever their event, one request per event, one commit.

Real sockets (the vivenu emulator), the real journal on a real SQLite file, the real drainer.
"""

from __future__ import annotations

import pytest

from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.drain import Drainer
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator

SCANS = "POST /api/accessusers/scans/*"


@pytest.fixture
def emu():
    e = start_emulator("vivenu", tickets=50, seed=5)
    yield e
    e.stop()


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def backend(emu) -> VivenuBackend:
    return VivenuBackend(VivenuSettings(token=Secret(emu.credentials["token"]),
                                        base_url=emu.base_url, timeout_s=2.0,
                                        online_check=False))


def interleaved(journal: Journal, emu, rounds: int) -> list[str]:
    """Scans of the emulator's three events in turn; returns the events in that order."""
    by_event: dict[str, list[dict]] = {}
    for d in emu.tickets.values():
        by_event.setdefault(d["eventId"], []).append(d)
    events = sorted(by_event)
    for i in range(rounds):
        for ev in events:
            doc = by_event[ev][i]
            journal.record(Scan(1_800_000_000.0 + len(events) * i + events.index(ev), "g1", "s",
                                "in", doc["barcode"], Decision(True, "granted"), "vivenu", ev,
                                doc["_id"]))
    return events


def commits_of(drainer: Drainer) -> list[str]:
    statements: list[str] = []
    drainer._journal().conn.set_trace_callback(statements.append)
    return statements


def test_a_batch_takes_the_oldest_scans_of_every_event_and_settles_in_one_commit(
        emu, journal, tmp_path):
    events = interleaved(journal, emu, 4)
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=12)
    statements = commits_of(drainer)
    assert drainer.drain_once("vivenu") == 12
    assert journal.counts() == {"confirmed": 12}
    # One claim and one settlement for the whole batch, whatever the events.
    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 2
    got = emu.received("scan")
    assert [s["event"] for s in got] == [ev for ev in events for _ in range(4)]  # one POST each
    for ev in events:  # journal order within an event
        mine = [r["barcode"] for r in journal.iter_all() if r["event"] == ev]
        assert [s["barcode"] for s in got if s["event"] == ev] == mine
    assert not any(r["resent"] for r in journal.iter_all())
    drainer.close()


def test_a_failure_at_one_event_keeps_the_earlier_ones_and_never_flags_the_later(
        emu, journal, tmp_path):
    events = interleaved(journal, emu, 3)
    emu.add_fault(SCANS, "reset!x1@1")  # the second event's request: taken, answer lost
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=9)
    assert drainer.drain_once("vivenu") == 3
    rows = {ev: [r for r in journal.iter_all() if r["event"] == ev] for ev in events}
    assert [r["upload"] for r in rows[events[0]]] == ["confirmed"] * 3
    assert [(r["upload"], r["resent"]) for r in rows[events[1]]] == [("pending", 1)] * 3
    # Never sent: back to pending, not marked as a possible duplicate.
    assert [(r["upload"], r["resent"]) for r in rows[events[2]]] == [("pending", 0)] * 3
    drainer.states["vivenu"].next_due = 0  # backoff is timing, not logic
    assert drainer.drain_once("vivenu") == 6
    assert journal.counts() == {"confirmed": 9}
    assert len(emu.received("scan")) == 12  # the lost answer's three twice, marked resent
    drainer.close()


def test_a_refused_event_is_skipped_by_the_next_claims(emu, journal, tmp_path):
    interleaved(journal, emu, 2)
    journal.record(Scan(1_800_000_100.0, "g1", "s", "in", "NOEVENT1", Decision(False, "unknown"),
                        "vivenu", None, None))
    first = journal.claim("vivenu", 100, skip={None: 0})
    assert len(first) == 6 and all(r["event"] is not None for r in first)
    journal.release([r["id"] for r in first], "test")
    skip = {first[0]["event"]: 0}
    rows = journal.claim("vivenu", 100, skip=skip)
    assert [r["event"] for r in rows].count(None) == 1
    assert first[0]["event"] not in {r["event"] for r in rows} and len(rows) == 5
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


def test_pending_counts_at_most_the_batch_it_is_asked_about(journal, emu):
    interleaved(journal, emu, 5)
    assert journal.pending("vivenu") == (15, 1_800_000_000.0)
    assert journal.pending("vivenu", limit=4) == (4, 1_800_000_000.0)
    assert journal.pending("other", limit=4) == (0, None)
