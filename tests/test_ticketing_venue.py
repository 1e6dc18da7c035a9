"""TickeTing at a venue: the code exchange, refusals that are alarms, sections that change."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from turnstiled import rules
from turnstiled.backends.base import TransientError, Unrecognised, UploadScan
from turnstiled.backends.ticketing import TicketingBackend, TicketingSettings
from turnstiled.cache import Cache
from turnstiled.rules import RuleSettings, Usage, decide
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator
from turnstiled.sync import Syncer


def backend(emu, code=None, **kw):
    c = emu.credentials
    return TicketingBackend(TicketingSettings(
        admission_code=Secret(code or c["section_token_code"]), api_key=Secret(c["api_key"]),
        base_url=emu.base_url, timeout_s=3.0, **kw))


@pytest.fixture
def emu():
    with start_emulator("ticketing", tickets=90, seed=12) as e:
        yield e


def api(emu, method, path, **kw):
    import httpx
    return httpx.request(method, emu.base_url + path, headers={
        "X-Client-Version": "3.0.0", "X-API-Key": emu.credentials["api_key"]}, timeout=5, **kw)


def count(tmp_path):
    c = Cache(tmp_path / "cache.db", readonly=True)
    try:
        return c.sources()[0]["tickets"]
    finally:
        c.close()


def test_the_exchange_carries_the_integration_key_and_is_refused_without(emu):
    b = backend(emu)
    list(b.full_sync())
    ex = emu.records.all("token_exchange")
    assert ex and ex[-1]["found"]
    wrong = TicketingBackend(TicketingSettings(
        admission_code=Secret(emu.credentials["section_token_code"]), api_key=Secret("nope"),
        base_url=emu.base_url, timeout_s=3.0))
    from turnstiled.backends.base import AuthError
    with pytest.raises(AuthError):
        list(wrong.full_sync())


def test_an_unknown_code_is_an_alarm_not_a_retry(emu, tmp_path):
    syncer = Syncer(tmp_path / "cache.db", [backend(emu, code="ZZZZZZZZ")])
    syncer.sync("ticketing")
    st = syncer.sources["ticketing"]
    assert st.alarm == "not_recognised" and "not recognised" in st.last_error
    assert st.next_due - time.monotonic() > 60  # retried slowly, like refused credentials
    assert Cache(tmp_path / "cache.db", readonly=True).sources()[0]["state"] == \
        "not_recognised"


def test_a_404_on_page_one_never_empties_the_cache(emu, tmp_path):
    syncer = Syncer(tmp_path / "cache.db", [backend(emu, page_size=10)])
    assert syncer.sync("ticketing") == "full"
    before = count(tmp_path)
    assert before == 30
    emu.faults.add("GET /v3/events/*/tickets", "404x1")  # "no resource with the given URI"
    assert syncer.sync("ticketing", full=True) != "full"
    assert count(tmp_path) == before
    assert syncer.sources["ticketing"].alarm == "not_recognised"
    assert syncer.sync("ticketing", full=True) == "full"
    assert count(tmp_path) == before


def test_totals_as_strings_page_to_the_end(tmp_path):
    with start_emulator("ticketing", tickets=90, seed=12, strings=True) as e:
        syncer = Syncer(tmp_path / "cache.db", [backend(e, page_size=7)])
        assert syncer.sync("ticketing") == "full"
        assert count(tmp_path) == 30


def test_changed_sections_take_effect_without_a_restart(emu, tmp_path):
    ev = emu.credentials["event"]
    sections = emu.state.event_sections(ev)
    token = api(emu, "POST", f"/events/{ev}/tokens", json={"sections": sections[:1]}).json()
    tid = token["self"].rsplit("/", 1)[1]
    b = backend(emu, code=token["code"], exchange_interval_s=0.0)
    syncer = Syncer(tmp_path / "cache.db", [b])
    assert syncer.sync("ticketing") == "full"
    assert b.sections == set(sections[:1])
    assert api(emu, "PUT", f"/events/{ev}/tokens/{tid}",
               json={"sections": sections[1:2]}).status_code == 200
    assert syncer.sync("ticketing", full=True) == "full"
    assert b.sections == set(sections[1:2])
    cache = Cache(tmp_path / "cache.db", readonly=True)
    now_mine = next(t for t in emu.state.tickets if t["section"]["self"] == sections[1]
                    and t["status"] == "Issued")
    assert cache.lookup(now_mine["serial"]) is not None
    # Invalidated: the key answers 403, the gate exchanges again, the code is gone: alarm.
    b2 = backend(emu, code=token["code"])
    syncer2 = Syncer(tmp_path / "c2.db", [b2])
    assert syncer2.sync("ticketing") == "full"
    assert api(emu, "DELETE", f"/events/{ev}/tokens/{tid}").status_code == 200
    syncer2.sync("ticketing")
    assert syncer2.sources["ticketing"].alarm == "not_recognised"
    cache.close()


def test_a_ticket_moved_out_of_the_tokens_sections_is_denied_at_the_next_delta(emu, tmp_path):
    b = backend(emu)
    syncer = Syncer(tmp_path / "cache.db", [b])
    syncer.sync("ticketing")
    mine = next(t for t in emu.state.tickets if t["section"]["self"] in b.sections
                and t["status"] == "Issued")
    cache = Cache(tmp_path / "cache.db", readonly=True)
    assert decide(cache.lookup(mine["serial"]), Usage(), RuleSettings(), time.time()).granted
    other = next(s for s in emu.state.event_sections(emu.credentials["event"])
                 if s not in b.sections)
    emu.state.rezone(mine["serial"], other)
    assert syncer.sync("ticketing") == "delta"
    d = decide(cache.lookup(mine["serial"]), Usage(), RuleSettings(), time.time())
    assert d.reason == rules.WRONG_ZONE
    cache.close()


def test_a_lost_admission_answer_is_settled_from_the_admissions_listing(emu):
    b = backend(emu)
    list(b.full_sync())
    mine = [t["serial"] for t in emu.state.tickets if t["section"]["self"] in b.sections
            and t["status"] == "Issued"][:3]
    scans = [UploadScan(f"n{i}", s, 1.0, True, "in", b.event, s, "gate-7")
             for i, s in enumerate(mine)]
    emu.faults.add("POST /v3/events/*/admissions", "reset!x1")  # applied, answer lost
    with pytest.raises(TransientError):
        b.upload(scans)
    assert emu.records.count("admission", admitted=True) == 3
    again = b.upload([replace(s, resent=True) for s in scans])  # the drain sends them again
    assert sorted(again.confirmed) == ["n0", "n1", "n2"] and not again.rejected


def admit_twice(emu, b):
    """Admit an issued ticket of the token's sections from gate-1, then from gate-2: the answer
    to the second."""
    serial = next(t["serial"] for t in emu.state.tickets if t["section"]["self"] in b.sections
                  and t["status"] == "Issued")
    assert b.upload([UploadScan("a", serial, 1.0, True, "in", b.event, serial, "gate-1")]
                    ).confirmed == ["a"]
    return b.upload([UploadScan("b", serial, 2.0, True, "in", b.event, serial, "gate-2")])


def test_an_already_admitted_ticket_from_another_device_stays_rejected(emu):
    b = backend(emu)
    list(b.full_sync())
    late = admit_twice(emu, b)
    assert list(late.rejected) == ["b"]


def test_two_gates_sharing_a_device_name_do_not_confirm_each_others_admission(emu):
    b = backend(emu, device="north")
    list(b.full_sync())
    late = admit_twice(emu, b)
    assert list(late.rejected) == ["b"]  # never sent before: not our lost answer


def test_unrecognised_is_a_backend_error(emu):
    with pytest.raises(Unrecognised):
        list(backend(emu, code="ZZZZZZZZ").full_sync())
