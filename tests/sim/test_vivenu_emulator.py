"""The vivenu emulator against vivenu's own OpenAPI, over HTTP: auth, paging, windows, scans."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnstiled.sim import VivenuEmulator, start_emulator

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request

OPENAPI = json.loads((Path(__file__).parent / "vivenu-accessusers-openapi.json").read_text())
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return bool(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", value))
    return True


def schema(path: str, method: str = "get") -> dict:
    """The 200 response schema of *path*, its ``$ref`` resolved against the components."""
    op = OPENAPI["paths"][path][method]
    return {**op["responses"]["200"]["content"]["application/json"]["schema"],
            "components": OPENAPI["components"]}


def validate(body: object, path: str, method: str = "get") -> None:
    jsonschema.Draft202012Validator(schema(path, method), format_checker=FORMATS).validate(body)


def scan_schema_accepts(scans: object) -> bool:
    body_schema = {"$ref": "#/components/schemas/POST_Accessusers_CreateScans",
                   "components": OPENAPI["components"]}
    v = jsonschema.Draft202012Validator(body_schema, format_checker=FORMATS)
    return v.is_valid(scans)


@pytest.fixture(scope="module")
def emu():
    with start_emulator("vivenu", tickets=1500, seed=5) as e:
        yield e


@pytest.fixture
def client(emu):
    with httpx.Client(base_url=emu.base_url + "/", headers={"token": emu.credentials["token"]},
                      timeout=10) as c:
        yield c


def events(client) -> list[str]:
    return [e["_id"] for e in client.get("events").json()]


def test_the_base_url_and_credentials_follow_the_conventions(emu):
    assert emu.base_url.startswith("http://127.0.0.1:")
    assert emu.base_url.endswith("/api/accessusers")
    assert set(emu.credentials) == {"token", "event_ids"}
    assert len(emu.credentials["event_ids"].split(",")) == 3


def test_every_documented_endpoint_answers_what_the_openapi_describes(emu, client):
    evs = client.get("events")
    validate(evs.json(), "/api/accessusers/events")
    validate(client.get("me").json(), "/api/accessusers/me")
    validate(client.get("seller").json(), "/api/accessusers/seller")
    ev = evs.json()[0]["_id"]
    skip, total = 0, None
    while total is None or skip < total:  # every ticket of one event, validated
        page = client.get(f"tickets/v2/{ev}", params={"top": 1000, "skip": skip}).json()
        validate(page, "/api/accessusers/tickets/v2/{eventId}")
        skip, total = skip + len(page["docs"]), page["total"]
    validate(client.get(f"{ev}/tickets", params={"top": 50}).json(),
             "/api/accessusers/{eventId}/tickets")
    statuses = {}
    for doc in emu.state.tickets:
        statuses.setdefault(doc["status"], doc)
    assert set(statuses) == {"VALID", "INVALID", "DETAILSREQUIRED"}
    unlisted = {d["status"]: d for d in emu.state.unlisted.values()}
    assert set(unlisted) == {"RESERVED", "BLANK"}
    for doc in [*statuses.values(), *unlisted.values()]:
        one = client.get(f"tickets/{doc['barcode']}").json()
        validate(one, "/api/accessusers/tickets/{barcode}")
        scan = client.post(f"tickets/{doc['barcode']}/scan")
        validate(scan.json(), "/api/accessusers/tickets/{barcode}/scan", "post")
    scans = [{"barcode": statuses["VALID"]["barcode"], "scanned_at": "2026-11-24T10:00:00.000Z",
              "type": "OK", "direction": "IN"}]
    assert scan_schema_accepts(scans)
    validate(client.post(f"scans/{ev}", json=scans).json(),
             "/api/accessusers/scans/{eventId}", "post")


def test_single_ticket_status_stays_inside_its_narrower_enum(emu, client):
    detail = next(d for d in emu.state.tickets if d["status"] == "DETAILSREQUIRED")
    assert client.get(f"tickets/{detail['barcode']}").json()["status"] == "INVALID"
    reserved = next(d for d in emu.state.unlisted.values() if d["status"] == "RESERVED")
    assert client.post(f"tickets/{reserved['barcode']}/scan").json()["ticket"]["status"] == \
        "RESERVED"
    listed = {d["barcode"] for ev in events(client)
              for d in client.get(f"tickets/v2/{ev}", params={"top": 1000}).json()["docs"]}
    assert reserved["barcode"] not in listed  # scan-only tickets are in no list


@pytest.mark.parametrize("path,method", [
    ("events", "GET"), ("me", "GET"), ("seller", "GET"), ("tickets/v2/{ev}", "GET"),
    ("{ev}/tickets", "GET"), ("tickets/{code}", "GET"), ("tickets/{code}/scan", "POST"),
    ("scans/{ev}", "POST")])
@pytest.mark.parametrize("token,message", [(None, "No token provided"),
                                           ("wrong", "Invalid token"),
                                           ("Bearer x", "Invalid token")])
def test_every_endpoint_refuses_a_missing_or_wrong_token(emu, path, method, token, message):
    ev = emu.credentials["event_ids"].split(",")[0]
    code = next(iter(emu.tickets))
    headers = {} if token is None else {"token": token}
    r = HTTP.request(method, f"{emu.base_url}/{path.format(ev=ev, code=code)}",
                      headers=headers, json=[] if method == "POST" else None)
    assert r.status_code == 401
    assert r.json() == {"statusCode": 401, "error": "Unauthorized", "message": message}


def test_paging_limits_last_page_and_empty_page(client):
    ev = events(client)[0]
    first = client.get(f"tickets/v2/{ev}").json()
    assert len(first["docs"]) == 25 and first["total"] == 500  # top defaults to 25
    assert len(client.get(f"tickets/v2/{ev}", params={"top": 1}).json()["docs"]) == 1
    assert len(client.get(f"tickets/v2/{ev}", params={"top": 1000}).json()["docs"]) == 500
    assert len(client.get(f"tickets/v2/{ev}", params={"top": "7.9"}).json()["docs"]) == 7
    for bad in ({"top": 0}, {"top": 1001}, {"top": -5}, {"top": "x"}, {"skip": -1},
                {"skip": "many"}):
        r = client.get(f"tickets/v2/{ev}", params=bad)
        assert r.status_code == 400, bad
        assert r.json()["statusCode"] == 400 and r.json()["error"] == "Bad Request"
    last = client.get(f"tickets/v2/{ev}", params={"top": 200, "skip": 400}).json()
    assert (len(last["docs"]), last["total"]) == (100, 500)
    for skip in (500, 501, 10_000):
        assert client.get(f"tickets/v2/{ev}", params={"top": 200, "skip": skip}).json() == \
            {"docs": [], "total": 500}
    ids: list[str] = []
    for skip in range(0, 500, 120):
        ids += [d["_id"] for d in client.get(f"tickets/v2/{ev}",
                                              params={"top": 120, "skip": skip}).json()["docs"]]
    assert len(ids) == len(set(ids)) == 500  # advancing skip walks every ticket once


def test_pages_are_ordered_by_update_time_then_id(client):
    ev = events(client)[1]
    docs = client.get(f"tickets/v2/{ev}", params={"top": 1000}).json()["docs"]
    keys = [(d["updatedAt"], d["_id"]) for d in docs]
    assert keys == sorted(keys)
    assert all(d["updatedAt"] >= d["createdAt"] for d in docs)
    assert any(d["updatedAt"] > d["createdAt"] for d in docs)  # some changed since sold


def test_from_is_inclusive_until_exclusive_and_windows_partition(client):
    ev = events(client)[2]
    docs = client.get(f"tickets/v2/{ev}", params={"top": 1000}).json()["docs"]
    a, b, c = docs[50]["updatedAt"], docs[200]["updatedAt"], docs[400]["updatedAt"]

    def window(lo: str | None, hi: str | None) -> list[str]:
        params = {"top": 1000, **({"from": lo} if lo else {}), **({"until": hi} if hi else {})}
        body = client.get(f"tickets/v2/{ev}", params=params).json()
        assert body["total"] == len(body["docs"])
        return [d["_id"] for d in body["docs"]]

    assert window(a, b)[0] == docs[50]["_id"]  # from is inclusive
    assert docs[200]["_id"] not in window(a, b)  # until is exclusive
    assert window(a, b) + window(b, c) == window(a, c)
    assert window(None, a) + window(a, None) == [d["_id"] for d in docs]
    paged = client.get(f"tickets/v2/{ev}", params={"from": a, "until": c, "top": 10,
                                                   "skip": 20}).json()
    assert [d["_id"] for d in paged["docs"]] == window(a, c)[20:30]
    assert paged["total"] == len(window(a, c))
    for bad in ({"from": "yesterday"}, {"until": "2026-13-01T00:00:00Z"}):
        assert client.get(f"tickets/v2/{ev}", params=bad).status_code == 400


def test_changes_bump_updated_at_into_the_next_delta_window(client, admin):
    with start_emulator("vivenu", tickets=90, seed=9) as emu:
        c = httpx.Client(base_url=emu.base_url + "/", headers={"token": emu.credentials["token"]})
        ev = emu.credentials["event_ids"].split(",")[0]
        before = c.get(f"tickets/v2/{ev}", params={"top": 1000}).json()["docs"]
        since = max(d["updatedAt"] for d in before)
        cancelled = emu.state.cancel(before[0]["barcode"])
        rezoned = emu.state.rezone(before[1]["barcode"], ["VIP", "NORTH"])
        new = emu.state.add(2, event=ev)
        over_http = admin(emu, "POST", "tickets", json={
            "action": "update", "key": before[2]["barcode"], "changes": {"name": "Ny Namn"}})
        assert over_http.status_code == 200
        admin(emu, "POST", "tickets", json={"action": "rezone", "barcode": before[3]["barcode"],
                                            "zones": ["BACKSTAGE"]}).raise_for_status()
        delta = c.get(f"tickets/v2/{ev}", params={"top": 1000, "from": since}).json()
        got = {d["barcode"]: d for d in delta["docs"]}
        assert set(got) >= {before[0]["barcode"], before[1]["barcode"], before[2]["barcode"],
                            before[3]["barcode"]} | {n["barcode"] for n in new}
        assert got[cancelled["barcode"]]["status"] == "INVALID"
        assert got[rezoned["barcode"]]["entry"] == ["VIP", "NORTH"]
        assert got[before[2]["barcode"]]["name"] == "Ny Namn"
        assert got[before[3]["barcode"]]["entry"] == ["BACKSTAGE"]
        stamps = [d["updatedAt"] for d in delta["docs"] if d["updatedAt"] > since]
        assert len(stamps) == len(set(stamps)) == 6  # each change its own, later, time
        assert c.get(f"tickets/v2/{ev}").json()["total"] == 32
        assert admin(emu, "GET", f"tickets/{new[0]['barcode']}").json()["eventId"] == ev
        bad = admin(emu, "POST", "tickets", json={"action": "update", "key": new[0]["barcode"],
                                                  "changes": {"nonsense": 1}})
        assert bad.status_code == 400
        assert admin(emu, "GET", "tickets/NOSUCHCODE").status_code == 404
        c.close()


def test_one_ticket_by_barcode_and_event(emu, client):
    doc = next(iter(emu.tickets.values()))
    assert client.get(f"tickets/{doc['barcode']}").json()["_id"] == doc["_id"]
    assert client.get(f"tickets/{doc['barcode']}", params={"eventId": doc["eventId"]}
                      ).status_code == 200
    other = next(e for e in events(client) if e != doc["eventId"])
    for r in (client.get(f"tickets/{doc['barcode']}", params={"eventId": other}),
              client.get("tickets/NOSUCH12345")):
        assert r.status_code == 404
        assert r.json() == {"statusCode": 404, "error": "Not Found",
                            "message": "Ticket not found"}
    r = client.get(f"tickets/v2/{'0' * 24}")
    assert r.status_code == 400 and r.json()["statusCode"] == 400
    r = client.get("nowhere/at/all")
    assert r.status_code == 404 and r.json()["statusCode"] == 404
    assert client.delete("events").status_code == 405


def test_online_scan_grants_once_and_is_recorded(client):
    with start_emulator("vivenu", tickets=30, seed=2) as emu:
        c = httpx.Client(base_url=emu.base_url + "/", headers={"token": emu.credentials["token"]})
        valid = next(d for d in emu.tickets.values() if d["status"] == "VALID")
        first = c.post(f"tickets/{valid['barcode']}/scan").json()
        assert first["access"] == "GRANTED" and first["ticket"]["barcode"] == valid["barcode"]
        assert c.post(f"tickets/{valid['barcode']}/scan").json()["access"] == "DENIED"
        out = c.post(f"tickets/{valid['barcode']}/scan", json={"direction": "OUT"}).json()
        assert out["access"] == "GRANTED"  # checked out: may come back in
        assert c.post(f"tickets/{valid['barcode']}/scan").json()["access"] == "GRANTED"
        blank = next(iter(emu.state.unlisted))
        assert c.post(f"tickets/{blank}/scan").json()["access"] == "DENIED"
        assert c.post("tickets/NOSUCH12345/scan").status_code == 404
        assert [r["access"] for r in emu.records.all("online_scan", barcode=valid["barcode"])] \
            == ["GRANTED", "DENIED", "GRANTED", "GRANTED"]
        assert emu.records.count("online_scan") == 5
        c.close()
    with VivenuEmulator(tickets=10, seed=2, multi_checkin=True) as multi:
        code = next(d["barcode"] for d in multi.tickets.values() if d["status"] == "VALID")
        h = {"token": multi.credentials["token"]}
        answers = [HTTP.post(f"{multi.base_url}/tickets/{code}/scan", headers=h).json()[
            "access"] for _ in range(2)]
        assert answers == ["GRANTED", "GRANTED"]
        me = HTTP.get(f"{multi.base_url}/me", headers=h).json()
        assert me["deviceSettings"]["scanConfig"]["enableMultiCheckin"] is True


def test_uploaded_scans_are_recorded_in_order_and_a_bad_batch_not_at_all(admin):
    with start_emulator("vivenu", tickets=30, seed=3) as emu:
        c = httpx.Client(base_url=emu.base_url + "/", headers={"token": emu.credentials["token"]})
        doc = next(iter(emu.tickets.values()))
        ok = {"ticketId": doc["_id"], "barcode": doc["barcode"],
              "scanned_at": "2026-11-24T10:00:00.000Z", "type": "OK", "direction": "IN"}
        fail = {**ok, "type": "FAIL", "scanned_at": "2026-11-24T10:00:01.000Z"}
        assert c.post(f"scans/{doc['eventId']}", json=[ok, fail]).json() == {"status": "OK"}
        assert c.post(f"scans/{doc['eventId']}", json=[ok]).json() == {"status": "OK"}
        for bad in ([ok, {**ok, "direction": "SIDEWAYS"}], {"barcode": doc["barcode"]},
                    [{**ok, "barcode": "SHORT"}], [{**ok, "scanned_at": "noon"}]):
            r = c.post(f"scans/{doc['eventId']}", json=bad)
            assert r.status_code == 400 and r.json()["error"] == "Bad Request"
        assert c.post(f"scans/{'f' * 24}", json=[ok]).status_code == 400
        got = emu.records.all("scan")
        assert [(s["type"], s["scanned_at"]) for s in got] == [
            ("OK", ok["scanned_at"]), ("FAIL", fail["scanned_at"]), ("OK", ok["scanned_at"])]
        assert got[0]["event"] == doc["eventId"] and got[0]["ticketId"] == doc["_id"]
        assert emu.records.count("scan", type="OK") == 2  # the cloud does not de-duplicate
        over_http = admin(emu, "GET", "records", params={"kind": "scan", "type": "FAIL"}).json()
        assert [s["scanned_at"] for s in over_http] == [fail["scanned_at"]]
        requests = emu.records.requests("POST")
        assert [r["status"] for r in requests] == [200, 200, 400, 400, 400, 400, 400]
        assert admin(emu, "DELETE", "records").status_code == 200
        assert emu.records.all() == []
        c.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({}, optional={
    "barcode": st.text(min_size=0, max_size=12), "ticketId": st.one_of(st.text(), st.integers()),
    "scanned_at": st.sampled_from(["2026-11-24T10:00:00.000Z", "2026-11-24T10:00:00+01:00",
                                   "later", ""]),
    "type": st.sampled_from(["OK", "FAIL", "ok", ""]),
    "direction": st.sampled_from(["IN", "OUT", "UP"])}), max_size=3))
def test_scan_upload_accepts_exactly_what_the_openapi_body_schema_accepts(emu, scans):
    r = HTTP.post(f"{emu.base_url}/scans/{emu.credentials['event_ids'].split(',')[0]}",
                   headers={"token": emu.credentials["token"]}, json=scans)
    assert (r.status_code == 200) == scan_schema_accepts(scans), r.text


def test_me_reports_the_configured_sync_interval():
    with VivenuEmulator(tickets=0, sync_interval=300, scan_zone="zone-north") as emu:
        me = HTTP.get(f"{emu.base_url}/me", headers={"token": emu.credentials["token"]}).json()
        validate(me, "/api/accessusers/me")
        assert me["deviceSettings"]["ticketSyncInterval"] == 300
        assert me["deviceSettings"]["scanConfig"]["scanZoneId"] == "zone-north"
    with pytest.raises(ValueError, match="sync_interval"):
        VivenuEmulator(sync_interval=7)
