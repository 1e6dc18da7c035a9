"""vivenu backend and the syncer against the vivenu emulator over loopback."""

from __future__ import annotations

import json
import time

import pytest

from turnstiled.backends.base import AuthError, Rejected, TimedOut, TransientError, UploadScan
from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.backends.vivenu_tickets import Device, decode_page, to_rows, to_ticket
from turnstiled.cache import Cache
from turnstiled.online import OnlineChecker
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator
from turnstiled.sync import Syncer


@pytest.fixture
def emu():
    e = start_emulator("vivenu", tickets=2500, seed=3)
    yield e
    e.stop()


def backend(emu, **kw) -> VivenuBackend:
    settings = {"token": Secret(emu.credentials["token"]), "base_url": emu.base_url,
                "timeout_s": 2.0, "page_size": 1000, **kw}
    return VivenuBackend(VivenuSettings(**settings))


def test_full_sync_pages_every_ticket(emu, tmp_path):
    b = backend(emu)
    syncer = Syncer(tmp_path / "cache.db", [b])
    assert syncer.sync("vivenu") == "full"
    cache = Cache(tmp_path / "cache.db", readonly=True)
    assert cache.sources()[0]["tickets"] == len(emu.tickets) == 2500
    some = next(d for d in emu.tickets.values() if d["status"] == "VALID")
    t = cache.lookup(some["barcode"])
    assert t.status == "valid" and t.zones == tuple(some["entry"]) and t.event == some["eventId"]
    bad = next(d for d in emu.tickets.values() if d["status"] != "VALID")
    assert cache.lookup(bad["barcode"]).status == "invalid"
    assert b.sync_interval() == 15.0  # from the device's ticketSyncInterval


def test_delta_picks_up_new_cancelled_and_rezoned(emu, tmp_path):
    b = backend(emu)
    syncer = Syncer(tmp_path / "cache.db", [b])
    syncer.sync("vivenu")
    valid = [d["barcode"] for d in emu.tickets.values() if d["status"] == "VALID"]
    new = emu.add_tickets(3)
    emu.cancel(valid[0])
    emu.rezone(valid[1], ["VIP"])
    assert syncer.sync("vivenu") == "delta"
    cache = Cache(tmp_path / "cache.db", readonly=True)
    assert all(cache.lookup(d["barcode"]) is not None for d in new)
    assert cache.lookup(valid[0]).status == "invalid"
    assert cache.lookup(valid[1]).zones == ("VIP",)


def test_wrong_token_is_an_alarm_and_old_cache_stays(emu, tmp_path):
    good = Syncer(tmp_path / "cache.db", [backend(emu)])
    good.sync("vivenu")
    bad = backend(emu, token=Secret("nope"))
    with pytest.raises(AuthError):
        list(bad.full_sync())
    syncer = Syncer(tmp_path / "cache.db", [bad])
    syncer.sync("vivenu", full=True)
    assert syncer.sources["vivenu"].alarm == "auth_refused"
    cache = Cache(tmp_path / "cache.db", readonly=True)
    row = cache.sources()[0]
    assert row["tickets"] == 2500 and row["state"] == "auth_refused"
    assert "401" in row["last_error"] and "nope" not in row["last_error"]


@pytest.mark.parametrize("fault", ["500", "503", "429:7", "reset", "truncate", "html200",
                                   "html502", "hang:3", "auth"])
def test_every_fault_keeps_old_cache_and_is_visible(emu, tmp_path, fault):
    syncer = Syncer(tmp_path / "cache.db", [backend(emu, timeout_s=0.5)])
    syncer.sync("vivenu")
    before = Cache(tmp_path / "cache.db", readonly=True).sources()[0]["tickets"]
    emu.add_fault("GET /api/accessusers/tickets/v2/*", fault + "x1")
    result = syncer.sync("vivenu", full=True)
    assert result not in ("full", "delta")
    row = Cache(tmp_path / "cache.db", readonly=True).sources()[0]
    assert row["tickets"] == before
    assert row["last_error"] and row["state"] in ("retrying", "auth_refused")
    if fault.startswith("429"):
        assert syncer.sources["vivenu"].next_due - time.monotonic() > 6  # Retry-After honoured
    assert syncer.sync("vivenu", full=True) == "full"  # and it recovers


def test_online_fallback_answers_and_honours_deadline(emu):
    b = backend(emu, online_deadline_s=0.3)
    checker = OnlineChecker([b])
    doc = next(iter(emu.tickets.values()))
    answer = checker.check(doc["barcode"])
    assert answer is not None and answer.ticket.barcode == doc["barcode"]
    assert checker.check("NOSUCHCODE123") is None
    emu.add_fault("GET /api/accessusers/tickets/*", "hang:60")
    t0 = time.monotonic()
    miss = checker.check(doc["barcode"])  # no ticket, only why: offline
    assert miss.ticket is None and miss.note == "vivenu offline: no answer within 300 ms"
    assert time.monotonic() - t0 < 30  # the deadline cut the wait, not the 60 s hang
    checker.close()


def test_a_request_past_its_timeout_is_timed_out_which_the_checker_reads_as_its_deadline(emu):
    # The online check's request carries the deadline as its timeout: when httpx's
    # timeout fires before the checker's wait ends (a loaded machine), the scan gets
    # the same answer, "no answer within", not an error text.
    b = backend(emu, online_deadline_s=0.3)
    emu.add_fault("GET /api/accessusers/tickets/*", "hang:60")
    with pytest.raises(TimedOut) as err:
        b.online_check("NOSUCHCODE123")
    assert isinstance(err.value, TransientError) and "timed out" in str(err.value)


def test_upload_posts_scans_per_event(emu):
    b = backend(emu)
    doc = next(iter(emu.tickets.values()))
    scans = [UploadScan(f"n{i}", doc["barcode"], 1_800_000_000.0 + i, i % 2 == 0,
                        "in" if i < 2 else "out", doc["eventId"], doc["_id"], "g1")
             for i in range(3)]
    result = b.upload(scans)
    assert result.confirmed == ["n0", "n1", "n2"]
    got = emu.received("scan")
    assert [(s["type"], s["direction"]) for s in got] == [("OK", "IN"), ("FAIL", "IN"),
                                                          ("OK", "OUT")]
    assert got[0]["scanned_at"] == "2027-01-15T08:00:00.000Z"
    # The cloud names the refused scan ("[1] barcode must be ..."): only it is rejected,
    # the others of the request (not taken: all or nothing) are left unanswered.
    result = b.upload([scans[0], UploadScan("x", "SHORT", 1.0, True, "in", doc["eventId"],
                                            None, "g1")])
    assert list(result.rejected) == ["x"] and not result.confirmed
    with pytest.raises(Rejected):  # a refusal that names no scan
        b.upload([UploadScan("y", doc["barcode"], 1.0, True, "in", "no-such-event", None,
                             "g1")])
    emu.add_fault("POST /api/accessusers/scans/*", "503x1")
    with pytest.raises(TransientError):
        b.upload(scans[:1])


def test_interrupted_full_sync_keeps_old_list_then_restarts_cleanly(emu, tmp_path):
    syncer = Syncer(tmp_path / "cache.db", [backend(emu, page_size=200, timeout_s=0.5)])
    syncer.sync("vivenu")
    gone = next(iter(emu.tickets))
    emu.cancel(gone)
    emu.add_fault("GET /api/accessusers/tickets/v2/*", "resetx1@5")  # page 6 of 13 dies
    assert syncer.sync("vivenu", full=True) != "full"
    reader = Cache(tmp_path / "cache.db", readonly=True)
    assert reader.sources()[0]["tickets"] == 2500
    assert reader.lookup(gone).status == "valid"  # the half-read new list is not visible
    assert syncer.sync("vivenu", full=True) == "full"
    assert reader.lookup(gone).status == "invalid"
    assert reader.sources()[0]["tickets"] == 2500


def test_the_bulk_rows_read_each_document_as_the_online_answer_does():
    docs = [
        {"_id": "a1", "barcode": "B1", "eventId": "e1", "status": "VALID", "entry": ["GA"],
         "ticketTypeId": "tt-1", "name": "Ann", "updatedAt": "2026-01-01T00:00:00.000Z"},
        {"_id": "a2", "barcode": "B2", "eventId": "e1", "status": "VALID", "entry": ["VIP", ""],
         "ticketTypeId": "tt-2", "ticketName": "VIP"},  # a type this device does not admit
        {"_id": "a3", "barcode": "B3", "eventId": "e2", "status": "VALID", "entry": ["GA"]},
        {"barcode": "B4", "eventId": "e2", "status": "VALID"},  # no entry: zones unknown
        {"barcode": "B5", "status": "DETAILSREQUIRED", "entry": "GA", "name": 7},
        {"barcode": "", "status": "VALID"}, {"status": "VALID"}, {"barcode": 12345},
    ]
    body = json.dumps({"docs": docs, "total": len(docs)}).encode()
    decoded = decode_page(body)["docs"]
    for device in (Device(), Device("reentry", "VIP", {"e1": frozenset({"tt-1"})})):
        want = [t for t in (to_ticket(d, device) for d in docs) if t is not None]
        assert [to_ticket(d, device) for d in decoded if to_ticket(d, device)] == want
        rows = to_rows(decoded, device)
        assert list(rows) == want and len(rows) == 5 and rows.entries == device.entries
    gate = Device("single", "GA", {"e1": frozenset({"tt-1"})})
    assert [t.status for t in to_rows(decoded, gate)] == [
        "valid", "invalid", "valid", "wrong_zone", "invalid"]


def test_typed_pages_give_the_rows_each_document_reads_as_alone():
    # Well-typed documents are decoded into structs and made rows in one pass
    # (zones already the cache's text); every odd case must read as to_ticket
    # reads the same document as a dict.
    docs = [
        {"_id": "a1", "barcode": "B1", "eventId": "e1", "status": "VALID", "entry": ["GA"],
         "ticketTypeId": "tt-1", "name": "Ann", "updatedAt": "2026-01-01T00:00:00.000Z"},
        {"_id": "a2", "barcode": "B2", "eventId": "e1", "status": "VALID", "entry": ["VIP", ""],
         "ticketTypeId": "tt-2", "ticketName": "VIP"},
        {"_id": "a3", "barcode": "B3", "eventId": "e2", "status": "valid", "entry": ["GA", "VIP"],
         "name": None, "ticketName": None},
        {"barcode": "B4", "eventId": "e2", "status": "VALID"},  # no entry: zones unknown
        {"barcode": "B5", "status": "DETAILSREQUIRED", "entry": [], "name": "", "_id": None},
        {"barcode": "B6", "status": None, "entry": None, "eventId": None},
        {"barcode": "B7", "status": "SOMETHINGNEW", "entry": [""], "ticketTypeId": None,
         "eventId": "e1"},
        {"barcode": "", "status": "VALID"}, {"status": "VALID"}, {"barcode": None},
    ]
    body = json.dumps({"docs": docs, "total": len(docs)}).encode()
    decoded = decode_page(body)["docs"]
    assert not isinstance(decoded[0], dict)  # the typed, fast path
    for device in (Device(), Device("reentry", "VIP", {"e1": frozenset({"tt-1"})}),
                   Device("single", "GA"), Device("single", None, {"e2": frozenset()})):
        want = [t for t in (to_ticket(d, device) for d in docs) if t is not None]
        rows = to_rows(decoded, device)
        assert rows.encoded and len(rows) == 7
        assert list(rows) == want
        assert [r[3] for r in rows.rows] == ["GA", "VIP", "GA\x1fVIP", "\x1e", "", "\x1e", ""]
