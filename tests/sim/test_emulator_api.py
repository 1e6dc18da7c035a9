"""The Python API and the admin API every emulator shares: state, faults, records, lifecycle."""

from __future__ import annotations

import httpx
import pytest

from turnstiled.sim import (
    EMULATORS,
    Emulator,
    FaultSet,
    Records,
    TicketState,
    VivenuEmulator,
    start_all,
    start_emulator,
)

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request

# name: (key field, a zone to move to, how the moved ticket shows it, cancelled as shown)
VENDORS = {
    "vivenu": ("barcode", ["VIP"], lambda t: t["entry"] == ["VIP"],
               lambda t: t["status"] == "INVALID"),
    "octopus": ("id", 59221, lambda t: (t["service"], t["numusers"]) == (59221, 4),
                lambda t: t["status"] == "cancelled"),
    "crowdmanager": ("id", 30, lambda t: t["sector_txt"] == "VIP lounge",
                     lambda t: t["status_txt"] == "Cancelled"),
    "ticketing": ("serial", "VIP", lambda t: t["section"]["name"] == "VIP",
                  lambda t: t["status"] == "Void"),
    "chapterevents": ("external_id", 2, lambda t: t["chapter_event"] == "Fysikalen Dag 2",
                      lambda t: t["status"] == "FAILED_ADMIN"),
}


@pytest.mark.parametrize("name", list(EMULATORS))
def test_python_api_shape(start, name):
    emu = start(name, tickets=12, seed=1)
    assert isinstance(emu, Emulator) and emu.name == name
    assert isinstance(emu.state, TicketState) and isinstance(emu.faults, FaultSet)
    assert isinstance(emu.records, Records)
    assert isinstance(emu.credentials, dict) and all(isinstance(v, str) for v in
                                                     emu.credentials.values())
    assert emu.describe() == {"name": name, "base_url": emu.base_url,
                              "credentials": emu.credentials}
    key, zone, moved, cancelled = VENDORS[name]
    tickets = emu.state.tickets
    assert len(emu.state) == len(tickets) >= 12
    first = tickets[0][key]
    assert emu.state.get(first) == tickets[0] and first in emu.state
    assert cancelled(emu.state.cancel(first)) and cancelled(emu.state.get(first))
    assert moved(emu.state.rezone(tickets[1][key], zone))
    new = emu.state.add(2)
    assert len(new) == 2 and len(emu.state) == len(tickets) + 2
    with pytest.raises(KeyError):
        emu.state.get("NO-SUCH-KEY" if not emu.state.int_keys else 1)
    with pytest.raises(ValueError, match="no such field"):
        emu.state.update(first, nonsense=1)


@pytest.mark.parametrize("name", list(EMULATORS))
def test_admin_api_changes_tickets_the_same_way(start, admin, name):
    emu = start(name, tickets=12, seed=2)
    key, zone, moved, cancelled = VENDORS[name]
    info = admin(emu, "GET").json()
    assert (info["name"], info["base_url"], info["tickets"]) == (name, emu.base_url,
                                                                len(emu.state))
    listed = admin(emu, "GET", "tickets", params={"limit": 3, "offset": 1}).json()
    assert [t[key] for t in listed] == [t[key] for t in emu.state.tickets[1:4]]
    k0, k1 = listed[0][key], listed[1][key]
    assert admin(emu, "GET", f"tickets/{k0}").json() == listed[0]
    assert cancelled(admin(emu, "POST", "tickets", json={"action": "cancel", "key": k0}).json())
    assert moved(admin(emu, "POST", "tickets", json={"action": "rezone", key: k1,
                                                     "zone": zone}).json())
    added = admin(emu, "POST", "tickets", json={"action": "add", "count": 3}).json()
    assert len(added) == 3 and admin(emu, "GET").json()["tickets"] == info["tickets"] + 3
    for body, status in (({"action": "cancel"}, 400), ({"action": "explode", "key": k0}, 400),
                         ({"action": "cancel", "key": "1" if emu.state.int_keys else "NOPE"},
                          404), ({"action": "update", "key": k0}, 400),
                         ({"action": "rezone", "key": k0, "zone": "nowhere"}, 400)):
        if name == "vivenu" and body.get("zone"):
            continue  # entry permissions are free-form ids
        r = admin(emu, "POST", "tickets", json=body)
        assert r.status_code == status, (body, r.text)
        assert "error" in r.json()
    assert admin(emu, "GET", "nothing").status_code == 404
    assert admin(emu, "GET", "requests").json() == []  # the admin API is not logged


def test_an_emulator_is_a_context_manager_that_releases_hung_clients():
    with VivenuEmulator(tickets=5, seed=1, faults=["/events=hang:60"]) as emu:
        url, token = emu.base_url, emu.credentials["token"]
        with pytest.raises(httpx.ReadTimeout):
            HTTP.get(f"{url}/events", headers={"token": token}, timeout=0.2)
    with pytest.raises(httpx.ConnectError):
        HTTP.get(f"{url}/events", headers={"token": token}, timeout=2)


def test_start_all_uses_consecutive_ports_or_free_ones():
    running = start_all(tickets=5, faults=["vivenu:/events=503x1", "*=latency:1x1"])
    try:
        assert [e.name for e in running] == list(EMULATORS)
        vivenu = running[0]
        assert [f.spec for f in vivenu.faults] == ["503x1", "latency:1x1"]
        assert [f.spec for f in running[1].faults] == ["latency:1x1"]
        assert len({e.port for e in running}) == 5
    finally:
        for e in running:
            e.stop()
    with pytest.raises(ValueError, match="unknown emulator"):
        start_emulator("eventbrite")
