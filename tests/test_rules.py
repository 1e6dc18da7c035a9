"""The pure decision rules, case by case and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstiled import rules
from turnstiled.rules import RuleSettings, Ticket, Usage, apply, decide

NOW = 1_800_000_000.0
ANY = RuleSettings()


def ticket(**kw: object) -> Ticket:
    return Ticket(**{"source": "local", "barcode": "ABC123", **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("tk", "usage", "settings", "reason"), [
    (None, Usage(), ANY, rules.UNKNOWN),
    (ticket(status="invalid"), Usage(), ANY, rules.INVALID),
    (ticket(status="cancelled"), Usage(), ANY, rules.CANCELLED),
    (ticket(event="e2"), Usage(), RuleSettings(events=("e1",)), rules.WRONG_EVENT),
    (ticket(zones=("VIP",)), Usage(), RuleSettings(zones=("GA",)), rules.WRONG_ZONE),
    (ticket(zones=rules.ZONES_UNKNOWN), Usage(), RuleSettings(zones=("GA",)), rules.WRONG_ZONE),
    (ticket(status="wrong_zone"), Usage(), ANY, rules.WRONG_ZONE),
    (ticket(entries="inside:2"), Usage(entries=3, exits=1), ANY, rules.ALREADY_INSIDE),
    (ticket(entries="reentry:3600"), Usage(1, 0, True, NOW - 60, NOW - 60), ANY,
     rules.ALREADY_INSIDE),
    (ticket(valid_from=NOW + 60), Usage(), ANY, rules.NOT_YET_VALID),
    (ticket(valid_until=NOW - 60), Usage(), ANY, rules.EXPIRED),
    (ticket(), Usage(entries=1, inside=True), ANY, rules.ALREADY_USED),
    (ticket(), Usage(entries=1, exits=1), ANY, rules.REENTRY_NOT_ALLOWED),
    (ticket(entries="reentry"), Usage(entries=1, inside=True), ANY, rules.ALREADY_INSIDE),
    (ticket(entries="2"), Usage(entries=2, exits=1), ANY, rules.ALREADY_USED),
    (ticket(entries="bogus"), Usage(), ANY, rules.INVALID),
])
def test_each_deny_reason(tk, usage, settings, reason):
    d = decide(tk, usage, settings, NOW)
    assert (d.granted, d.reason) == (False, reason)


@pytest.mark.parametrize(("tk", "usage", "settings"), [
    (ticket(), Usage(), ANY),
    (ticket(event="e1"), Usage(), RuleSettings(events=("e1", "e2"))),
    (ticket(zones=("GA", "VIP")), Usage(), RuleSettings(zones=("VIP",))),
    (ticket(), Usage(), RuleSettings(zones=("VIP",))),  # no zone on ticket: any zone
    (ticket(valid_from=NOW - 1, valid_until=NOW + 1), Usage(), ANY),
    (ticket(valid_from=NOW + 30), Usage(), RuleSettings(early_entry_s=60)),
    (ticket(valid_until=NOW - 30), Usage(), RuleSettings(late_entry_s=60)),
    (ticket(entries="reentry"), Usage(entries=3, exits=3), ANY),
    (ticket(zones=rules.ZONES_UNKNOWN), Usage(), ANY),  # unknown zones, unrestricted gate
    (ticket(entries="inside:2"), Usage(entries=5, exits=4), ANY),
    (ticket(entries="reentry:3600"), Usage(1, 0, True, NOW - 7200, NOW - 7200), ANY),
    (ticket(entries="unlimited"), Usage(entries=99, inside=True), ANY),
    (ticket(entries="3"), Usage(entries=2, inside=True), ANY),
])
def test_grants(tk, usage, settings):
    d = decide(tk, usage, settings, NOW)
    assert d.granted and d.reason == rules.GRANTED


def test_exit_lets_any_known_ticket_out_but_not_an_unknown_one():
    assert decide(ticket(status="cancelled"), Usage(), ANY, NOW, "out").reason == rules.EXIT
    assert not decide(None, Usage(), ANY, NOW, "out").granted


def test_single_entry_cycle():
    u = Usage()
    t = ticket()
    d = decide(t, u, ANY, NOW)
    u = apply(u, d, "in", NOW)
    assert u == Usage(1, 0, True, NOW, NOW)
    assert decide(t, u, ANY, NOW + 1).reason == rules.ALREADY_USED
    u = left(t, u, NOW + 2)
    assert decide(t, u, ANY, NOW + 3).reason == rules.REENTRY_NOT_ALLOWED


def admitted(t: Ticket, u: Usage, at: float) -> Usage:
    """The usage after *t* is granted entry at *at* (it must be)."""
    d = decide(t, u, ANY, at)
    assert d.granted
    return apply(u, d, "in", at)


def left(t: Ticket, u: Usage, at: float) -> Usage:
    """The usage after *t* goes out at *at*."""
    return apply(u, decide(t, u, ANY, at, "out"), "out", at)


def test_reentry_after_exit():
    t, u = ticket(entries="reentry"), Usage()
    for i in range(3):
        u = admitted(t, u, NOW + i)
        assert decide(t, u, ANY, NOW + i).reason == rules.ALREADY_INSIDE
        u = left(t, u, NOW + i)
    assert u.entries == 3 and u.first_used == NOW


def test_a_group_pass_bounds_people_inside_not_entries():
    t, u = ticket(entries="inside:4"), Usage()
    for i in range(4):
        u = admitted(t, u, NOW + i)
    assert decide(t, u, ANY, NOW + 5).reason == rules.ALREADY_INSIDE  # four inside
    u = left(t, u, NOW + 6)  # one leaves
    u = admitted(t, u, NOW + 7)  # one may come back
    assert decide(t, u, ANY, NOW + 8).reason == rules.ALREADY_INSIDE


def test_a_lapsing_reentry_card_is_not_locked_out_for_ever_without_exit_scans():
    t, u = ticket(entries="reentry:14400"), Usage()
    u = admitted(t, u, NOW)
    assert decide(t, u, ANY, NOW + 600).reason == rules.ALREADY_INSIDE
    assert decide(t, u, ANY, NOW + 14400).granted  # next match day: admitted again
    u = left(t, u, NOW + 700)
    assert decide(t, u, ANY, NOW + 800).granted  # with an exit scan, at once


def test_parse_policy():
    assert rules.parse_policy(" Single ") == "single"
    assert rules.parse_policy("4") == 4
    assert rules.parse_policy("inside:4") == ("inside", 4)
    assert rules.parse_policy("reentry:60") == ("reentry", 60)
    for bad in ("0", "-1", "twice", "", "inside:0", "inside:", "exit:3"):
        with pytest.raises(ValueError, match="entry policy"):
            rules.parse_policy(bad)


policies = st.sampled_from(["single", "reentry", "unlimited", "1", "2", "5", "inside:2",
                            "reentry:5"])
directions = st.lists(st.sampled_from(["in", "out"]), max_size=30)


@given(policies, directions)
def test_entries_never_exceed_the_policy(policy, seq):
    t, u = ticket(entries=policy), Usage()
    for i, direction in enumerate(seq):
        d = decide(t, u, ANY, NOW + i, direction)
        u = apply(u, d, direction, NOW + i)
        if policy == "single":
            assert u.entries <= 1
        elif policy.isdigit():
            assert u.entries <= int(policy)
        elif policy == "reentry":
            assert u.entries <= u.exits + 1
        elif policy == "inside:2":
            assert u.entries - u.exits <= 2


@given(
    st.one_of(st.none(), st.builds(
        Ticket, source=st.just("s"), barcode=st.text(min_size=1, max_size=5),
        event=st.sampled_from(["", "e1", "e2"]),
        status=st.sampled_from(["valid", "invalid", "cancelled"]),
        zones=st.lists(st.sampled_from(["A", "B"]), max_size=2).map(tuple),
        valid_from=st.one_of(st.none(), st.floats(NOW - 100, NOW + 100)),
        valid_until=st.one_of(st.none(), st.floats(NOW - 100, NOW + 100)),
        entries=policies)),
    st.builds(Usage, entries=st.integers(0, 6), exits=st.integers(0, 6), inside=st.booleans()),
    st.builds(RuleSettings, events=st.sampled_from([(), ("e1",)]),
              zones=st.sampled_from([(), ("A",)])),
    st.sampled_from(["in", "out"]),
)
def test_decide_is_total_and_reasons_are_known(tk, usage, settings, direction):
    d = decide(tk, usage, settings, NOW, direction)
    if d.granted:
        assert d.reason in (rules.GRANTED, rules.EXIT)
        assert tk is not None
        if direction == "in":
            assert tk.status == "valid"
    else:
        assert d.reason in rules.DENY_REASONS
