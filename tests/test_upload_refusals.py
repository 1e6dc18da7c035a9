"""The drain against the vivenu emulator: refusals of a row vs of the request, honest resent;
batches of the oldest scans whatever their event, one request per event, one commit.

Real sockets, the real journal on a real SQLite file, the real drainer.
"""

from __future__ import annotations

import socket

import pytest

from tests.conftest import wait_until
from turnstiled.backends.base import Backend, Capabilities, UploadResult
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


def settings(emu) -> VivenuSettings:
    return VivenuSettings(token=Secret(emu.credentials["token"]), base_url=emu.base_url,
                          timeout_s=2.0, online_check=False)


def backend(emu) -> VivenuBackend:
    return VivenuBackend(settings(emu))


def fill(journal: Journal, emu, n: int, event: str | None = None,
         barcodes: list[str] | None = None) -> None:
    first = next(iter(emu.tickets.values()))["eventId"]
    docs = [d for d in emu.tickets.values() if d["eventId"] == first]  # one event: one batch
    for i in range(n):
        doc = docs[i % len(docs)]
        code = barcodes[i] if barcodes else doc["barcode"]
        journal.record(Scan(1_800_000_000.0 + i, "g1", "s", "in", code,
                            Decision(True, "granted"), "vivenu", event or doc["eventId"],
                            doc["_id"]))


def drain(drainer: Drainer, passes: int = 20) -> None:
    for _ in range(passes):
        drainer.states["vivenu"].next_due = 0  # backoff is timing, not logic
        drainer.drain_once("vivenu")


def test_event_not_accessible_keeps_rows_pending_with_alarm(emu, journal, tmp_path):
    fill(journal, emu, 40, event="removed-from-device")
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=16)
    drain(drainer, 3)
    assert journal.counts() == {"pending": 40}  # none rejected by halving down
    assert drainer.alarms() == {"vivenu": "request_refused"}
    assert "Event not accessible" in drainer.states["vivenu"].last_error
    # Narrowing down stays cheap: a few requests per pass, not one per scan.
    assert len(emu.received("scan")) == 0
    drainer.close()


def test_a_refused_event_does_not_hold_back_the_others(emu, journal, tmp_path):
    fill(journal, emu, 5, event="removed-from-device")
    fill(journal, emu, 7)
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=16)
    drain(drainer, 4)
    assert journal.counts() == {"pending": 5, "confirmed": 7}
    assert drainer.alarms() == {"vivenu": "request_refused"}  # still, for the one event
    drainer.close()


@pytest.mark.parametrize(("fault", "alarm"), [("400", "request_refused"),
                                              ("404", "request_refused"),
                                              ("html404", "misconfigured")])
def test_request_level_refusal_never_rejects_a_row(emu, journal, tmp_path, fault, alarm):
    fill(journal, emu, 30)
    emu.add_fault(SCANS, fault)
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=8)
    drain(drainer, 5)
    assert journal.counts() == {"pending": 30}
    assert drainer.alarms() == {"vivenu": alarm}
    emu.clear_faults()
    drainer.states["vivenu"].refused.clear()  # the retry is due (timing, not logic)
    drain(drainer, 10)
    assert journal.counts() == {"confirmed": 30}
    assert drainer.alarms() == {}
    assert len(emu.received("scan")) == 30
    drainer.close()


def test_a_named_row_is_rejected_alone_and_the_rest_goes_up(emu, journal, tmp_path):
    first = next(iter(emu.tickets.values()))["eventId"]
    codes = [d["barcode"] for d in emu.tickets.values() if d["eventId"] == first][:12]
    codes[5] = "SHORT"  # vivenu refuses the batch naming it: "[5] barcode must be ..."
    fill(journal, emu, 12, barcodes=codes)
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=12)
    drain(drainer, 4)
    rows = list(journal.iter_all())
    assert [r["upload"] for r in rows] == ["confirmed"] * 5 + ["rejected"] + ["confirmed"] * 6
    assert "barcode must be" in rows[5]["upload_note"]
    assert [s["barcode"] for s in emu.received("scan")] == codes[:5] + codes[6:]
    assert drainer.alarms() == {}
    drainer.close()


def test_a_reset_after_the_cloud_took_the_batch_marks_it_resent(emu, journal, tmp_path):
    fill(journal, emu, 6)
    emu.add_fault(SCANS, "reset!x1")  # applied, then the answer is lost
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=6)
    drain(drainer, 3)
    rows = list(journal.iter_all())
    assert {r["upload"] for r in rows} == {"confirmed"}
    assert all(r["resent"] for r in rows)  # each may be on the cloud's record twice
    assert len(emu.received("scan")) == 12
    drainer.close()


def test_a_refusal_before_the_request_was_sent_is_not_resent(journal, tmp_path, emu):
    fill(journal, emu, 4)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = closed.getsockname()[1]
    dead = VivenuBackend(VivenuSettings(token=Secret("x"), timeout_s=0.5, online_check=False,
                                        base_url=f"http://127.0.0.1:{port}/api"))
    drainer = Drainer(tmp_path / "journal.db", [dead], batch=4)
    drain(drainer, 1)
    assert journal.counts() == {"pending": 4}
    assert not any(r["resent"] for r in journal.iter_all())  # connection refused: never sent
    drainer.close()
    closed.close()


class Broken(Backend):
    """A backend with a bug: fails after the request may have gone out."""

    name = "vivenu"
    capabilities = Capabilities(scan_upload=True)

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[bool] = []

    def upload(self, scans, prepared=None):
        self.calls += 1
        self.seen = [s.resent for s in scans]
        if self.calls == 1:
            raise KeyError("entries")
        return UploadResult(ours=[s.nonce for s in scans[:1]],
                            confirmed=[s.nonce for s in scans[1:]])


def test_any_error_puts_rows_back_and_ours_confirms_only_resent_rows(journal, tmp_path, emu):
    fill(journal, emu, 3)
    b = Broken()
    drainer = Drainer(tmp_path / "journal.db", [b], batch=3)
    drainer.drain_once("vivenu")
    assert journal.counts() == {"pending": 3}  # not stuck in flight until a restart
    assert all(r["resent"] for r in journal.iter_all())  # the outcome is unknown
    drainer.states["vivenu"].next_due = 0
    drainer.drain_once("vivenu")
    assert b.seen == [True, True, True]
    rows = list(journal.iter_all())
    assert [r["upload"] for r in rows] == ["confirmed"] * 3
    assert rows[0]["upload_note"] == "already upstream: our earlier send of it"
    # A scan never sent before that the cloud already holds is someone else's use.
    fill(journal, emu, 1)
    drainer.states["vivenu"].next_due = 0
    drainer.drain_once("vivenu")
    last = list(journal.iter_all())[-1]
    assert last["upload"] == "rejected" and "not by this gate" in last["upload_note"]
    drainer.close()


def test_settle_release_recover_prune_are_one_transaction_each(journal, emu):
    fill(journal, emu, 300)
    statements: list[str] = []
    journal.conn.set_trace_callback(statements.append)

    def commits() -> int:
        n = sum(1 for s in statements if s.strip().upper() == "COMMIT")
        statements.clear()
        return n
    rows = journal.claim("vivenu", 300)
    assert commits() == 1
    journal.release([r["id"] for r in rows[:200]], "x", resent={rows[0]["id"]})
    assert commits() == 1
    journal.settle([r["id"] for r in rows[200:250]], {r["id"]: "no" for r in rows[250:]})
    assert commits() == 1
    assert journal.recover_inflight() == 0
    assert commits() == 1
    assert journal.prune(older_than=2e9) == 100
    assert commits() == 1
    assert journal.counts() == {"pending": 200}


def test_every_request_is_progress_for_the_watchdog(emu, journal, tmp_path):
    """A slow cloud: each answered (or failed) request is a beat, not only each pass."""
    fill(journal, emu, 24)
    emu.add_fault(SCANS, "400")  # one pass narrows it down: several requests
    emu.add_fault(SCANS, "latency:50")
    beats: list[int] = []
    drainer = Drainer(tmp_path / "journal.db", [backend(emu)], batch=24,
                      on_progress=lambda: beats.append(len(beats)))
    drainer.start()
    assert wait_until(drainer.alarms, 30)
    drainer.stop(5.0)
    requests = sum(f["fired"] for f in emu.faults.describe() if f["kind"] == "400")
    assert requests > 2
    assert len(beats) >= requests  # one beat per request (plus one per pass)


# -- batches: the oldest scans whatever their event ----------------------------
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
