"""TickeTing, chapter-event, CrowdManager and Octopus backends against their emulators."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from turnstiled import rules
from turnstiled.backends.base import AuthError, Misconfigured, UpgradeRequired, UploadScan
from turnstiled.backends.chapterevents import ChapterEventsBackend, ChapterEventsSettings
from turnstiled.backends.crowdmanager import CrowdManagerBackend, CrowdManagerSettings, windows
from turnstiled.backends.http import Http
from turnstiled.backends.octopus import OctopusBackend, OctopusSettings
from turnstiled.backends.ticketing import TicketingBackend, TicketingSettings
from turnstiled.cache import Cache
from turnstiled.rules import RuleSettings, Usage, decide
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator
from turnstiled.sync import Syncer


def cached(tmp_path):
    return Cache(tmp_path / "cache.db", readonly=True)


# -- TickeTing ---------------------------------------------------------------
@pytest.fixture
def tk():
    with start_emulator("ticketing", tickets=90, seed=8) as e:
        yield e


def tk_backend(e, code_key="section_token_code", **kw):
    return TicketingBackend(TicketingSettings(admission_code=Secret(e.credentials[code_key]),
                                              api_key=Secret(e.credentials["api_key"]),
                                              base_url=e.base_url, timeout_s=2.0, **kw))


def test_ticketing_sync_keeps_token_sections_and_sees_changes(tk, tmp_path):
    b = tk_backend(tk, page_size=20)
    syncer = Syncer(tmp_path / "cache.db", [b])
    assert syncer.sync("ticketing") == "full"
    section = next(iter(b.sections))
    mine = [t for t in tk.tickets.values() if t["section"]["self"] == section]
    assert cached(tmp_path).sources()[0]["tickets"] == len(mine) == 30
    ok = next(t for t in mine if t["status"] == "Issued")
    assert cached(tmp_path).lookup(ok["serial"]).zones == ("Floor",)
    other = next(t for t in tk.tickets.values() if t["section"]["self"] != section)
    assert cached(tmp_path).lookup(other["serial"]) is None
    time.sleep(0.01)
    new = tk.add_tickets(3)
    tk.cancel(ok["serial"])
    assert syncer.sync("ticketing") == "delta"
    c = cached(tmp_path)
    assert c.lookup(ok["serial"]).status == "cancelled"
    # A delta keeps other sections' tickets as wrong_zone (a ticket moved away must stop).
    assert [c.lookup(n["serial"]).status for n in new] == [
        "valid" if n["section"]["self"] == section else "wrong_zone" for n in new]


def test_ticketing_upgrade_required_and_bad_code(tk, tmp_path):
    old = tk_backend(tk, client_version="2.0.0")
    with pytest.raises(UpgradeRequired):
        list(old.full_sync())
    syncer = Syncer(tmp_path / "cache.db", [old])
    syncer.sync("ticketing")
    assert syncer.sources["ticketing"].alarm == "upgrade_required"
    assert cached(tmp_path).sources()[0]["state"] == "upgrade_required"
    with pytest.raises(ValueError, match="admission_code"):
        TicketingBackend(TicketingSettings(admission_code=Secret("short"),
                                           api_key=Secret("k"), base_url="x"))


def test_ticketing_upload_admitted_subset(tk):
    b = tk_backend(tk)
    list(b.full_sync())
    mine = [t["serial"] for t in tk.tickets.values()
            if t["section"]["self"] in b.sections and t["status"] == "Issued"]
    scans = [UploadScan(f"n{i}", s, 1.0, True, "in", b.event, s, "g1")
             for i, s in enumerate([mine[0], mine[1], "NOSUCH-000000000000"])]
    result = b.upload(scans)
    assert result.confirmed == ["n0", "n1"] and list(result.rejected) == ["n2"]
    again = b.upload([replace(scans[0], resent=True)])  # our earlier upload, answer lost
    assert again.confirmed == ["n0"] and not again.rejected
    elsewhere = b.upload([UploadScan("n9", mine[0], 1.0, True, "in", b.event, mine[0], "g2")])
    assert elsewhere.rejected["n9"].startswith("not admitted upstream")
    assert not b.uploads(False, "in") and not b.uploads(True, "out")


# -- chapter-event: tests/test_chapterevents.py ---------------------------------
def test_chapterevents_lists_the_shows_on_sale():
    with start_emulator("chapterevents", tickets=30, seed=8) as e:
        b = ChapterEventsBackend(ChapterEventsSettings(
            base_url=e.base_url, password=Secret(e.credentials["password"]), timeout_s=2.0))
        assert [s["id"] for s in b.events()] == [1, 2]  # commissioning: which shows exist
        b.close()


def test_a_redirect_is_a_set_up_to_mend_not_trouble_that_passes():
    with start_emulator("chapterevents", tickets=30, seed=8) as e:
        http = Http(e.base_url, timeout=2.0, vendor="x")
        with pytest.raises(Misconfigured, match="HTTP 301 redirect"):
            http.request("GET", "get_chapterevents")  # Django: 301 to the path with its slash
        http.close()


def test_an_answer_is_freed_when_read_not_at_the_cycle_collectors_next_pass():
    # A response and its stream referred to each other: every page of a full
    # sync (~0.5 MB from vivenu) lived on until the collector ran (issue 14).
    import gc

    import httpx
    with start_emulator("vivenu", tickets=30, seed=8) as e:
        http = Http(e.base_url, headers={"token": e.credentials["token"]}, vendor="vivenu")
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                status, body = http.request("GET", "me")
                assert status == 200 and isinstance(body, dict)
            assert not [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
        finally:
            gc.enable()
            http.close()


# -- CrowdManager ------------------------------------------------------------
@pytest.fixture
def cm():
    with start_emulator("crowdmanager", tickets=420, seed=8) as e:
        yield e


def cm_backend(e, **kw):
    return CrowdManagerBackend(CrowdManagerSettings(
        base_url=e.base_url, token=Secret(e.credentials["token"]), page_delay_s=0.0,
        timeout_s=2.0, **kw))


def test_crowdmanager_windows_never_exceed_three_years():
    span = windows(0, 10 * 365 * 86400)
    assert len(span) == 4 and all(hi - lo <= 3 * 365 * 86400 for lo, hi in span)
    assert span[0][0] == 0 and span[-1][1] == 10 * 365 * 86400


def test_crowdmanager_full_and_delta_sync(cm, tmp_path):
    b = cm_backend(cm, history_days=2000)  # longer than 3 years: several windows
    syncer = Syncer(tmp_path / "cache.db", [b])
    assert syncer.sync("crowdmanager") == "full"
    members = len(cm.data["members"])
    assert cached(tmp_path).sources()[0]["tickets"] == 420 + members
    ticket = next(t for t in cm.data["tickets"] if t["status"] == 1)
    t = cached(tmp_path).lookup(ticket["barcode"])
    assert t.status == "valid" and t.zones == (ticket["sector_txt"],)
    card = cached(tmp_path).lookup(cm.data["members"][0]["card_number"])
    assert card.entries == "reentry:14400"
    assert decide(card, Usage(), RuleSettings(events=("7001",)), time.time()).granted
    new = cm.add_tickets(2)
    cm.cancel(ticket["id"])
    cm.rezone(cm.data["tickets"][5]["id"], 30)
    assert syncer.sync("crowdmanager") == "delta"
    c = cached(tmp_path)
    assert c.lookup(ticket["barcode"]).status == "cancelled"
    assert c.lookup(cm.data["tickets"][5]["barcode"]).zones == ("VIP lounge",)
    assert all(c.lookup(n["barcode"]) for n in new)


def test_crowdmanager_auth_and_faults(cm, tmp_path):
    bad = CrowdManagerBackend(CrowdManagerSettings(base_url=cm.base_url, token=Secret("x"),
                                                   page_delay_s=0))
    with pytest.raises(AuthError):
        list(bad.full_sync())
    syncer = Syncer(tmp_path / "cache.db", [cm_backend(cm, page_size=100)])
    syncer.sync("crowdmanager")
    for fault in ("500", "429:3", "reset", "truncate", "html502"):
        cm.add_fault("GET /api/tickets", fault + "x1")
        assert syncer.sync("crowdmanager", full=True) != "full"
        assert cached(tmp_path).sources()[0]["tickets"] > 420
    assert syncer.sync("crowdmanager", full=True) == "full"


# -- Octopus -----------------------------------------------------------------
def test_octopus_timed_passes(tmp_path):
    with start_emulator("octopus", tickets=15, seed=8) as e:
        c = e.credentials
        b = OctopusBackend(OctopusSettings(base_url=e.base_url, api_key=Secret(c["api_key"]),
                                           location_id=c["location_id"], page_size=4))
        syncer = Syncer(tmp_path / "cache.db", [b])
        assert syncer.sync("octopus") == "full"
        assert cached(tmp_path).sources()[0]["tickets"] == 15
        hour = cached(tmp_path).lookup(e.tickets[0]["code"])
        group = cached(tmp_path).lookup(e.tickets[2]["code"])
        assert hour.use_window_s == 3600 and hour.entries == "reentry"
        assert group.entries == "inside:4"  # four people at once, not four entries
        now = time.time()
        s = RuleSettings()
        assert decide(hour, Usage(), s, now).granted
        used = Usage(1, 1, False, now - 3700)
        assert decide(hour, used, s, now).reason == rules.EXPIRED
        assert decide(group, Usage(4, 0, True, now), s, now).reason == rules.ALREADY_INSIDE
        assert decide(group, Usage(5, 2, False, now), s, now).granted  # 3 inside: one more
        e.cancel(e.tickets[0]["id"])
        syncer.sync("octopus")
        assert cached(tmp_path).lookup(e.tickets[0]["code"]).status == "cancelled"
        wrong = OctopusBackend(OctopusSettings(base_url=e.base_url, api_key=Secret("nope"),
                                               location_id=c["location_id"]))
        with pytest.raises(AuthError):
            list(wrong.full_sync())
