"""The CrowdManager emulator: Basic auth, required date window, 0-based pages, string counts."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import httpx
import pytest

from turnstiled.sim import start_emulator
from turnstiled.sim.crowdmanager import THREE_YEARS

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request

EXAMPLE = Path(__file__).parent / "crowdmanager_example.py"


@pytest.fixture(scope="module")
def emu():
    with start_emulator("crowdmanager", tickets=450, seed=4) as e:
        yield e


def week() -> dict[str, int]:
    now = int(time.time())
    return {"date_init": now - 7 * 86400, "date_end": now + 60}


def get(emu, path="/tickets", token=None, scheme="Basic", **params) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token or emu.credentials['token']}"}
    return HTTP.get(emu.base_url + path, headers=headers, params=params, timeout=10)


def test_base_url_and_credentials(emu):
    assert emu.base_url.endswith("/api")
    assert set(emu.credentials) == {"token"}


@pytest.mark.parametrize("path", ["/users", "/tickets", "/merchandise", "/members",
                                  "/users-permissions"])
def test_every_list_needs_a_basic_token(emu, path):
    assert get(emu, path, **week()).status_code == 200
    for r in (HTTP.get(emu.base_url + path, params=week()), get(emu, path, token="x", **week()),
              get(emu, path, scheme="Bearer", **week())):
        assert r.status_code == 401
        assert r.json()["error"] == "Unauthorized"


def test_date_window_is_required_and_at_most_three_years(emu):
    now = int(time.time())
    for params in ({}, {"date_init": now - 100}, {"date_end": now},
                   {"date_init": "yesterday", "date_end": now},
                   {"date_init": now, "date_end": now - 1},
                   {"date_init": now - THREE_YEARS - 1, "date_end": now},
                   {"date_init": now - 4 * 365 * 86400, "date_end": now}):
        r = get(emu, **params)
        assert r.status_code == 400, params
        assert isinstance(r.json()["error"], str)
    assert get(emu, date_init=now - 3 * 365 * 86400, date_end=now).status_code == 200
    assert get(emu, date_init=now - THREE_YEARS, date_end=now).status_code == 200


def test_pages_are_zero_based_with_at_most_200_elements(emu):
    assert len(get(emu, **week()).json()["items"]) == 10  # count_elements defaults to 10
    for bad in ({"count_elements": 201}, {"count_elements": 0}, {"page": -1},
                {"page": "first"}, {"order": "RANDOM"}):
        assert get(emu, **bad, **week()).status_code == 400, bad
    pages = [get(emu, page=p, count_elements=200, **week()).json() for p in range(4)]
    assert [len(p["items"]) for p in pages] == [200, 200, 50, 0]  # full, full, last, empty
    assert [int(p["page"]) for p in pages] == [0, 1, 2, 3]
    assert all(int(p["count"]) == 450 for p in pages)
    ids = [i["id"] for p in pages for i in p["items"]]
    assert len(ids) == len(set(ids)) == 450


def test_order_asc_and_desc_on_last_update(emu):
    asc = [get(emu, page=p, count_elements=200, order="ASC", **week()).json()["items"]
           for p in range(3)]
    desc = [get(emu, page=p, count_elements=200, order="desc", **week()).json()["items"]
            for p in range(3)]
    up = [(i["last_update"], i["id"]) for page in asc for i in page]
    down = [(i["last_update"], i["id"]) for page in desc for i in page]
    assert up == sorted(up) and down == sorted(up, reverse=True)


def test_the_window_filters_on_last_update_inclusively(emu):
    items = [i for p in range(3) for i in get(emu, page=p, count_elements=200, **week()).json()[
        "items"]]
    lo, hi = items[100]["last_update"], items[300]["last_update"]
    inside = [i["id"] for i in items if lo <= i["last_update"] <= hi]
    got = [i["id"] for p in range(2) for i in get(
        emu, page=p, count_elements=200, date_init=lo, date_end=hi).json()["items"]]
    assert got == inside


def test_count_and_page_arrive_as_strings_on_every_second_answer(emu):
    answers = [get(emu, count_elements=5, **week()).json() for _ in range(4)]
    assert [type(a["count"]) for a in answers] in ([int, str, int, str], [str, int, str, int])
    assert all(type(a["page"]) is type(a["count"]) for a in answers)
    assert {int(a["count"]) for a in answers} == {450}


@pytest.mark.parametrize("mode,kinds", [("always", {str}), ("never", {int})])
def test_string_counts_can_be_fixed_either_way(start, mode, kinds):
    emu = start("crowdmanager", tickets=12, strings=mode)
    answers = [get(emu, **week()).json() for _ in range(3)]
    assert {type(a["count"]) for a in answers} == kinds
    assert {type(a["page"]) for a in answers} == kinds
    with pytest.raises(ValueError, match="strings"):
        start("crowdmanager", strings="sometimes")


def test_items_carry_the_documented_fields(emu):
    ticket = get(emu, **week()).json()["items"][0]
    assert {"id", "last_update", "id_event", "match_date", "match_time", "user_held_id",
            "status", "status_txt", "sector", "sector_txt", "ticket_type",
            "ticket_type_txt", "barcode"} <= set(ticket)
    assert ticket["barcode"].isdigit() and len(ticket["barcode"]) == 16
    statuses = {i["status_txt"] for p in range(3)
                for i in get(emu, page=p, count_elements=200, **week()).json()["items"]}
    assert statuses == {"Active", "Cancelled", "Refunded"}
    member = get(emu, "/members", **week()).json()["items"][0]
    assert {"id", "name", "category", "max_tickets_per_match"} <= set(member)
    assert get(emu, "/merchandise", date_init=int(time.time()) - 30 * 86400,
               date_end=int(time.time())).json()["items"]
    assert get(emu, "/users-permissions", **week()).json()["items"][0]["permission_txt"]
    assert get(emu, "/users", **week()).json()["items"][0]["first_name"]
    assert get(emu, "/nothing", **week()).status_code == 404


def test_changes_move_last_update_into_a_later_window(start, admin):
    emu = start("crowdmanager", tickets=40, seed=2)
    t0 = int(time.time())
    later = {"date_init": t0, "date_end": t0 + 3600, "count_elements": 200}
    assert get(emu, **later).json()["items"] == []
    emu.state.cancel(100001)
    emu.state.rezone(100002, 30)
    admin(emu, "POST", "tickets", json={"action": "cancel", "id": 100003}).raise_for_status()
    new = emu.state.add(2)
    rows = {i["id"]: i for i in get(emu, **later).json()["items"]}
    assert set(rows) == {100001, 100002, 100003} | {n["id"] for n in new}
    assert rows[100001]["status_txt"] == rows[100003]["status_txt"] == "Cancelled"
    assert (rows[100002]["sector"], rows[100002]["sector_txt"]) == (30, "VIP lounge")
    assert all(r["last_update"] >= t0 for r in rows.values())
    assert int(get(emu, date_init=t0 - 7 * 86400, date_end=t0 + 3600).json()["count"]) == 42


def test_the_vendors_python_example_fetches_every_ticket(start, monkeypatch, capsys):
    pytest.importorskip("requests")
    emu = start("crowdmanager", tickets=250, seed=7, strings="never")
    monkeypatch.setenv("CROWDMANAGER_URL", emu.base_url)
    monkeypatch.setenv("CROWDMANAGER_TOKEN", emu.credentials["token"])
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)  # the example's 1 s courtesy delay
    scope = runpy.run_path(str(EXAMPLE))
    count = int(get(emu, date_init=int(time.time()) - 30 * 86400,
                    date_end=int(time.time())).json()["count"])
    assert count == 250
    assert len(scope["all_items"]) == count
    assert len({i["id"] for i in scope["all_items"]}) == count
    assert pauses == [1, 1]  # three pages of 100, a pause between each
    assert f"Total items fetched: {count}" in capsys.readouterr().out


def test_the_vendors_example_trips_over_a_count_sent_as_a_string(start, monkeypatch):
    """Why clients must coerce ``count``: the vendor's own example cannot compare it."""
    pytest.importorskip("requests")
    emu = start("crowdmanager", tickets=150, strings="always")
    monkeypatch.setenv("CROWDMANAGER_URL", emu.base_url)
    monkeypatch.setenv("CROWDMANAGER_TOKEN", emu.credentials["token"])
    monkeypatch.setattr(time, "sleep", lambda s: None)
    with pytest.raises(TypeError, match="'>=' not supported"):
        runpy.run_path(str(EXAMPLE))
