"""Seeded data: the same seed gives the same tickets, in each vendor's code format."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnstiled.sim import EMULATORS
from turnstiled.sim.seed import iso_ms, parse_iso_ms

NOW = 1_790_000_000.0
FORMATS = {
    "vivenu": ("barcode", r"[0-9A-Z]{12}"),
    "crowdmanager": ("barcode", r"[0-9]{16}"),
    "octopus": ("code", r"[a-km-np-z2-9]{8}"),
    "ticketing": ("serial", r"[0-9A-Z]{6}-[0-9A-Z]{12}"),
    "chapterevents": ("external_id", r"[A-Z]{6}"),
}


def snapshot(name: str, seed: int, tickets: int = 60) -> tuple[list[dict], dict]:
    emu = EMULATORS[name](tickets=tickets, seed=seed, now=NOW)  # built, never started
    try:
        return emu.state.tickets, emu.credentials
    finally:
        emu.stop()


@pytest.mark.parametrize("name", list(EMULATORS))
def test_the_same_seed_and_time_give_the_same_data(name):
    assert snapshot(name, 7) == snapshot(name, 7)
    field = FORMATS[name][0]
    assert [t[field] for t in snapshot(name, 7)[0]] != [t[field] for t in snapshot(name, 8)[0]]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), name=st.sampled_from(list(EMULATORS)))
def test_codes_follow_each_vendors_format_and_never_repeat(seed, name):
    field, pattern = FORMATS[name]
    tickets, _ = snapshot(name, seed, tickets=40)
    codes = [t[field] for t in tickets]
    assert len(codes) >= 40 and len(set(codes)) == len(codes)
    assert all(re.fullmatch(pattern, c) for c in codes), codes


def test_short_codes_stay_unique_at_scale():
    tickets, _ = snapshot("chapterevents", 1, tickets=20_000)  # 6 letters collide by then
    assert len({t["external_id"] for t in tickets}) == 20_000


def test_vivenu_tickets_are_realistic():
    emu = EMULATORS["vivenu"](tickets=400, seed=3, now=NOW)
    emu.stop()
    docs = emu.state.tickets
    assert len(emu.events) == 3 and {d["eventId"] for d in docs} == {e["_id"] for e in
                                                                      emu.events}
    assert all(parse_iso_ms(e["start"]) > NOW * 1000 for e in emu.events)  # coming shows
    assert {tuple(d["entry"]) for d in docs} == {("GA",), ("GA", "VIP"), ("BACKSTAGE",),
                                                 ("NORTH",)}
    assert {d["status"] for d in docs} == {"VALID", "INVALID", "DETAILSREQUIRED"}
    assert all(d["createdAt"] <= d["updatedAt"] <= iso_ms(int(NOW * 1000)) for d in docs)
    seated = [d for d in docs if "seat" in d]
    assert seated and all({"area", "row", "categoryRef"} <= set(d) for d in seated)
    assert [d["status"] for d in docs[:3]] == ["VALID"] * 3  # one known-good ticket per event


def test_other_vendors_data_has_events_zones_and_failures():
    cm = EMULATORS["crowdmanager"](tickets=300, seed=2, now=NOW)
    tk = EMULATORS["ticketing"](tickets=300, seed=2, now=NOW)
    oc = EMULATORS["octopus"](tickets=300, seed=2, now=NOW)
    for e in (cm, tk, oc):
        e.stop()
    items = cm.state.tickets
    assert {i["id_event"] for i in items} == {7001, 7002, 7003}
    assert {i["sector_txt"] for i in items} == {"North stand", "South stand", "VIP lounge"}
    assert {i["status"] for i in items} == {1, 2, 3}
    assert all(NOW - 4 * 86400 < i["last_update"] <= NOW for i in items)
    entries = tk.state.tickets
    assert len({e["section"]["self"] for e in entries}) == 5  # two events' sections
    assert {e["status"] for e in entries} == {"Issued", "Void"}
    codes = oc.state.tickets
    assert {c["status"] for c in codes} == {"active", "cancelled"}
    assert any(c["valid_until"] < c["created"] for c in codes) or any(
        c["start_time"] > c["created"] for c in codes)


def test_now_defaults_to_the_start():
    emu = EMULATORS["crowdmanager"](tickets=5)
    emu.stop()
    assert abs(emu.now - time.time()) < 60
    assert max(i["last_update"] for i in emu.state.tickets) <= time.time()
