"""Vendor quirks of the CrowdManager, TickeTing, Octopus and chapter-event emulators."""

from __future__ import annotations

import time

import httpx
import pytest

from turnstiled.sim import start_emulator

CROWDMANAGER_EXAMPLE = '''
import os
import requests
import time
from datetime import datetime, timedelta

# Base URL of the API endpoint
base_url = os.environ["CROWDMANAGER_URL"] + "/tickets"  # Replace with your endpoint

# Authorization token (Basic Authentication)
headers = {
    "Authorization": "Basic " + os.environ["CROWDMANAGER_TOKEN"]  # Replace with your token
}

# Required date parameters (Unix timestamps in seconds)
# Example: Last 30 days
date_end = int(datetime.now().timestamp())
date_init = int((datetime.now() - timedelta(days=30)).timestamp())

# Pagination variables (0-based)
page = 0
all_items = []
delay_seconds = 0.01  # Delay between requests

try:
    while True:
        # Make a GET request to fetch the current page
        params = {
            "date_init": date_init,
            "date_end": date_end,
            "page": page,
            "count_elements": 100,  # Max 200
            "order": "DESC"
        }

        response = requests.get(base_url, params=params, headers=headers, timeout=10)
        response.raise_for_status()  # Raise an exception for HTTP errors

        # Parse JSON response
        data = response.json()

        # Check if we have items (API returns {count, page, items})
        if not data.get("items") or len(data["items"]) == 0:
            break  # Exit loop if no more results

        # Add current page items to the list
        all_items.extend(data["items"])
        print(f"Page {page} fetched successfully. Total items so far: {len(all_items)}/{data.get('count', 0)}")

        # Check if we've fetched all items
        if len(all_items) >= int(data.get("count", 0)):
            break

        # Increment the page counter
        page += 1

        # Delay before the next request
        time.sleep(delay_seconds)

except requests.exceptions.HTTPError as e:
    if e.response.status_code == 400:
        print(f"Bad Request: {e.response.text}")
    elif e.response.status_code == 401:
        print(f"Unauthorized: Check your access token")
    else:
        print(f"HTTP Error {e.response.status_code}: {e}")
except requests.exceptions.RequestException as e:
    print(f"Error during API call: {e}")

print(f"Total items fetched: {len(all_items)}")
'''


@pytest.fixture(scope="module")
def cm():
    e = start_emulator("crowdmanager", tickets=450, seed=4)
    yield e
    e.stop()


def cm_get(e, path="/tickets", token=None, **params):
    headers = {"Authorization": f"Basic {token or e.credentials['token']}"}
    return httpx.get(e.base_url + path, headers=headers, params=params)


def test_crowdmanager_vendor_example_fetches_count_items(cm, monkeypatch, capsys):
    pytest.importorskip("requests")
    monkeypatch.setenv("CROWDMANAGER_URL", cm.base_url)
    monkeypatch.setenv("CROWDMANAGER_TOKEN", cm.credentials["token"])
    scope: dict = {}
    exec(compile(CROWDMANAGER_EXAMPLE, "crowdmanager-example", "exec"), scope)
    assert len(scope["all_items"]) == 450
    assert "Total items fetched: 450" in capsys.readouterr().out


def test_crowdmanager_quirks(cm):
    now = int(time.time())
    week = {"date_init": now - 7 * 86400, "date_end": now + 10}
    assert cm_get(cm, token="wrong", **week).status_code == 401
    assert httpx.get(cm.base_url + "/tickets", params=week).status_code == 401
    assert httpx.get(cm.base_url + "/tickets", params=week,
                     headers={"Authorization": f"Bearer {cm.credentials['token']}"}
                     ).status_code == 401
    assert cm_get(cm).status_code == 400  # dates missing
    assert cm_get(cm, date_init=now - 4 * 365 * 86400, date_end=now).status_code == 400
    assert cm_get(cm, count_elements=201, **week).status_code == 400
    pages = [cm_get(cm, page=p, count_elements=200, **week).json() for p in range(4)]
    assert [len(p["items"]) for p in pages] == [200, 200, 50, 0]  # 0-based, last, empty
    assert {type(p["count"]) for p in pages} == {int, str}  # counts arrive as strings too
    assert all(int(p["count"]) == 450 for p in pages)
    asc = cm_get(cm, count_elements=5, order="ASC", **week).json()["items"]
    desc = cm_get(cm, count_elements=5, order="DESC", **week).json()["items"]
    assert asc[0]["last_update"] <= asc[-1]["last_update"]
    assert desc[0]["last_update"] >= desc[-1]["last_update"]
    assert {"status_txt", "sector_txt", "id_event", "match_date", "user_held_id"} <= set(asc[0])
    members = cm_get(cm, "/members", **week).json()
    assert {"id", "name", "category", "max_tickets_per_match"} <= set(members["items"][0])


def test_crowdmanager_changes_show_in_a_later_window(cm):
    t0 = int(time.time())
    item = cm.cancel(100001)
    rows = cm_get(cm, date_init=t0, date_end=t0 + 60, count_elements=200).json()["items"]
    assert [r["id"] for r in rows if r["id"] == item["id"]] == [item["id"]]
    assert rows[0]["status_txt"] == "Cancelled" or any(r["status"] == 2 for r in rows)


@pytest.fixture(scope="module")
def tk():
    e = start_emulator("ticketing", tickets=60, seed=4)
    yield e
    e.stop()


def test_ticketing_client_version_and_keys(tk):
    c = tk.credentials
    url = f"{tk.base_url}/events/{c['event']}/tickets"
    r = httpx.get(url, headers={"X-API-Key": c["api_key"]})
    assert r.status_code == 412 and "upgrade" in r.json()["error"]
    r = httpx.get(url, headers={"X-API-Key": c["api_key"], "X-Client-Version": "2.9.0"})
    assert r.status_code == 412
    v = {"X-Client-Version": "3.0.0"}
    assert httpx.get(url, headers=v).json() == {
        "message": "Your request could not be authenticated."}
    r = httpx.get(url, headers={**v, "X-API-Key": "bad"})
    assert r.status_code == 403 and "restricted" in r.json()["message"]
    r = httpx.get(f"{tk.base_url}/nowhere", headers=v)
    assert r.status_code == 404 and "does not exist" in r.json()["message"]


def test_ticketing_token_exchange_paging_and_admissions(tk):
    c, v = tk.credentials, {"X-Client-Version": "3.0.0"}
    assert httpx.get(f"{tk.base_url}/tokens/ZZZZZZZZ", headers=v).status_code == 404
    tok = httpx.get(f"{tk.base_url}/tokens/{c['section_token_code']}", headers=v).json()
    assert set(tok) == {"key", "event", "sections"} and len(tok["sections"]) == 1
    h = {**v, "X-API-Key": tok["key"]}
    url = f"{tk.base_url}/events/{c['event']}/tickets"
    p1 = httpx.get(url, headers=h, params={"records": 25, "page": 1}).json()
    assert (p1["total"], p1["page"], p1["records"], len(p1["entries"])) == (60, 1, 25, 25)
    p3 = httpx.get(url, headers=h, params={"records": 25, "page": 3}).json()
    assert len(p3["entries"]) == 10
    assert httpx.get(url, headers=h, params={"records": 25, "page": 4}).status_code == 404
    e = p1["entries"][0]
    assert e["redeemed"] == "N/A" and set(e["section"]) == {"self", "name"}
    import re
    assert re.fullmatch(r"[0-9A-Z]{6}-[0-9A-Z]{12}", e["serial"])
    mine = [x["serial"] for x in p1["entries"] + p3["entries"]
            if x["section"]["self"] in tok["sections"] and x["status"] == "Issued"]
    other = [x["serial"] for x in p1["entries"] if x["section"]["self"] not in tok["sections"]]
    adm = f"{tk.base_url}/events/{c['event']}/admissions"
    r = httpx.post(adm, headers=h, json={"redeemer": "gate", "device": "g1",
                                         "serials": [mine[0], other[0]]})
    assert r.status_code == 201 and [a["ticket"].endswith(mine[0]) for a in r.json()] == [True]
    r = httpx.post(adm, headers=h, json={"redeemer": "gate", "device": "g1",
                                         "serials": [mine[0]]})
    assert r.status_code == 400  # already redeemed: none admits
    since = httpx.get(url, headers=h, params={"modified_since": "2100-01-01T00:00:00+00:00"})
    assert since.status_code == 404 or since.json()["entries"] == []
    admin = {**v, "X-API-Key": c["api_key"]}
    new = httpx.post(f"{tk.base_url}/events/{c['event']}/tokens", headers=admin,
                     json={"sections": tok["sections"]})
    assert new.status_code == 201 and len(new.json()["code"]) == 8
    listed = httpx.get(f"{tk.base_url}/events/{c['event']}/tokens", headers=admin,
                       params={"global": "false"}).json()
    assert listed["total"] == 2
    tid = new.json()["self"].rsplit("/", 1)[-1]
    assert httpx.get(f"{tk.base_url}/events/{c['event']}/tokens/{tid}",
                     headers=admin).json()["code"] == new.json()["code"]


def test_octopus_envelope_auth_and_create():
    with start_emulator("octopus", tickets=12, seed=4) as e:
        c = e.credentials
        base = f"{e.base_url}/Location/{c['location_id']}"
        h = {"Authorization": f"Bearer {c['api_key']}"}
        assert httpx.get(f"{base}/services").status_code == 401
        assert httpx.get(f"{e.base_url}/Location/OTHER/services", headers=h).status_code == 401
        svc = httpx.get(f"{base}/services", headers=h).json()
        assert svc["pagination"] == {"offset": 0, "limit": 5000, "rows": 3, "pages": 1,
                                     "currentPage": 1}
        assert svc["data"][0]["type"]["id"] == "ttf" and svc["data"][0]["expTime"] == 3600
        page = httpx.get(f"{base}/tickets", headers=h, params={"offset": 10, "limit": 5}).json()
        assert len(page["data"]) == 2 and page["pagination"]["currentPage"] == 3
        made = httpx.post(f"{base}/tickets", headers=h, json={"service": svc["data"][2]["id"],
                                                              "numusers": 4}).json()["data"]
        assert made["numusers"] == 4 and len(made["code"]) == 8
        assert httpx.post(f"{base}/tickets", headers=h, json={}).status_code == 400
        assert e.received("ticket_created")[0]["code"] == made["code"]


def test_chapterevents_validate_ticket():
    with start_emulator("chapterevents", tickets=20, seed=4) as e:
        url = f"{e.base_url}/validate_ticket/"
        pw = e.credentials["password"]
        ext = next(t for t in e.tickets.values() if t["status"] == "PAID")["external_id"]
        assert httpx.put(url, json={"external_id": ext}).json() == "InvalidRequestData"
        r = httpx.put(url, json={"external_id": ext, "password": "x", "use_ticket": False})
        assert (r.status_code, r.json()) == (401, "Incorrect password")
        r = httpx.put(url, json={"external_id": "NOPENO", "password": pw, "use_ticket": True})
        assert (r.status_code, r.json()) == (404, {"times_used": -1,
                                                   "status": "Ticket does not exist"})
        body = {"external_id": ext, "password": pw, "use_ticket": False}
        assert httpx.put(url, json=body).json()["times_used"] == 0  # a peek uses nothing
        body["use_ticket"] = True
        first = httpx.put(url, json=body).json()
        assert set(first) == {"external_id", "times_used", "chapter_event", "status"}
        assert first["times_used"] == 0  # the count before this call
        assert httpx.put(url, json=body).json()["times_used"] == 1
        assert [v["times_used"] for v in e.received("validation")] == [-1, 0, 0, 1]
        events = httpx.get(f"{e.base_url}/get_chapterevents/").json()
        assert {"chapter_events", "ticket_types"} == set(events)
        r = httpx.post(f"{e.base_url}/reserve_ticket/", json={
            "chapter_event": "1", "tickets": [{"ticket_type": "1", "count": 2}]})
        assert r.status_code == 201 and "sessionid" in r.headers["set-cookie"]
        pay = httpx.post(f"{e.base_url}/start_payment/", json={"email_address": "a@b.se"},
                         cookies={"sessionid": r.cookies["sessionid"]})
        assert pay.status_code == 200 and len(pay.json()) == 32
