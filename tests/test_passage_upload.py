"""An admission reaches the cloud only once its passage is known, never if "not passed"."""

from __future__ import annotations

from tests.conftest import wait_until
from tests.test_end_to_end import start_vivenu_gate
from turnstiled.journal import NOTE_NOT_UPLOADED, Journal, Scan
from turnstiled.rules import Decision, Usage
from turnstiled.sim import start_emulator


def grant(journal: Journal, code: str, upload: str = "pending") -> int:
    return journal.record(Scan(1.0, "g", "s", "in", code, Decision(True, "granted"), "cloud",
                               "ev", upload=upload, awaiting_gate=True), Usage(1, 0, True, 1.0))


def test_drain_skips_a_grant_until_the_gate_outcome_is_journaled(tmp_path):
    j = Journal(tmp_path / "journal.db")
    first = grant(j, "WAITING-1")
    j.record(Scan(2.0, "g", "s", "in", "DENIED-1", Decision(False, "unknown"), "cloud", "ev"))
    assert j.pending("cloud")[0] == 1  # only the denial may go
    assert [r["barcode"] for r in j.claim("cloud", 10)] == ["DENIED-1"]
    j.record_outcome(first, "opened")  # noted; written when the worker is idle
    assert j.claim("cloud", 10) == []
    j.flush_outcomes()
    assert [r["barcode"] for r in j.claim("cloud", 10)] == ["WAITING-1"]
    j.close()


def test_not_passed_is_never_uploaded_and_usage_is_given_back(tmp_path):
    j = Journal(tmp_path / "journal.db")
    sid = grant(j, "WALKAWAY")
    j.record_passage(sid, False, Usage(), "cloud", "WALKAWAY")
    row = j.recent(1)[0]
    assert (row["outcome"], row["upload"], row["upload_note"]) == \
        ("not passed", "local", NOTE_NOT_UPLOADED)
    assert j.pending("cloud")[0] == 0 and j.claim("cloud", 10) == []
    assert j.usage("cloud", "WALKAWAY").entries == 0
    j.close()


def test_a_gate_with_a_passage_sensor_uploads_only_who_passed(start_gate):
    with start_emulator("vivenu", tickets=50, seed=4) as emu:
        g = start_vivenu_gate(start_gate, emu,
                              hardware={"passage_pin": 24, "passage_timeout_s": 3.0})
        d = g.daemon
        walk, enter = [x["barcode"] for x in emu.tickets.values()
                       if x["status"] == "VALID"][:2]
        g.scan(walk.encode())
        assert g.next().passed is False
        g.scan(enter.encode())
        assert wait_until(lambda: d.gate.state()["pulse"])
        g.pins.pin(24).drive_low()
        assert g.next().passed is True
        assert wait_until(lambda: len(emu.received("scan")) == 1, 10)
        assert [s["barcode"] for s in emu.received("scan")] == [enter]
        d.stop()
        j = g.journal()
        rows = {r["barcode"]: r for r in j.recent(10)}
        assert rows[walk]["upload"] == "local" and rows[enter]["upload"] == "confirmed"
        j.close()

