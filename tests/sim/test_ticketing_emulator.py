"""The TickeTing v3 emulator: client version, keys, token exchange, 1-based pages, admissions."""

from __future__ import annotations

import email.utils
import re
import time

import httpx
import pytest

from turnstiled.sim import start_emulator

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request

V = {"X-Client-Version": "3.0.0"}
NO_RESOURCE = {"error": "There is presently no resource with the given URI."}
RESTRICTED = {"message": "You are restricted from accessing this resource."}
UPGRADE = {"error": "Please upgrade your client to complete this request"}


@pytest.fixture(scope="module")
def emu():
    with start_emulator("ticketing", tickets=60, seed=4) as e:
        yield e


@pytest.fixture
def api(emu):
    """A client with the integration key, which may do everything."""
    with httpx.Client(base_url=emu.base_url, headers={**V, "X-API-Key": emu.credentials[
            "api_key"]}, timeout=10) as c:
        yield c


def integration(emu) -> dict:
    """Headers of the integration (the SDK exchanges a code with its own key)."""
    return {**V, "X-API-Key": emu.credentials["api_key"]}


def exchange(emu, code_key="section_token_code") -> dict:
    return HTTP.get(f"{emu.base_url}/tokens/{emu.credentials[code_key]}",
                    headers=integration(emu)).json()


def test_base_url_and_credentials(emu):
    assert emu.base_url.endswith("/v3")
    c = emu.credentials
    assert set(c) == {"api_key", "event", "global_token_code", "section_token_code",
                      "other_event"}
    assert all(re.fullmatch(r"[0-9A-Z]{8}", c[k])
               for k in ("global_token_code", "section_token_code"))


@pytest.mark.parametrize("version", [None, "", "2.9.9", "2", "three", "2.99.0"])
def test_a_missing_or_old_client_version_is_412(emu, version):
    headers = {"X-API-Key": emu.credentials["api_key"]}
    if version is not None:
        headers["X-Client-Version"] = version
    for url in (f"/events/{emu.credentials['event']}/tickets",
                f"/tokens/{emu.credentials['global_token_code']}", "/nowhere"):
        r = HTTP.get(emu.base_url + url, headers=headers)
        if url == "/nowhere":
            continue  # an unknown endpoint is a 404 whatever the version
        assert (r.status_code, r.json()) == (412, UPGRADE)


@pytest.mark.parametrize("version", ["3.0.0", "3.0", "3", "3.1.4", "4.0.0"])
def test_versions_from_3_0_0_up_are_served(emu, api, version):
    r = api.get(f"/events/{emu.credentials['event']}/tickets",
                headers={"X-Client-Version": version})
    assert r.status_code == 200


def test_missing_key_is_401_and_a_bad_or_unpermitted_key_403(emu):
    url = f"{emu.base_url}/events/{emu.credentials['event']}/tickets"
    for headers in (V, {**V, "X-API-Key": ""}):
        r = HTTP.get(url, headers=headers)
        assert (r.status_code, r.json()) == (401, {
            "message": "Your request could not be authenticated."})
    r = HTTP.get(url, headers={**V, "X-API-Key": "a9427bf35dd3d3011a1277c9c344ae07"})
    assert (r.status_code, r.json()) == (403, RESTRICTED)
    gate = {**V, "X-API-Key": exchange(emu)["key"]}
    other = f"{emu.base_url}/events/{emu.credentials['other_event']}/tickets"
    assert (HTTP.get(other, headers=gate).status_code, HTTP.get(other, headers=gate).json()) \
        == (403, RESTRICTED)  # a valid key, but not for this event
    tokens = f"{emu.base_url}/events/{emu.credentials['event']}/tokens"
    assert HTTP.get(tokens, headers=gate).status_code == 403  # only the integration key


def test_the_two_kinds_of_404(emu, api):
    r = api.get("/invalid/endpoint")
    assert (r.status_code, r.json()) == (404, {
        "message": "The requested endpoint /invalid/endpoint does not exist on this server."})
    r = api.get("/events/0000000/tickets")
    assert (r.status_code, r.json()) == (404, NO_RESOURCE)
    assert api.get("/tokens/ZZZZZZZZ").json() == {
        "error": "The provided code does not belong to any event token"}
    page = api.get(f"/events/{emu.credentials['event']}/tickets", params={"page": 99})
    assert (page.status_code, page.json()) == (404, {
        "error": "The specified page does not exist for the given records per page."})


def test_the_code_exchange_needs_the_integration_key(emu):
    url = f"{emu.base_url}/tokens/{emu.credentials['section_token_code']}"
    assert HTTP.get(url, headers=V).status_code == 401
    assert HTTP.get(url, headers={**V, "X-API-Key": exchange(emu)["key"]}).status_code == 403
    assert HTTP.get(url, headers=integration(emu)).status_code == 200


def test_tokens_can_be_changed_and_invalidated_but_not_the_global_one(emu, api):
    ev = emu.credentials["event"]
    sections = exchange(emu, "global_token_code")["sections"]
    token = api.post(f"/events/{ev}/tokens", json={"sections": sections[:1]}).json()
    tid = token["self"].rsplit("/", 1)[1]
    got = HTTP.get(f"{emu.base_url}/tokens/{token['code']}", headers=integration(emu)).json()
    changed = api.put(f"/events/{ev}/tokens/{tid}", json={"sections": sections[1:]})
    assert changed.status_code == 200 and changed.json()["sections"] == sections[1:]
    again = HTTP.get(f"{emu.base_url}/tokens/{token['code']}", headers=integration(emu)).json()
    assert again["sections"] == sections[1:] and again["key"] == got["key"]
    assert api.delete(f"/events/{ev}/tokens/{tid}").status_code == 200
    assert HTTP.get(f"{emu.base_url}/tokens/{token['code']}",
                    headers=integration(emu)).status_code == 404
    gate = {**V, "X-API-Key": got["key"]}
    assert HTTP.get(f"{emu.base_url}/events/{ev}/tickets", headers=gate).status_code == 403
    glob = api.get(f"/events/{ev}/tokens", params={"global": "true"}).json()["entries"][0]
    gid = glob["self"].rsplit("/", 1)[1]
    assert api.delete(f"/events/{ev}/tokens/{gid}").status_code == 409


def test_token_exchange_gives_the_gate_its_key_event_and_sections(emu, api):
    section = exchange(emu)
    assert set(section) == {"key", "event", "sections"}
    assert section["event"] == f"/events/{emu.credentials['event']}"
    assert len(section["sections"]) == 1
    glob = exchange(emu, "global_token_code")
    assert len(glob["sections"]) == 3 and section["sections"][0] in glob["sections"]
    gate = {**V, "X-API-Key": section["key"]}
    r = HTTP.get(f"{emu.base_url}/events/{emu.credentials['event']}/tickets", headers=gate)
    assert r.status_code == 200 and r.json()["total"] == 60
    assert emu.records.count("token_exchange", found=True) >= 2
    assert HTTP.get(f"{emu.base_url}/tokens/ZZZZZZZZ",
                    headers=integration(emu)).status_code == 404


def test_issue_list_and_show_admission_tokens(emu, api):
    ev = emu.credentials["event"]
    sections = exchange(emu, "global_token_code")["sections"]
    made = api.post(f"/events/{ev}/tokens", json={"sections": sections[1:]})
    assert made.status_code == 201
    token = made.json()
    assert set(token) == {"self", "code", "global", "sections"}
    assert re.fullmatch(r"[0-9A-Z]{8}", token["code"]) and token["global"] is False
    assert token["sections"] == sections[1:]
    key = HTTP.get(f"{emu.base_url}/tokens/{token['code']}",
                   headers=integration(emu)).json()["key"]
    assert key
    glob = api.get(f"/events/{ev}/tokens", params={"global": "true"}).json()
    assert glob["total"] == 1 and glob["entries"][0]["global"] is True
    extra = api.get(f"/events/{ev}/tokens", params={"global": "false"}).json()
    assert token["code"] in {t["code"] for t in extra["entries"]}
    every = api.get(f"/events/{ev}/tokens", params={"records": 1, "page": 2}).json()
    assert (every["page"], every["records"], len(every["entries"])) == (2, 1, 1)
    assert api.get(f"/events/{ev}/tokens", params={"records": 1, "page": 99}).status_code == 404
    tid = token["self"].rsplit("/", 1)[1]
    assert api.get(f"/events/{ev}/tokens/{tid}").json() == token
    assert api.get(f"/events/{ev}/tokens/1").json() == NO_RESOURCE
    other = emu.credentials["other_event"]
    foreign = api.post(f"/events/{ev}/tokens", json={"sections": [
        f"/events/{other}/sections/1"]})
    assert foreign.status_code == 400
    assert api.post(f"/events/{ev}/tokens", json={"sections": []}).status_code == 400


def test_ticket_pages_are_one_based_with_404_past_the_end(emu, api):
    url = f"/events/{emu.credentials['event']}/tickets"
    first = api.get(url).json()
    assert (first["total"], first["page"], first["records"], len(first["entries"])) == \
        (60, 1, 25, 25)
    last = api.get(url, params={"records": 25, "page": 3}).json()
    assert len(last["entries"]) == 10
    r = api.get(url, params={"records": 25, "page": 4})
    assert (r.status_code, r.json()["error"]) == (404, "The specified page does not exist "
                                                       "for the given records per page.")
    for bad in ({"page": 0}, {"records": 0}, {"records": 501}, {"page": "one"}):
        assert api.get(url, params=bad).status_code == 400, bad
    serials = [e["serial"] for p in (1, 2, 3)
               for e in api.get(url, params={"page": p}).json()["entries"]]
    assert len(set(serials)) == 60
    other = api.get(f"/events/{emu.credentials['other_event']}/tickets").json()
    assert other["total"] == 15  # the second event holds a quarter as many


def test_entries_look_like_the_vendors(emu, api):
    entries = api.get(f"/events/{emu.credentials['event']}/tickets",
                      params={"records": 60}).json()["entries"]
    for e in entries:
        assert re.fullmatch(r"[0-9A-Z]{6}-[0-9A-Z]{12}", e["serial"])
        assert set(e) == {"self", "serial", "status", "section", "owner", "issued", "redeemed"}
        assert set(e["section"]) == {"self", "name"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["issued"])
        assert e["self"].endswith(e["serial"])
    assert {e["status"] for e in entries} == {"Issued", "Void"}
    assert {e["redeemed"] for e in entries} == {"N/A"}
    assert {e["section"]["name"] for e in entries} == {"Floor", "Balcony", "VIP"}


def test_modified_since_is_inclusive_and_takes_an_unencoded_plus(start):
    emu = start("ticketing", tickets=20, seed=1)
    h = {**V, "X-API-Key": emu.credentials["api_key"]}
    url = f"{emu.base_url}/events/{emu.credentials['event']}/tickets"
    entries = HTTP.get(url, headers=h, params={"records": 100}).json()["entries"]
    since = entries[10]["issued"]
    got = HTTP.get(url, headers=h, params={"modified_since": since, "records": 100}).json()
    assert got["entries"][0]["serial"] == entries[10]["serial"]
    raw = HTTP.get(f"{url}?records=100&modified_since={since}", headers=h).json()  # '+' as is
    assert raw == got
    assert HTTP.get(url, headers=h, params={"modified_since": "2100-01-01T00:00:00+00:00"}
                     ).json()["entries"] == []
    assert HTTP.get(url, headers=h, params={"modified_since": "soon"}).status_code == 400
    cancelled = emu.state.cancel(entries[0]["serial"])
    moved = emu.state.rezone(entries[1]["serial"], "VIP")
    new = emu.state.add(1)
    last = HTTP.get(url, headers=h, params={"records": 100}).json()["entries"]
    assert [e["serial"] for e in last[-3:]] == [cancelled["serial"], moved["serial"],
                                               new[0]["serial"]]
    assert (last[-3]["status"], last[-2]["section"]["name"]) == ("Void", "VIP")


def test_admissions_answer_only_the_admitted_subset(start):
    emu = start("ticketing", tickets=60, seed=4)
    gate_token = exchange(emu)
    gate = {**V, "X-API-Key": gate_token["key"]}
    ev = emu.credentials["event"]
    mine = [t for t in emu.state.tickets if t["section"]["self"] in gate_token["sections"]]
    ok = [t["serial"] for t in mine if t["status"] == "Issued"]
    void = emu.state.cancel(ok.pop())["serial"]
    other = next(t["serial"] for t in emu.state.tickets
                 if t["section"]["self"] not in gate_token["sections"])
    url = f"{emu.base_url}/events/{ev}/admissions"
    body = {"redeemer": "gate-3", "device": "pi-3", "serials": [ok[0], other, void, ok[1],
                                                                "NOSUCH-000000000000"]}
    r = HTTP.post(url, headers=gate, json=body)
    assert r.status_code == 201
    admitted = r.json()
    assert [a["ticket"].rsplit("/", 1)[1] for a in admitted] == [ok[0], ok[1]]
    assert set(admitted[0]) == {"redeemer", "device", "ticket", "patron", "section", "admitted"}
    assert admitted[0]["redeemer"] == "gate-3" and admitted[0]["section"] in gate_token[
        "sections"]
    again = HTTP.post(url, headers=gate, json={**body, "serials": [ok[0]]})
    assert again.status_code == 400 and "admitted" in again.json()["error"]
    assert HTTP.post(url, headers=gate, json={"serials": [ok[2]]}).status_code == 400
    redeemed = next(t for t in emu.state.tickets if t["serial"] == ok[0])["redeemed"]
    assert redeemed != "N/A"
    ledger = emu.records.all("admission")
    assert [(x["serial"], x["admitted"]) for x in ledger] == [
        (ok[0], True), (other, False), (void, False), (ok[1], True),
        ("NOSUCH-000000000000", False), (ok[0], False)]
    assert emu.records.count("admission", admitted=True) == 2
    admin_key = {**V, "X-API-Key": emu.credentials["api_key"]}
    r = HTTP.post(url, headers=admin_key, json={"redeemer": "office", "serials": [other]})
    assert r.status_code == 201  # the integration key may admit any section
    other_ev = f"{emu.base_url}/events/{emu.credentials['other_event']}/admissions"
    assert HTTP.post(other_ev, headers=gate, json=body).status_code == 403
    listed = HTTP.get(url, headers=gate, params={"device": "pi-3", "ticket": ok[1]}).json()
    assert listed["total"] == 1 and listed["entries"][0]["ticket"].endswith(ok[1])
    assert HTTP.get(url, headers=gate, params={"device": "pi-9"}).json()["total"] == 0


def test_edits_between_pages_and_a_clock_offset(start):
    emu = start("ticketing", tickets=20, seed=2, edits_per_page=1, clock_offset=-3600)
    h = integration(emu)
    url = f"{emu.base_url}/events/{emu.credentials['event']}/tickets"
    first = HTTP.get(url, headers=h, params={"records": 5})
    oldest = first.json()["entries"][0]["serial"]
    second = HTTP.get(url, headers=h, params={"records": 5}).json()["entries"]
    assert oldest not in [e["serial"] for e in second]  # edited: moved to the end
    date = email.utils.parsedate_to_datetime(first.headers["Date"]).timestamp()
    assert abs(date - (time.time() - 3600)) < 60
