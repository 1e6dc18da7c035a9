"""Every fault mode of every emulator, as an httpx client with a timeout sees it."""

from __future__ import annotations

import time

import httpx
import pytest

from turnstiled.sim import start_emulator

# One authenticated GET per emulator: (path below base_url, headers, params).
PROBES = {
    "vivenu": lambda e: ("/events", {"token": e.credentials["token"]}, {}),
    "octopus": lambda e: (f"/Location/{e.credentials['location_id']}/services",
                          {"Authorization": f"Bearer {e.credentials['api_key']}"}, {}),
    "crowdmanager": lambda e: ("/tickets", {"Authorization": f"Basic {e.credentials['token']}"},
                               {"date_init": int(time.time()) - 86400 * 30,
                                "date_end": int(time.time())}),
    "ticketing": lambda e: (f"/events/{e.credentials['event']}/tickets",
                            {"X-API-Key": e.credentials["api_key"],
                             "X-Client-Version": "3.0.0"}, {}),
    "chapterevents": lambda e: ("/get_chapterevents/", {}, {}),
}


@pytest.fixture(scope="module", params=list(PROBES))
def emu(request):
    e = start_emulator(request.param, tickets=30, seed=2)
    yield e
    e.stop()


def probe(e, timeout=1.0):
    path, headers, params = PROBES[e.name](e)
    return httpx.get(e.base_url + path, headers=headers, params=params, timeout=timeout)


def test_faults(emu):
    route = "*"
    assert probe(emu).status_code == 200
    for spec, status in (("500x1", 500), ("503x1", 503)):
        emu.add_fault(route, spec)
        assert probe(emu).status_code == status
    emu.add_fault(route, "429:9x1")
    r = probe(emu)
    assert r.status_code == 429 and r.headers["Retry-After"] == "9"
    emu.add_fault(route, "html200x1")
    r = probe(emu)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    emu.add_fault(route, "html502x1")
    assert probe(emu).status_code == 502
    emu.add_fault(route, "truncatex1")
    r = probe(emu)
    with pytest.raises(ValueError):
        r.json()
    emu.add_fault(route, "resetx1")
    with pytest.raises(httpx.TransportError):
        probe(emu).json()
    emu.add_fault(route, "hang:3x1")
    with pytest.raises(httpx.TimeoutException):
        probe(emu, timeout=0.3)
    emu.add_fault(route, "latency:150x1")
    t0 = time.monotonic()
    assert probe(emu).status_code == 200
    assert time.monotonic() - t0 >= 0.15
    if emu.name != "chapterevents":  # its list needs no credentials
        emu.add_fault(route, "authx1")
        assert probe(emu).status_code in (401, 403)
    assert probe(emu).status_code == 200  # every one-shot fault is spent


def test_probability_faults_are_seeded_and_admin_controllable(emu):
    emu.clear_faults()
    admin = emu.base_url.split("/", 3)[:3]
    admin_url = "/".join(admin) + "/__admin/faults"
    assert httpx.post(admin_url, json={"route": "*", "fault": "500%50"}).status_code == 200
    codes = [probe(emu).status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35
    assert httpx.delete(admin_url).status_code == 200
    assert probe(emu).status_code == 200
    bad = httpx.post(admin_url, json={"route": "*", "fault": "explode"})
    assert bad.status_code == 400
