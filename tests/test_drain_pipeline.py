"""The drain's pipeline: the next batch read ahead, one commit per batch, bodies from SQLite.

Real sockets to the vivenu emulator, the real journal on a real SQLite
file, the real drainer. The cloud is observed (what the journal holds at
each send, what the emulator received), never patched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.test_upload_refusals import settings
from turnstiled.backends.base import Backend, Capabilities, UploadResult
from turnstiled.backends.vivenu import VivenuBackend, _body
from turnstiled.drain import Drainer
from turnstiled.drain_event import to_upload
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision
from turnstiled.sim import start_emulator

SCANS = "POST /api/accessusers/scans/*"


@pytest.fixture
def emu():
    e = start_emulator("vivenu", tickets=60, seed=7)
    yield e
    e.stop()


class Watched(VivenuBackend):
    """The real backend; before each request it notes the journal's rows in flight."""

    def __init__(self, emu, path: Path) -> None:
        super().__init__(settings(emu))
        self.watch = sqlite3.connect(path)
        self.seen: list[tuple[list[str], dict[str, int]]] = []  # (nonces sent, states)
        self.during = None  # called during the first request

    def upload(self, scans, prepared=None):
        states = dict(self.watch.execute("SELECT upload, COUNT(*) FROM scans GROUP BY upload"))
        inflight = [r[0] for r in self.watch.execute(
            "SELECT nonce FROM scans WHERE upload = 'inflight' ORDER BY id")]
        assert inflight == [s.nonce for s in scans]  # in flight: exactly what is sent now
        self.seen.append(([s.nonce for s in scans], states))
        if self.during is not None:
            self.during, during = None, self.during
            during()
        return super().upload(scans, prepared)


def fill(journal: Journal, emu, n: int) -> list[dict]:
    docs = [d for d in emu.tickets.values()]
    event = docs[0]["eventId"]
    docs = [d for d in docs if d["eventId"] == event]
    for i in range(n):
        doc = docs[i % len(docs)]
        journal.record(Scan(1_800_000_000.25 + i, "g1", "s", "in", doc["barcode"],
                            Decision(i % 3 != 0, "granted"), "vivenu", event, doc["_id"]))
    return list(journal.iter_all())


def commits(drainer: Drainer) -> list[str]:
    statements: list[str] = []
    drainer._journal().conn.set_trace_callback(statements.append)
    return statements


def test_one_commit_per_batch_and_only_the_batch_sent_is_in_flight(emu, journal, tmp_path):
    rows = fill(journal, emu, 50)
    cloud = Watched(emu, tmp_path / "journal.db")
    drainer = Drainer(tmp_path / "journal.db", [cloud], batch=10)
    statements = commits(drainer)
    assert drainer.drain_once("vivenu") == 50
    assert journal.counts() == {"confirmed": 50}
    # The first claim, then one commit per batch: it settles the batch and claims the
    # next; the last settles alone.
    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 6
    # When a batch goes, the ones before are confirmed and the later ones still pending.
    expected = [{"confirmed": 10 * k, "inflight": 10, "pending": 40 - 10 * k} for k in range(5)]
    assert [states for _, states in cloud.seen] == [{s: n for s, n in e.items() if n}
                                                     for e in expected]
    got = emu.received("scan")
    assert [s["barcode"] for s in got] == [r["barcode"] for r in rows]  # journal order
    assert [s["type"] for s in got] == ["OK" if r["granted"] else "FAIL" for r in rows]
    assert not any(r["resent"] for r in journal.iter_all())
    drainer.close()


def test_a_batch_read_ahead_and_never_sent_is_left_as_it_was(emu, journal, tmp_path):
    fill(journal, emu, 30)
    emu.add_fault(SCANS, "503x1@1")  # the second batch: refused before it was applied
    drainer = Drainer(tmp_path / "journal.db", [VivenuBackend(settings(emu))], batch=10)
    assert drainer.drain_once("vivenu") == 10
    rows = list(journal.iter_all())
    assert [r["upload"] for r in rows[:10]] == ["confirmed"] * 10
    # Sent and refused (never applied): pending again, not a possible duplicate.
    assert [(r["upload"], r["resent"], r["attempts"]) for r in rows[10:20]] == \
        [("pending", 0, 1)] * 10
    # Read ahead while the first went, never claimed: untouched.
    assert [(r["upload"], r["resent"], r["attempts"]) for r in rows[20:]] == \
        [("pending", 0, 0)] * 10
    drainer.states["vivenu"].next_due = 0
    assert drainer.drain_once("vivenu") == 20
    assert journal.counts() == {"confirmed": 30}
    assert len(emu.received("scan")) == 30
    drainer.close()


def test_a_crash_after_a_chained_send_leaves_that_batch_resent_only(tmp_path):
    class Crashing(Backend):
        name = "cloud"
        capabilities = Capabilities(scan_upload=True)
        calls = 0

        def upload(self, scans, prepared=None):
            self.calls += 1
            if self.calls == 2:
                raise SystemExit("power cut after the cloud stored the second batch")
            return UploadResult(confirmed=[s.nonce for s in scans])

    path = tmp_path / "journal.db"
    journal = Journal(path)
    for i in range(30):
        journal.record(Scan(float(i), "g", "s", "in", f"CODE{i:04d}", Decision(True, "granted"),
                            "cloud", "ev"))
    drainer = Drainer(path, [Crashing()], batch=10)
    with pytest.raises(SystemExit):
        drainer.drain_once("cloud")
    drainer.close()
    after = Drainer(path, [Crashing()], batch=10)
    after._journal()  # the next start recovers what was left in flight
    rows = list(journal.iter_all())
    assert [(r["upload"], r["resent"]) for r in rows] == (
        [("confirmed", 0)] * 10 + [("pending", 1)] * 10 + [("pending", 0)] * 10)
    after.close()
    journal.close()


def test_the_journal_moving_under_the_read_ahead_is_claimed_as_it_is_then(
        emu, journal, tmp_path):
    rows = fill(journal, emu, 30)
    cloud = Watched(emu, tmp_path / "journal.db")
    annulled = rows[12]
    # While the first batch is under way (the second read ahead), the gate annuls an
    # admission of the second: it must never go up, and the batch is the oldest ten now.
    drainer = Drainer(tmp_path / "journal.db", [cloud], batch=10)

    def annul() -> None:
        drainer._pool.submit(int).result()  # the read ahead is done (one thread, in order)
        journal.record_passage(annulled["id"], False)
    cloud.during = annul
    statements = commits(drainer)
    assert drainer.drain_once("vivenu") == 29
    # The batch read ahead no longer was the oldest ten: the claimed rows were read anew.
    assert sum(1 for s in statements if s.startswith("SELECT") and "json_each" in s) == 1
    sent = [n for nonces, _ in cloud.seen for n in nonces]
    assert annulled["nonce"] not in sent
    assert sent == [r["nonce"] for r in rows if r is not annulled]
    assert [len(nonces) for nonces, _ in cloud.seen] == [10, 10, 9]
    assert journal.counts() == {"confirmed": 29, "local": 1}
    drainer.close()


def test_rows_read_ahead_are_the_rows_a_claim_takes(journal):
    times = [0.0, 1 / 3, 1_800_000_000.0005, 1_764_082_812.1234567, 253402300799.999, -1.5]
    codes = ["PLAIN123", 'q"uote\\back', "new\nline\t\x01\x7f", "é ü ß 😀 \u2028", ""]
    n = 0
    for at in times:
        for code in codes:
            for ticket in (None, "", "T-1"):
                n += 1
                journal.record(Scan(at, "g1", "s", "out" if n % 2 else "in", code,
                                    Decision(n % 3 == 0, "granted"), "vivenu",
                                    None if n % 5 == 0 else f"ev{n % 4}", ticket))
    ahead = journal.peek("vivenu", 70, skip={"ev1": 0})
    rows = journal.claim("vivenu", 70, skip={"ev1": 0})
    assert len(rows) == 70 and [tuple(r) for r in rows] == ahead
    assert journal.peek("vivenu", 10_000, skip={"ev1": 0, None: 0}) == [
        tuple(r) for r in journal.claim("vivenu", 10_000, skip={"ev1": 0, None: 0})]


def test_a_prepared_body_is_the_bytes_httpx_sends(emu):
    backend = VivenuBackend(settings(emu))
    docs = list(emu.tickets.values())[:5]
    scans = [to_upload([i, f"n{i}", d["barcode"], 1_800_000_000.0 + i / 7, i % 2,
                        "out" if i % 2 else "in", d["eventId"], None if i % 3 else d["_id"],
                        "g", 0]) for i, d in enumerate(docs)]
    prepared = backend.prepare_upload(scans)
    for event, body in prepared.items():
        group = [_body(s) for s in scans if s.event == event]
        assert body == httpx.Request("POST", "http://x/", json=group).content
    assert sorted(backend.upload(scans, prepared).confirmed) == [s.nonce for s in scans]
    first = emu.received("scan")
    backend.upload(scans)
    again = emu.received("scan")[len(first):]
    strip = [{k: v for k, v in r.items() if k not in ("at", "_id", "id")} for r in first]
    assert strip == [{k: v for k, v in r.items() if k not in ("at", "_id", "id")} for r in again]
    backend.close()
