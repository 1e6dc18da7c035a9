"""Sync at a real venue: cloud clocks that differ from the gate's, and edits while paging.

Every backend with deltas (vivenu, TickeTing, CrowdManager) is run against
its emulator with the cloud's clock set apart from the gate's, and with the
box office editing tickets between the pages of a full sync.
"""

from __future__ import annotations

import time

import pytest

from turnstiled import rules
from turnstiled.backends.crowdmanager import CrowdManagerBackend, CrowdManagerSettings
from turnstiled.backends.ticketing import TicketingBackend, TicketingSettings
from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.backends.window import Anchor, CloudClock, keyset_step
from turnstiled.cache import Cache
from turnstiled.rules import RuleSettings, Usage, decide
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator
from turnstiled.sync import Syncer
from turnstiled.timeutil import parse_iso


def make(name, emu, **kw):
    c = emu.credentials
    if name == "vivenu":
        return VivenuBackend(VivenuSettings(token=Secret(c["token"]), base_url=emu.base_url,
                                            timeout_s=5.0, **kw))
    if name == "ticketing":
        return TicketingBackend(TicketingSettings(
            admission_code=Secret(c.get("code") or c["global_token_code"]),
            api_key=Secret(c["api_key"]), base_url=emu.base_url, timeout_s=5.0, **kw))
    return CrowdManagerBackend(CrowdManagerSettings(
        base_url=emu.base_url, token=Secret(c["token"]), page_delay_s=0.0, timeout_s=5.0,
        **kw))


def valid_key(name, emu):
    """A ticket that is valid in the cloud, by the emulator's key."""
    for t in emu.state.tickets:
        if name == "vivenu" and t["status"] == "VALID":
            return t["barcode"], t["barcode"]
        if name == "ticketing" and t["status"] == "Issued" and t["redeemed"] == "N/A":
            return t["serial"], t["serial"]
        if name == "crowdmanager" and t["status"] == 1:
            return t["id"], t["barcode"]
    raise AssertionError("no valid ticket")


def listed(name, emu) -> set[str]:
    field = {"vivenu": "barcode", "ticketing": "serial", "crowdmanager": "barcode"}[name]
    return {t[field] for t in emu.state.tickets
            if name != "ticketing" or t["self"].startswith(f"/events/{emu.event}/")}


def ticket_rows(path, source) -> set[str]:
    c = Cache(path, readonly=True)
    try:
        return {r[0] for r in c.conn.execute(
            "SELECT barcode FROM tickets WHERE source = ? AND ticket_id NOT LIKE 'member:%'",
            (source,))}
    finally:
        c.close()


@pytest.mark.parametrize("offset", [-900.0, 900.0])
@pytest.mark.parametrize("name", ["vivenu", "ticketing", "crowdmanager"])
def test_a_cancellation_arrives_whatever_the_clocks_say(tmp_path, name, offset):
    """Cloud 15 min behind (the gate is ahead by far more than overlap_s) or ahead."""
    with start_emulator(name, tickets=60, seed=5, clock_offset=offset) as emu:
        syncer = Syncer(tmp_path / "cache.db", [make(name, emu)])
        assert syncer.sync(name) == "full"
        cursor = parse_iso(syncer.sources[name].cursor)
        assert cursor is not None and abs(cursor - (time.time() + offset)) < 120
        key, code = valid_key(name, emu)
        cache = Cache(tmp_path / "cache.db", readonly=True)
        assert cache.lookup(code).status == "valid"
        time.sleep(1.1)  # a new second: CrowdManager stamps whole seconds
        emu.state.cancel(key)
        assert syncer.sync(name) == "delta"
        assert cache.lookup(code).status == "cancelled" if name != "vivenu" else \
            cache.lookup(code).status == "invalid"
        assert not decide(cache.lookup(code), Usage(), RuleSettings(), time.time()).granted
        # and again, one delta later: the windows keep following the cloud's clock
        key2, code2 = valid_key(name, emu)
        assert code2 != code and cache.lookup(code2).status == "valid"
        time.sleep(1.1)
        emu.state.cancel(key2)
        assert syncer.sync(name) == "delta"
        assert cache.lookup(code2).status != "valid"
        cache.close()


@pytest.mark.parametrize("name", ["vivenu", "ticketing", "crowdmanager"])
def test_a_full_sync_drops_no_ticket_while_the_box_office_edits_between_pages(tmp_path, name):
    page = {"vivenu": 7, "ticketing": 7, "crowdmanager": 7}[name]
    with start_emulator(name, tickets=120, seed=6, edits_per_page=2) as emu:
        syncer = Syncer(tmp_path / "cache.db", [make(name, emu, page_size=page)])
        assert syncer.sync(name) == "full"
        assert ticket_rows(tmp_path / "cache.db", name) == listed(name, emu)
        edits = len([r for r in emu.records.requests() if "ticket" in r["path"]])
        assert edits > 10  # many pages, each followed by two edits
        assert syncer.sync(name, full=True) == "full"  # and once more, from a full cache
        assert ticket_rows(tmp_path / "cache.db", name) == listed(name, emu)


def test_a_delta_drops_no_ticket_while_the_box_office_edits_between_pages(tmp_path):
    with start_emulator("vivenu", tickets=60, seed=6) as emu:
        syncer = Syncer(tmp_path / "cache.db", [make("vivenu", emu, page_size=5)])
        syncer.sync("vivenu")
        new = emu.state.add(40)
        emu.edits_per_page = 2
        assert syncer.sync("vivenu") == "delta"
        cache = Cache(tmp_path / "cache.db", readonly=True)
        assert all(cache.lookup(d["barcode"]) is not None for d in new)
        cache.close()


def test_the_anchor_never_takes_the_gates_clock():
    clock = CloudClock()
    fresh = Anchor(clock, "2020-01-01T00:00:00.000Z")
    assert fresh.cursor() == "2020-01-01T00:00:00.000Z"  # nothing heard: as before
    fresh.seen(1_600_000_000.0)
    assert parse_iso(fresh.cursor()) == 1_600_000_000.0  # the newest change seen
    clock.observe("Tue, 01 Jan 2030 00:00:00 GMT")
    assert parse_iso(fresh.cursor()) == parse_iso("2030-01-01T00:00:00Z")  # the first Date
    later = Anchor(clock)
    assert abs(parse_iso(later.cursor()) - parse_iso("2030-01-01T00:00:00Z")) < 5
    clock.observe("garbage")
    assert clock.date == parse_iso("2030-01-01T00:00:00Z")


def test_keyset_steps():
    assert keyset_step([1.0, 2.0, 2.0], None, 0) == (2.0, 2)
    assert keyset_step([2.0, 2.0], 2.0, 2) == (2.0, 4)  # a run of equal stamps
    assert keyset_step([3.0, 1.0], None, 0) is None  # out of order: page by position
    assert keyset_step([1.0, None], None, 0) is None
    a, b = "2026-01-01T00:00:00.001Z", "2026-01-01T00:00:00.002Z"
    assert keyset_step([a, b, b], a, 1) == (b, 2)  # vivenu's texts, compared as sent
    assert keyset_step([a, "2026-01-01T00:00:00Z"], None, 0) is None  # mixed formats


# -- vivenu --------------------------------------------------------------------
def test_vivenu_reads_its_events_at_every_full_sync(tmp_path):
    with start_emulator("vivenu", tickets=60, seed=7) as emu:
        ev = [e["_id"] for e in emu.events]
        emu.assign(ev[2], False)
        b = make("vivenu", emu)
        syncer = Syncer(tmp_path / "cache.db", [b])
        assert syncer.sync("vivenu") == "full"
        later = {d["barcode"] for d in emu.tickets.values() if d["eventId"] == ev[2]}
        assert not ticket_rows(tmp_path / "cache.db", "vivenu") & later
        emu.assign(ev[2])  # a newly assigned event syncs at the next full sync
        assert syncer.sync("vivenu", full=True) == "full"
        assert later <= ticket_rows(tmp_path / "cache.db", "vivenu")
        emu.assign(ev[0], False)  # taken away: its 400 must not freeze the others
        gone = {d["barcode"] for d in emu.tickets.values() if d["eventId"] == ev[0]}
        fresh = emu.state.add(1, event=ev[1])[0]["barcode"]
        assert syncer.sync("vivenu") == "delta"
        assert fresh in ticket_rows(tmp_path / "cache.db", "vivenu")
        assert syncer.sync("vivenu", full=True) == "full"
        assert not ticket_rows(tmp_path / "cache.db", "vivenu") & gone
        b.close()


def test_vivenu_device_settings_shape_the_decision(tmp_path):
    with start_emulator("vivenu", tickets=60, seed=7, multi_checkin=True, checkout=True,
                        scan_zone="VIP", ticket_types=("tt-vip", "tt-standard")) as emu:
        syncer = Syncer(tmp_path / "cache.db", [make("vivenu", emu)])
        syncer.sync("vivenu")
        cache = Cache(tmp_path / "cache.db", readonly=True)
        docs = [d for d in emu.tickets.values() if d["status"] == "VALID"]
        vip = cache.lookup(next(d for d in docs if d["ticketName"] == "VIP")["barcode"])
        std = cache.lookup(next(d for d in docs if d["ticketName"] == "Standard")["barcode"])
        crew = cache.lookup(next(d for d in docs if d["ticketName"] == "Crew")["barcode"])
        now, s = time.time(), RuleSettings()
        assert vip.entries == "reentry" and decide(vip, Usage(1, 1), s, now).granted
        assert decide(std, Usage(), s, now).reason == rules.WRONG_ZONE  # GA only, gate is VIP
        assert decide(crew, Usage(), s, now).reason == rules.INVALID  # type not allowed
        # After a restart the first sync is a delta: the settings still apply.
        again = Syncer(tmp_path / "cache.db", [make("vivenu", emu)])
        time.sleep(0.01)
        changed = emu.state.touch(next(d for d in docs if d["ticketName"] == "VIP")["barcode"])
        assert again.sync("vivenu") == "delta"
        assert cache.lookup(changed["barcode"]).entries == "reentry"
        cache.close()


def test_vivenu_online_answer_without_entry_is_not_every_zone(tmp_path):
    with start_emulator("vivenu", tickets=30, seed=7) as emu:
        b = make("vivenu", emu)
        doc = next(d for d in emu.tickets.values() if d["status"] == "VALID")
        answer = b.online_check(doc["barcode"])
        assert answer.ticket is not None and answer.ticket.zones == rules.ZONES_UNKNOWN
        now = time.time()
        assert decide(answer.ticket, Usage(), RuleSettings(zones=("GA",)), now).reason == \
            rules.WRONG_ZONE
        assert decide(answer.ticket, Usage(), RuleSettings(), now).granted
        b.close()
