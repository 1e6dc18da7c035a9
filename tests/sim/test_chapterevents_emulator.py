"""The chapter-event emulator: validate_ticket's password, bodies and times_used before use."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from turnstiled.sim import ChapterEventsEmulator, start_emulator

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request

GONE = {"times_used": -1, "status": "Ticket does not exist"}


@pytest.fixture
def emu():
    with start_emulator("chapterevents", tickets=40, seed=4) as e:
        yield e


def validate(emu, **body) -> httpx.Response:
    return HTTP.put(f"{emu.base_url}/validate_ticket/", json=body, timeout=10)


def paid(emu) -> str:
    return next(t["external_id"] for t in emu.state.tickets if t["status"] == "PAID")


def test_base_url_is_the_root_and_credentials_the_password(emu):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.base_url)
    assert set(emu.credentials) == {"password"}


def test_times_used_is_the_count_before_this_call(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    assert validate(emu, external_id=ext, password=pw, use_ticket=False).json()[
        "times_used"] == 0  # a peek uses nothing
    first = validate(emu, external_id=ext, password=pw, use_ticket=True)
    assert first.status_code == 200
    assert first.json() == {"external_id": ext, "times_used": 0,
                            "chapter_event": first.json()["chapter_event"], "status": "PAID"}
    assert validate(emu, external_id=ext, password=pw, use_ticket=True).json()[
        "times_used"] == 1
    assert validate(emu, external_id=ext, password=pw, use_ticket=False).json()[
        "times_used"] == 2
    assert [v["times_used"] for v in emu.records.all("validation", external_id=ext)] == \
        [0, 0, 1, 2]
    assert emu.state.get(ext)["times_used"] == 2


@pytest.mark.parametrize("body", [
    {}, {"external_id": "ABCDEF"}, {"external_id": "ABCDEF", "password": "x"},
    {"password": "x", "use_ticket": True}, {"external_id": "ABCDEF", "use_ticket": True},
    {"external_id": "ABCDEF", "password": "x", "use_ticket": "maybe"},
    {"external_id": "", "password": "x", "use_ticket": True}])
def test_incomplete_requests_are_invalid_request_data(emu, body):
    r = validate(emu, **body)
    assert (r.status_code, r.json()) == (400, "InvalidRequestData")


def test_wrong_password_then_unknown_ticket(emu):
    r = validate(emu, external_id=paid(emu), password="guess", use_ticket=True)
    assert (r.status_code, r.json()) == (401, "Incorrect password")
    r = validate(emu, external_id="NOSUCH", password="guess", use_ticket=True)
    assert r.status_code == 401  # the password is checked before the ticket
    r = validate(emu, external_id="NOSUCH", password=emu.credentials["password"],
                 use_ticket=True)
    assert (r.status_code, r.json()) == (404, GONE)
    assert emu.records.all("validation")[-1]["times_used"] == -1
    assert not any(v["use_ticket"] for v in emu.records.all("validation") if v["status"])


def test_django_style_form_and_boolean_strings_are_accepted(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    r = HTTP.put(f"{emu.base_url}/validate_ticket/",
                  data={"external_id": ext, "password": pw, "use_ticket": "true"})
    assert r.status_code == 200 and r.json()["times_used"] == 0
    assert validate(emu, external_id=ext, password=pw, use_ticket="0").json()[
        "times_used"] == 1
    assert validate(emu, external_id=ext, password=pw, use_ticket=1).json()["times_used"] == 1
    assert HTTP.get(f"{emu.base_url}/validate_ticket/").status_code == 405


def test_seeded_tickets(start):
    emu = start("chapterevents", tickets=400, seed=3)
    tickets = emu.state.tickets
    assert all(re.fullmatch(r"[A-Z]{6}", t["external_id"]) for t in tickets)
    assert len({t["external_id"] for t in tickets}) == 400
    statuses = {t["status"] for t in tickets}
    assert statuses == {"PAID", "RESERVED", "FAILED_EXPIRED_RESERVATION", "FAILED_ADMIN",
                        "FAILED_OUT_OF_IDS"}
    assert {t["chapter_event"] for t in tickets} == {"Fysikalen Dag 1", "Fysikalen Dag 2"}
    assert {t["times_used"] for t in tickets} == {0}
    extended = start("chapterevents", tickets=400, seed=3, extended_statuses=True)
    assert {"FORM_SUBMITTED", "CONFIRMED"} <= {t["status"] for t in extended.state.tickets}


def test_the_event_list_shows_shows_still_on_sale(emu):
    body = HTTP.get(f"{emu.base_url}/get_chapterevents/").json()
    assert set(body) == {"chapter_events", "ticket_types"}
    shows = body["chapter_events"]
    assert [s["id"] for s in shows] == [1, 2]  # the third show's sales stopped long ago
    assert set(shows[0]) == {"id", "title", "description", "event_at", "max_tickets_per_payment",
                             "sales_stop_at", "ticket_types", "tickets_left"}
    alive = sum(1 for t in emu.state.tickets if t["chapter_event"] == shows[0]["title"]
                and t["status"] in ("PAID", "RESERVED"))
    assert shows[0]["tickets_left"] == 400 - alive
    assert shows[0]["sales_stop_at"] < shows[0]["event_at"]
    assert [t["id"] for t in body["ticket_types"]] == [1, 2]
    assert body["ticket_types"][0]["price"] == "199.99"


def test_sales_stop_by_the_clouds_clock(start):
    # Shows placed around the gate's now; the cloud's clock runs 10.5 days ahead, past the
    # first show's sales stop (10 days less half an hour), not the second's (11 days).
    emu = start("chapterevents", tickets=5, seed=1, now=time.time(), clock_offset=10.5 * 86400)
    shows = HTTP.get(f"{emu.base_url}/get_chapterevents/").json()["chapter_events"]
    assert [s["id"] for s in shows] == [2]


def test_reserve_and_pay(emu):
    browser = httpx.Client(base_url=emu.base_url, timeout=10)  # keeps the session cookie
    r = browser.post("/reserve_ticket/", json={
        "chapter_event": "2", "tickets": [{"ticket_type": "1", "count": 2},
                                          {"ticket_type": 2, "count": 1}]})
    assert r.status_code == 201 and r.content == b""
    assert "HttpOnly" in r.headers["set-cookie"] and browser.cookies["sessionid"]
    made = emu.records.all("reservation")[0]["external_ids"]
    assert len(made) == 3
    pw = emu.credentials["password"]
    assert validate(emu, external_id=made[0], password=pw, use_ticket=False).json()[
        "status"] == "RESERVED"
    pay = browser.post("/start_payment/", json={"email_address": "a@b.se"})
    assert pay.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", pay.json())
    assert emu.records.all("payment")[0]["external_ids"] == made
    assert browser.post("/start_payment/", json={"email_address": "nope"}).status_code == 400
    browser.close()
    stranger = httpx.Client(base_url=emu.base_url, timeout=10)  # no session cookie
    assert stranger.post("/start_payment/", json={"email_address": "a@b.se"}).status_code == 403
    too_many = {"chapter_event": 1, "tickets": [{"ticket_type": 1, "count": 9}]}
    assert stranger.post("/reserve_ticket/", json=too_many).status_code == 403
    for body, status in (({"chapter_event": 3, "tickets": [{"ticket_type": 1, "count": 1}]},
                          404), ({"chapter_event": 9, "tickets": [{"ticket_type": 1,
                                                                    "count": 1}]}, 404),
                         ({"chapter_event": 1, "tickets": [{"ticket_type": 1, "count": 0}]},
                          400), ({"chapter_event": 1}, 400)):
        assert stranger.post("/reserve_ticket/", json=body).status_code == status
    stranger.close()


def test_state_changes_show_at_the_next_validation(emu, admin):
    ext, pw = paid(emu), emu.credentials["password"]
    emu.state.rezone(ext, 2)
    emu.state.cancel(ext)
    got = validate(emu, external_id=ext, password=pw, use_ticket=False).json()
    assert (got["status"], got["chapter_event"]) == ("FAILED_ADMIN", "Fysikalen Dag 2")
    other = next(t["external_id"] for t in emu.state.tickets
                 if t["status"] == "PAID" and t["external_id"] != ext)
    used = admin(emu, "POST", "tickets", json={"action": "use", "external_id": other})
    assert used.json()["times_used"] == 1  # used at another door
    assert validate(emu, external_id=other, password=pw, use_ticket=True).json()[
        "times_used"] == 1
    new = admin(emu, "POST", "tickets", json={"action": "add", "count": 1,
                                              "chapter_event": 2}).json()[0]
    assert (new["status"], new["chapter_event"], new["times_used"]) == (
        "PAID", "Fysikalen Dag 2", 0)
    with pytest.raises(ValueError, match="chapter event"):
        emu.state.rezone(ext, 7)
    assert isinstance(emu, ChapterEventsEmulator)


# -- the real server's quirks (Django routing, Django REST parsing) ------------
def test_chapter_event_is_the_title_not_the_id(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    got = validate(emu, external_id=ext, password=pw, use_ticket=False).json()
    assert got["chapter_event"] in ("Fysikalen Dag 1", "Fysikalen Dag 2")
    assert emu.tickets[ext]["chapter_event"] in (1, 2)  # kept as the id inside


def test_unknown_path_is_an_html_page_and_a_missing_slash_a_redirect(emu):
    r = HTTP.put(f"{emu.base_url}/no_such_route/", json={})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert b"<h1>Not Found</h1>" in r.content
    r = HTTP.put(f"{emu.base_url}/validate_ticket", json={})
    assert r.status_code == 301 and r.headers["location"] == "/validate_ticket/"
    assert r.content == b""
    r = HTTP.get(f"{emu.base_url}/get_chapterevents?format=json")
    assert (r.status_code, r.headers["location"]) == (301, "/get_chapterevents/?format=json")
    assert not emu.records.all("validation")  # nothing reached the view


def test_wrong_method_is_405_with_allow(emu):
    r = HTTP.get(f"{emu.base_url}/validate_ticket/")
    assert (r.status_code, r.headers["allow"]) == (405, "PUT, OPTIONS")
    assert r.json() == {"detail": 'Method "GET" not allowed.'}
    r = HTTP.post(f"{emu.base_url}/get_chapterevents/")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, OPTIONS")


def test_whitespace_around_id_and_password_is_trimmed(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    got = validate(emu, external_id=f"  {ext}\n", password=f" {pw} ", use_ticket=False)
    assert got.status_code == 200 and got.json()["external_id"] == ext
    assert validate(emu, external_id=ext.lower(), password=pw,
                    use_ticket=False).status_code == 404  # exact and case-sensitive
    assert validate(emu, external_id="   ", password=pw, use_ticket=False).json() == \
        "InvalidRequestData"


def test_a_form_without_use_ticket_counts_as_false_json_does_not(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    r = HTTP.put(f"{emu.base_url}/validate_ticket/", data={"external_id": ext, "password": pw})
    assert r.status_code == 200 and r.json()["times_used"] == 0
    assert emu.state.get(ext)["times_used"] == 0  # nothing used
    r = validate(emu, external_id=ext, password=pw)
    assert (r.status_code, r.json()) == (400, "InvalidRequestData")


def test_other_content_types_get_415_and_bad_json_a_parse_error(emu):
    ext, pw = paid(emu), emu.credentials["password"]
    body = f'{{"external_id": "{ext}", "password": "{pw}", "use_ticket": false}}'
    r = HTTP.put(f"{emu.base_url}/validate_ticket/", content=body,
                 headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json() == {"detail": 'Unsupported media type "text/plain" in request.'}
    r = HTTP.put(f"{emu.base_url}/validate_ticket/", content=body[:-3],
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"].startswith("JSON parse error - ")
    assert not emu.records.all("validation")


def test_use_counts_whatever_the_payment_status(emu):
    unpaid = next(t["external_id"] for t in emu.state.tickets if t["status"] == "RESERVED")
    pw = emu.credentials["password"]
    assert validate(emu, external_id=unpaid, password=pw, use_ticket=True).json()[
        "times_used"] == 0
    assert emu.state.get(unpaid)["times_used"] == 1


def test_the_nonatomic_increment_lets_parallel_uses_all_read_zero(start):
    emu = start("chapterevents", tickets=5, seed=4, nonatomic_use_s=0.5)
    ext, pw = paid(emu), emu.credentials["password"]
    body = {"external_id": ext, "password": pw, "use_ticket": True}
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: HTTP.put(f"{emu.base_url}/validate_ticket/",
                                                   json=body, timeout=10).json(), range(3)))
    reads = [a["times_used"] for a in answers]
    final = emu.state.get(ext)["times_used"]
    # Whatever the timing: the count saved last is one more than what its use read,
    # and uses are lost exactly when two of them read the same count.
    assert final - 1 in reads
    assert (final == 3) == (len(set(reads)) == 3)
    assert len(emu.records.all("validation", external_id=ext)) == 3


def test_a_deployment_prefix_moves_every_route(start):
    emu = start("chapterevents", tickets=5, seed=4, prefix="/bittan/api/")
    assert emu.base_url.endswith("/bittan/api")
    ext, pw = paid(emu), emu.credentials["password"]
    assert validate(emu, external_id=ext, password=pw, use_ticket=False).status_code == 200
    root = emu.base_url.removesuffix("/bittan/api")
    r = HTTP.put(f"{root}/validate_ticket/", json={"external_id": ext, "password": pw,
                                                   "use_ticket": False})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_command_line_options_reach_the_emulator():
    from turnstiled.sim.__main__ import parser
    from turnstiled.sim.__main__ import start as start_cli
    emus = start_cli(parser().parse_args(["chapterevents", "--tickets", "3",
                                          "--chapterevents-prefix", "bittan",
                                          "--nonatomic-use", "0.1"]))
    try:
        assert emus[0].base_url.endswith("/bittan") and emus[0].nonatomic_use_s == 0.1
    finally:
        for e in emus:
            e.stop()
