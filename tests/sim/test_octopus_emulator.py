"""The Octopus emulator: Bearer auth, the {data, pagination} envelope, services, tickets."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from turnstiled.sim import start_emulator
from turnstiled.sim.seed import parse_iso

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request


@pytest.fixture(scope="module")
def emu():
    with start_emulator("octopus", tickets=60, seed=6) as e:
        yield e


@pytest.fixture
def loc(emu):
    """A client on ``/rest/v1/Location/{LocationId}`` with the Bearer key."""
    c = emu.credentials
    with httpx.Client(base_url=f"{emu.base_url}/Location/{c['location_id']}/",
                      headers={"Authorization": f"Bearer {c['api_key']}"}, timeout=10) as client:
        yield client


def test_base_url_and_credentials(emu):
    assert emu.base_url.endswith("/rest/v1")
    assert set(emu.credentials) == {"api_key", "location_id", "version"}
    assert emu.credentials["location_id"].startswith("28")


@pytest.mark.parametrize("what", ["services", "tickets"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "Basic {key}"},
                                     {"Authorization": "{key}"}])
def test_a_missing_or_wrong_key_is_401_with_an_explanation(emu, what, headers):
    key = emu.credentials["api_key"]
    h = {k: v.format(key=key) for k, v in headers.items()}
    r = HTTP.get(f"{emu.base_url}/Location/{emu.credentials['location_id']}/{what}", headers=h)
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized" and r.json()["message"]


def test_the_key_is_only_good_for_its_location(emu):
    h = {"Authorization": f"Bearer {emu.credentials['api_key']}"}
    r = HTTP.get(f"{emu.base_url}/Location/28999004/services", headers=h)
    assert r.status_code == 401 and "Location" in r.json()["message"]
    r = HTTP.post(f"{emu.base_url}/Location/28999004/tickets", headers=h, json={"service": 1})
    assert r.status_code == 401


def test_services_envelope_as_documented(loc):
    body = loc.get("services").json()
    assert body["pagination"] == {"offset": 0, "limit": 5000, "rows": 3, "pages": 1,
                                  "currentPage": 1}
    hour = body["data"][0]
    documented = {"id", "LocationId", "typeId", "name", "price", "status", "onlineTime",
                  "expTime", "tpv", "pms", "showLogin", "simDevices", "maxUsers", "loginMethod",
                  "download", "upload", "downrate", "uprate", "dailyLimit", "validUntil", "vip",
                  "validateEmail", "deleted", "withRegistration", "macCaching", "issueOrder",
                  "type"}
    assert set(hour) == documented
    assert hour["type"] == {"id": "ttf", "description": "Tiempo corrido", "timetofinish": True,
                            "onlinetime": False, "timetolimit": False, "limittraffic": False}
    assert (hour["expTime"], hour["maxUsers"]) == (3600, 1)
    assert [s["maxUsers"] for s in body["data"]] == [1, 1, 4]


def test_ticket_pages_last_and_empty(loc):
    whole = loc.get("tickets").json()
    assert len(whole["data"]) == 60 and whole["pagination"]["rows"] == 60
    ids = []
    for offset in range(0, 60, 25):
        page = loc.get("tickets", params={"offset": offset, "limit": 25}).json()
        p = page["pagination"]
        assert p == {"offset": offset, "limit": 25, "rows": 60, "pages": math.ceil(60 / 25),
                     "currentPage": offset // 25 + 1}
        ids += [t["id"] for t in page["data"]]
    assert len(page["data"]) == 10  # the last page
    assert ids == [t["id"] for t in whole["data"]]
    empty = loc.get("tickets", params={"offset": 60, "limit": 25}).json()
    assert empty["data"] == [] and empty["pagination"]["rows"] == 60
    for bad in ({"limit": 0}, {"limit": 5001}, {"offset": -1}, {"limit": "all"}):
        assert loc.get("tickets", params=bad).status_code == 400


def test_seeded_tickets_have_time_windows_and_states(emu, loc):
    now = time.time()
    data = loc.get("tickets").json()["data"]
    assert all(len(t["code"]) == 8 for t in data)
    assert len({t["code"] for t in data}) == 60
    starts = [parse_iso(t["start_time"]) for t in data]
    ends = [parse_iso(t["valid_until"]) for t in data]
    assert any(e < now for e in ends)  # expired
    assert any(s > now for s in starts)  # a pass for later
    assert all(s <= now <= e for s, e in zip(starts[:3], ends[:3], strict=True))
    assert {t["status"] for t in data} <= {"active", "cancelled"}
    assert {t["service"] for t in data} == {59219, 59220, 59221}


def test_create_a_ticket_as_json_or_form_and_it_is_recorded(emu, loc):
    svc = loc.get("services").json()["data"]
    made = loc.post("tickets", json={"service": str(svc[2]["id"]), "numusers": 3,
                                     "userId": "room-12", "format": "email",
                                     "start_time": "2030-01-01T10:00:00+00:00",
                                     "valid_until": "2030-01-02T10:00:00+00:00"})
    assert made.status_code == 200
    t = made.json()["data"]
    assert (t["numusers"], t["userId"], t["service"], t["status"]) == (3, "room-12", svc[2]["id"],
                                                                         "active")
    assert t["start_time"] == "2030-01-01T10:00:00+00:00"
    form = loc.post("tickets", data={"service": svc[0]["id"]}).json()["data"]
    assert form["numusers"] == 1  # the service's maxUsers
    span = parse_iso(form["valid_until"]) - parse_iso(form["start_time"])
    assert span == svc[0]["validUntil"]  # an unused ticket stays valid validUntil s
    listed = loc.get("tickets").json()["data"]
    assert [x["code"] for x in listed[-2:]] == [t["code"], form["code"]]
    assert [r["code"] for r in emu.records.all("ticket_created")][-2:] == [t["code"],
                                                                          form["code"]]
    for bad in ({}, {"service": 1}, {"service": svc[0]["id"], "numusers": 0},
                {"service": svc[0]["id"], "start_time": "soon"},
                {"service": svc[0]["id"], "format": "fax"},
                {"service": svc[0]["id"], "start_time": "2030-01-02T00:00:00+00:00",
                 "valid_until": "2030-01-01T00:00:00+00:00"}):
        assert loc.post("tickets", json=bad).status_code == 400, bad


def test_cancel_and_rezone_show_in_the_list_with_a_later_updated(admin):
    with start_emulator("octopus", tickets=5, seed=1) as emu:
        first, second = emu.tickets[0], emu.tickets[1]
        before = second["updated"]
        emu.state.cancel(first["id"])
        r = admin(emu, "POST", "tickets", json={"action": "rezone", "id": second["id"],
                                                "service": 59221})
        assert r.status_code == 200
        c = emu.credentials
        data = HTTP.get(f"{emu.base_url}/Location/{c['location_id']}/tickets",
                         headers={"Authorization": f"Bearer {c['api_key']}"}).json()["data"]
        assert data[0]["status"] == "cancelled"
        assert (data[1]["service"], data[1]["numusers"]) == (59221, 4)
        assert data[1]["updated"] > before
        assert admin(emu, "POST", "tickets", json={"action": "rezone", "id": second["id"],
                                                   "service": 1}).status_code == 400
        added = admin(emu, "POST", "tickets", json={"action": "add", "count": 2}).json()
        assert [t["id"] for t in added] == [800005, 800006] and len(emu.state) == 7


def test_edits_between_pages_touch_the_tickets_listed_first(start):
    emu = start("octopus", tickets=10, seed=2, edits_per_page=2)
    c = emu.credentials
    before = [t["updated"] for t in emu.state.tickets]
    page = HTTP.get(f"{emu.base_url}/Location/{c['location_id']}/tickets",
                    headers={"Authorization": f"Bearer {c['api_key']}"},
                    params={"limit": 4}).json()["data"]
    assert [t["updated"] for t in page] == before[:4]  # the page as it was served
    after = [t["updated"] for t in emu.state.tickets]
    assert after[2:] == before[2:]
    assert after[0] > before[0] and after[1] > before[1]
