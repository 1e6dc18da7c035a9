"""Every fault mode of every emulator as an httpx client with a timeout sees it; the syntax."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstiled.sim import EMULATORS, Fault, FaultSpecError, start_emulator
from turnstiled.sim.faults import parse_rule

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request


def _window() -> dict[str, int]:
    return {"date_init": int(time.time()) - 30 * 86400, "date_end": int(time.time()) + 60}


def _paid(e) -> str:
    return next(t["external_id"] for t in e.state.tickets if t["status"] == "PAID")


# One authenticated request per emulator: (method, path below base_url, headers, params, json).
PROBES = {
    "vivenu": lambda e: ("GET", "/events", {"token": e.credentials["token"]}, {}, None),
    "octopus": lambda e: ("GET", f"/Location/{e.credentials['location_id']}/services",
                          {"Authorization": f"Bearer {e.credentials['api_key']}"}, {}, None),
    "crowdmanager": lambda e: ("GET", "/tickets",
                               {"Authorization": f"Basic {e.credentials['token']}"},
                               _window(), None),
    "ticketing": lambda e: ("GET", f"/events/{e.credentials['event']}/tickets",
                            {"X-API-Key": e.credentials["api_key"], "X-Client-Version": "3.0.0"},
                            {}, None),
    "chapterevents": lambda e: ("PUT", "/validate_ticket/", {}, {}, {
        "external_id": _paid(e), "password": e.credentials["password"], "use_ticket": False}),
}
ERROR_BODIES = {
    "vivenu": lambda s: {"statusCode": s, "error": {500: "Internal Server Error",
                                                   503: "Service Unavailable"}[s],
                         "message": {500: "Internal Server Error",
                                     503: "Service Unavailable"}[s]},
    "octopus": lambda s: {"error": f"HTTP {s}", "message": "The request could not be processed"},
    "crowdmanager": lambda s: {"error": f"HTTP {s}", "message": "The server could not answer"},
    "ticketing": lambda s: {"message": "There was a server error while excuting this request. "
                                       "Please see system logs for details."},
    "chapterevents": lambda s: "ServerError",
}
BAD_CREDENTIALS = {"vivenu": 401, "octopus": 401, "crowdmanager": 401, "ticketing": 403,
                   "chapterevents": 401}


@pytest.fixture(scope="module", params=list(EMULATORS))
def emu(request):
    with start_emulator(request.param, tickets=30, seed=2) as e:
        yield e


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    yield
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").faults.clear()


def probe(e, timeout: float = 5.0) -> httpx.Response:
    method, path, headers, params, body = PROBES[e.name](e)
    return HTTP.request(method, e.base_url + path, headers=headers, params=params, json=body,
                         timeout=timeout)


def route(e) -> str:
    method, path, *_ = PROBES[e.name](e)
    return f"{method} {e.base_path}{path}"


def test_the_probe_works_without_faults(emu):
    assert probe(emu).status_code == 200


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_carry_the_vendors_error_body(emu, status):
    emu.faults.add(route(emu), f"{status}x1")
    r = probe(emu)
    assert r.status_code == status
    assert r.json() == ERROR_BODIES[emu.name](status)
    assert probe(emu).status_code == 200  # one-shot


def test_any_status_can_be_injected(emu):
    emu.faults.add(route(emu), "504x1,502x1")
    assert [probe(emu).status_code for _ in range(3)] == [504, 502, 200]


def test_429_carries_retry_after(emu):
    emu.faults.add(route(emu), "429:7x1")
    r = probe(emu)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    emu.faults.add(route(emu), "429x1")
    assert probe(emu).headers["Retry-After"] == "1"


def test_latency_trips_a_shorter_timeout_and_passes_a_longer_one(emu):
    emu.faults.add(route(emu), "latency:800x1")
    with pytest.raises(httpx.ReadTimeout):
        probe(emu, timeout=0.1)
    emu.faults.add(route(emu), "latency:30x1")
    assert probe(emu, timeout=10).status_code == 200


def test_hang_is_a_read_timeout(emu):
    emu.faults.add(route(emu), "hang:20x1")
    with pytest.raises(httpx.ReadTimeout):
        probe(emu, timeout=0.2)
    assert emu.records.requests()[-1]["fault"] == "hang"
    assert emu.records.requests()[-1]["status"] is None
    assert probe(emu).status_code == 200


def test_stall_times_out_in_the_middle_of_the_body(emu):
    emu.faults.add(route(emu), "stall:20x1")
    with pytest.raises(httpx.ReadTimeout):
        probe(emu, timeout=0.3)
    method, path, headers, params, body = PROBES[emu.name](emu)
    emu.faults.add(route(emu), "stall:20x1")
    with HTTP.stream(method, emu.base_url + path, headers=headers, params=params, json=body,
                     timeout=1.0) as r:
        assert r.status_code == 200  # the headers came; the body never finishes
        with pytest.raises(httpx.ReadTimeout):
            r.read()


def test_reset_mid_body_is_a_transport_error(emu):
    for spec in ("resetx1", "reset!x1"):
        emu.faults.add(route(emu), spec)
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            probe(emu)
    assert probe(emu).status_code == 200


def test_truncated_json_is_a_complete_response_with_half_a_document(emu):
    emu.faults.add(route(emu), "truncatex1")
    r = probe(emu)
    assert r.status_code == 200 and len(r.content) == int(r.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        r.json()


@pytest.mark.parametrize("kind,status", [("html200", 200), ("html502", 502)])
def test_an_html_error_page(emu, kind, status):
    emu.faults.add(route(emu), f"{kind}x1")
    r = probe(emu)
    assert r.status_code == status and r.headers["Content-Type"].startswith("text/html")
    assert r.text.lstrip().startswith("<!DOCTYPE html>")
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_auth_answers_as_if_the_credentials_were_wrong(emu):
    emu.faults.add(route(emu), "authx1")
    r = probe(emu)
    assert r.status_code == BAD_CREDENTIALS[emu.name]
    assert probe(emu).status_code == 200


# -- how often a fault fires ---------------------------------------------------
@pytest.fixture
def vivenu(start):
    return start("vivenu", tickets=10, seed=3)


def get_events(e, timeout: float = 5.0) -> int:
    return HTTP.get(f"{e.base_url}/events", headers={"token": e.credentials["token"]},
                     timeout=timeout).status_code


def test_counts_delays_and_always(vivenu, admin):
    vivenu.faults.add("/api/accessusers/events=503x3")
    assert [get_events(vivenu) for _ in range(4)] == [503, 503, 503, 200]
    vivenu.faults.add("/events", "500x1@2")  # below the base path; after two good answers
    assert [get_events(vivenu) for _ in range(4)] == [200, 200, 500, 200]
    always = vivenu.faults.add("*", "503")
    assert [get_events(vivenu) for _ in range(5)] == [503] * 5
    assert always.fired == 5 and not always.exhausted
    listed = admin(vivenu, "GET", "faults").json()
    assert [(f["spec"], f["fired"], f["exhausted"]) for f in listed] == [
        ("503x3", 3, True), ("500x1", 1, True), ("503", 5, False)]
    assert admin(vivenu, "DELETE", "faults", params={"route": "*"}).json() == {"cleared": 1}
    assert get_events(vivenu) == 200


def test_probability_is_seeded_so_a_run_repeats(start):
    runs = []
    for _ in range(2):
        e = start("vivenu", tickets=5, seed=11, faults=["GET /api/accessusers/events=500%40"])
        runs.append([get_events(e) for _ in range(40)])
    assert runs[0] == runs[1]
    assert 0 < runs[0].count(500) < 40
    other = start("vivenu", tickets=5, seed=12, faults=["*=500%40"])
    assert [get_events(other) for _ in range(40)] != runs[0]


def test_routes_match_method_and_path(vivenu):
    vivenu.faults.add("POST /api/accessusers/scans/*=503")
    vivenu.faults.add("GET /api/accessusers/tickets/v2/*=500")
    assert get_events(vivenu) == 200
    ev = vivenu.credentials["event_ids"].split(",")[0]
    h = {"token": vivenu.credentials["token"]}
    assert HTTP.get(f"{vivenu.base_url}/tickets/v2/{ev}", headers=h).status_code == 500
    assert HTTP.post(f"{vivenu.base_url}/scans/{ev}", headers=h, json=[]).status_code == 503
    assert HTTP.get(f"{vivenu.base_url}/tickets/NOSUCH123", headers=h).status_code == 404


def test_latency_adds_to_another_fault_on_the_same_request(vivenu):
    vivenu.faults.add("/events=latency:500x1,503x1")
    with pytest.raises(httpx.ReadTimeout):
        get_events(vivenu, timeout=0.1)  # the 503 comes only after the latency
    assert [f.fired for f in vivenu.faults] == [1, 1]
    assert get_events(vivenu) == 200


def test_faults_given_at_start_are_active_from_the_first_request(start):
    e = start("crowdmanager", tickets=5, faults=["GET /api/tickets=429:3x1", "*=503x1@1"])
    h = {"Authorization": f"Basic {e.credentials['token']}"}
    codes = [HTTP.get(f"{e.base_url}/tickets", headers=h, params=_window()).status_code
             for _ in range(3)]
    assert codes == [429, 503, 200]


# -- whether the cloud took the request -----------------------------------------
@pytest.mark.parametrize("spec,recorded,client_error", [
    ("503x1", 0, None), ("503!x1", 1, None), ("html502x1", 0, None),
    ("resetx1", 0, httpx.TransportError), ("reset!x1", 1, httpx.TransportError),
    ("hang:20x1", 0, httpx.ReadTimeout), ("hang!:20x1", 1, httpx.ReadTimeout),
    ("truncatex1", 1, json.JSONDecodeError), ("stall:20x1", 1, httpx.ReadTimeout)])
def test_faults_before_or_after_the_cloud_took_the_scans(vivenu, spec, recorded,
                                                         client_error):
    doc = next(iter(vivenu.tickets.values()))
    scan = {"barcode": doc["barcode"], "scanned_at": "2026-11-24T10:00:00.000Z", "type": "OK",
            "direction": "IN"}
    vivenu.faults.add(f"POST /api/accessusers/scans/*={spec}")

    wait = 0.5 if client_error is httpx.ReadTimeout else 10.0  # short only to see a timeout

    def upload(wait: float = 10.0) -> int:
        r = HTTP.post(f"{vivenu.base_url}/scans/{doc['eventId']}", json=[scan], timeout=wait,
                      headers={"token": vivenu.credentials["token"]})
        if r.status_code == 200:
            r.json()
        return r.status_code

    if client_error is None:
        assert upload() >= 500
    else:
        with pytest.raises(client_error):
            upload(wait)
    assert vivenu.records.count("scan") == recorded
    assert upload() == 200  # the retry
    assert vivenu.records.count("scan", barcode=doc["barcode"]) == recorded + 1


def test_faults_over_the_admin_api(vivenu, admin):
    assert admin(vivenu, "POST", "faults", json={"rule": "/events=500x1"}).status_code == 200
    added = admin(vivenu, "POST", "faults", json={"route": "GET /api/accessusers/me",
                                                  "fault": "429:4x2"}).json()
    assert (added["kind"], added["arg"], added["times"]) == ("429", 4, 2)
    assert get_events(vivenu) == 500
    for bad in ({"rule": "*=explode"}, {"route": "*", "fault": "500x"},
                {"route": "*", "fault": "latency!"}, {"rule": "*=500%150"}):
        r = admin(vivenu, "POST", "faults", json=bad)
        assert r.status_code == 400 and "bad fault" in r.json()["error"]
    assert len(admin(vivenu, "GET", "faults").json()) == 2
    assert admin(vivenu, "DELETE", "faults").json() == {"cleared": 2}
    assert admin(vivenu, "GET", "faults").json() == []
    info = admin(vivenu, "GET").json()
    assert (info["name"], info["base_url"], info["faults"]) == ("vivenu", vivenu.base_url, 0)
    assert [r["fault"] for r in admin(vivenu, "GET", "requests").json()] == ["500"]


# -- the syntax ------------------------------------------------------------------
@pytest.mark.parametrize("spec,fields", [
    ("500", ("500", None, None, None, 0, False)),
    ("429:5x2", ("429", 5.0, 2, None, 0, False)),
    ("429", ("429", 1.0, None, None, 0, False)),
    ("latency:150%25", ("latency", 150.0, None, 0.25, 0, False)),
    ("hang!:3x1@4", ("hang", 3.0, 1, None, 4, True)),
    ("reset%12.5", ("reset", None, None, 0.125, 0, False)),
    ("html502x1", ("html502", None, 1, None, 0, False)),
    ("stallx3%50@1", ("stall", 30.0, 3, 0.5, 1, False))])
def test_fault_specs_parse(spec, fields):
    f = Fault.parse("*", spec)
    assert (f.kind, f.arg, f.times, f.probability, f.after, f.applied) == fields
    assert Fault.parse("*", f.spec) == f


@pytest.mark.parametrize("spec", ["", "teapot", "200", "600", "500x", "x3", "500%", "hang:",
                                  "latency!", "auth!x1", "truncate!", "500@", "500:1:2"])
def test_bad_fault_specs_say_what_is_wrong(spec):
    with pytest.raises(FaultSpecError, match="bad fault"):
        Fault.parse("*", spec)
    assert issubclass(FaultSpecError, ValueError)


def test_rules_split_route_and_specs():
    faults = parse_rule("POST /api/accessusers/scans/*=latency:100,503x2")
    assert [(f.route, f.spec) for f in faults] == [("POST /api/accessusers/scans/*",
                                                    "latency:100"),
                                                   ("POST /api/accessusers/scans/*", "503x2")]
    assert parse_rule("500x1")[0].route == "*"  # a bare spec: every route
    assert Fault.parse("/events", "500").matches("GET", "/api/accessusers/events",
                                                  "/api/accessusers")
    assert not Fault.parse("POST /events", "500").matches("GET", "/api/accessusers/events",
                                                          "/api/accessusers")


@given(kind=st.sampled_from(["500", "503", "418", "429", "latency", "hang", "stall", "reset",
                             "truncate", "html200", "html502", "auth"]),
       arg=st.one_of(st.none(), st.integers(0, 10_000)), times=st.one_of(st.none(),
                                                                          st.integers(0, 99)),
       percent=st.one_of(st.none(), st.integers(0, 100)), after=st.integers(0, 50),
       applied=st.booleans())
def test_any_spec_written_back_parses_to_the_same_fault(kind, arg, times, percent, after,
                                                        applied):
    applied = applied and kind not in ("latency", "auth", "stall", "truncate")
    spec = (kind + ("!" if applied else "") + (f":{arg}" if arg is not None else "")
            + (f"x{times}" if times is not None else "")
            + (f"%{percent}" if percent is not None else "") + (f"@{after}" if after else ""))
    f = Fault.parse("GET /x/*", spec)
    assert (f.kind, f.applied, f.times, f.after) == (kind, applied, times, after)
    assert f.probability == (None if percent is None else percent / 100)
    assert Fault.parse("GET /x/*", f.spec) == f
