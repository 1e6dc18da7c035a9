"""Chapter-event: check, let the gate decide, then use from the journal (against the emulator).

Every test reads the emulator's own ``times_used`` before and after, so
each one proves what the gate did upstream, not only what it decided.
"""

from __future__ import annotations

import json
import queue

import pytest

from tests.conftest import make_config, wait_until
from turnstiled import cli, rules
from turnstiled import config as config_mod
from turnstiled.backends.chapterevents import ChapterEventsBackend, ChapterEventsSettings
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.drain import Drainer
from turnstiled.journal import Journal
from turnstiled.online import OnlineChecker
from turnstiled.pipeline import ScanPipeline
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator

ROUTE = "PUT /validate_ticket/"


@pytest.fixture
def ce():
    with start_emulator("chapterevents", tickets=30, seed=8) as e:
        yield e


def backend(e, **kw):
    kw.setdefault("password", Secret(e.credentials["password"]))
    kw.setdefault("base_url", e.base_url)
    return ChapterEventsBackend(ChapterEventsSettings(timeout_s=5.0, **kw))


class Gate:
    """A scan pipeline (no GPIO), its journal and a drain, on one chapter-event backend."""

    def __init__(self, tmp_path, b, **gate):
        self.cfg = make_config(tmp_path, gate={"debounce_s": 0.0, **gate})
        self.backend = b
        self.journal = Journal(self.cfg.paths.journal_db)
        self.cache = Cache(self.cfg.paths.cache_db)
        self.online = OnlineChecker([b])
        self.pipe = ScanPipeline(self.cfg, self.cache, self.journal, None, online=self.online,
                                 uploaders={b.name: b})
        self.drainer = Drainer(self.cfg.paths.journal_db, [b])

    def scan(self, code, direction="in"):
        return self.pipe.handle(code.encode(), f"scanner-{direction}", direction)

    def drain(self):
        return self.drainer.drain_once(self.backend.name)

    def rows(self):
        return list(self.journal.iter_all())

    def close(self):
        self.drainer.close()
        self.online.close()
        self.journal.close()
        self.cache.close()
        self.backend.close()


@pytest.fixture
def gate_at(tmp_path):
    made = []

    def make(b, **gate):
        made.append(Gate(tmp_path / str(len(made)), b, **gate))
        return made[-1]
    yield make
    for g in made:
        g.close()


def code_with(e, status="PAID", event=None):
    return next(t["external_id"] for t in e.state.tickets if t["status"] == status
                and t["times_used"] == 0 and (event is None or t["chapter_event"] == event))


def fresh(e, status="PAID", event="Fysikalen Dag 1"):
    """A new ticket, sold now (its event by title)."""
    return e.state.add(1, chapter_event=event, status=status)[0]["external_id"]


def used(e, code):
    return e.state.get(code)["times_used"]


# -- check, decide, then use ---------------------------------------------------
def test_a_scan_only_asks_and_the_drain_uses_the_granted_admission(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce)
    o = g.scan(code)
    assert o.evaluation.decision.granted and o.evaluation.decision.reason == rules.GRANTED
    assert "payment status PAID, used 0 time(s)" in o.evaluation.decision.detail
    assert used(ce, code) == 0  # the scan path asked with use_ticket false
    assert [v["use_ticket"] for v in ce.records.all("validation")] == [False]
    assert g.rows()[0]["upload"] == "pending" and g.rows()[0]["event"] in (
        "Fysikalen Dag 1", "Fysikalen Dag 2")
    assert g.drain() == 1
    assert g.rows()[0]["upload"] == "confirmed"
    assert used(ce, code) == 1  # registered once, from the journal
    assert [v["use_ticket"] for v in ce.records.all("validation")] == [False, False, True]


def test_a_reserved_ticket_is_denied_unused_then_admitted_once_paid(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce, "RESERVED")
    o = g.scan(code)
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (
        False, rules.INVALID)
    assert "RESERVED" in o.evaluation.decision.detail
    assert g.rows()[0]["upload"] == "local" and g.drain() == 0
    assert used(ce, code) == 0  # not locked out for later
    ce.state.update(code, status="PAID")  # the guest pays at the door
    assert g.scan(code).evaluation.decision.granted
    g.drain()
    assert used(ce, code) == 1
    assert [r["upload"] for r in g.rows()] == ["local", "confirmed"]


def test_the_gates_events_apply_matched_by_title(ce, gate_at):
    g = gate_at(backend(ce), events=["Fysikalen Dag 1"])
    day2, day1 = code_with(ce, event="Fysikalen Dag 2"), code_with(ce, event="Fysikalen Dag 1")
    o = g.scan(day2)
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (
        False, rules.WRONG_EVENT)
    assert "Fysikalen Dag 2" in o.evaluation.decision.detail
    assert g.scan(day1).evaluation.decision.granted
    g.drain()
    assert (used(ce, day2), used(ce, day1)) == (0, 1)


def test_a_repeat_scan_and_a_use_elsewhere_never_raise_the_count(ce, gate_at):
    g = gate_at(backend(ce))
    mine, theirs = code_with(ce), [t for t in ce.state.tickets if t["status"] == "PAID"][1]
    assert g.scan(mine).evaluation.decision.granted
    g.drain()
    again = g.scan(mine).evaluation.decision
    assert (again.granted, again.reason) == (False, rules.ALREADY_INSIDE)
    theirs = theirs["external_id"]
    ce.admin_tickets({"action": "use", "external_id": theirs})  # another door admitted it
    other = g.scan(theirs).evaluation.decision
    assert (other.granted, other.reason) == (False, rules.ALREADY_USED)
    assert "used 1 time(s) upstream" in other.detail
    assert g.drain() == 0
    assert (used(ce, mine), used(ce, theirs)) == (1, 1)


def test_a_debounced_repeat_never_reaches_the_server(ce, tmp_path):
    g = Gate(tmp_path, backend(ce), debounce_s=2.5)
    code = code_with(ce)
    assert g.pipe.handle(code.encode(), "s", "in").evaluation.decision.granted
    assert g.pipe.handle(code.encode(), "s", "in") is None  # the scanner sent it twice
    assert len(ce.received("validation")) == 1
    g.close()


def test_an_exit_scan_never_uses_a_ticket(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce)
    o = g.scan(code, "out")
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (True, rules.EXIT)
    assert g.rows()[0]["upload"] == "local" and g.drain() == 0
    assert used(ce, code) == 0


def test_re_entry_after_an_exit_is_not_registered_again(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce)
    assert g.scan(code).evaluation.decision.granted
    g.drain()
    assert g.scan(code, "out").evaluation.decision.granted
    back = g.scan(code).evaluation.decision
    assert (back.granted, back.detail.split(" (")[0]) == (True, "re-entry")
    assert [r["upload"] for r in g.rows()] == ["confirmed", "local", "local"]
    assert used(ce, code) == 1


# -- deadlines and errors ------------------------------------------------------
def test_a_slow_server_changes_nothing_for_a_denied_scan(ce, gate_at):
    g = gate_at(backend(ce, online_deadline_s=0.2))
    code = code_with(ce)
    ce.add_fault(ROUTE, "latency:1500x1")
    o = g.scan(code)
    assert not o.evaluation.decision.granted  # offline policy "deny"
    assert "chapterevents offline: no answer within 200 ms" in o.evaluation.decision.detail
    assert g.online.health["chapterevents"].offline_since is not None
    assert g.online.alarms() == {}  # slow is offline, not an alarm
    # The abandoned request still reaches the server after the gate denied...
    assert wait_until(lambda: ce.records.all("validation", external_id=code), timeout=15)
    assert used(ce, code) == 0  # ...and changed nothing there
    assert g.rows()[0]["upload"] == "local" and g.drain() == 0


def test_a_wrong_password_denies_with_an_alarm_even_with_admit_and_journal(ce, gate_at):
    g = gate_at(backend(ce, password=Secret("guess"), offline_policy="admit-and-journal"))
    code = code_with(ce)
    o = g.scan(code)
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (
        False, rules.SOURCE_ERROR)
    assert "auth_refused" in o.evaluation.decision.detail
    assert g.online.alarms()["online:chapterevents"].startswith("auth_refused")
    assert g.online.status()["chapterevents"]["last_error"]
    assert g.rows()[0]["upload"] == "local"
    assert used(ce, code) == 0


@pytest.mark.parametrize(("base", "fault"), [
    ("/wrong-prefix", None),      # a wrong base URL: Django's HTML 404 page
    ("", "400x1"),                # the server refused our body
    ("", "html200x1"),            # a captive portal
])
def test_answers_no_working_setup_gives_are_alarms_not_offline(ce, gate_at, base, fault):
    g = gate_at(backend(ce, base_url=ce.base_url + base, offline_policy="admit-and-journal"))
    if fault:
        ce.add_fault(ROUTE, fault)
    o = g.scan("ABCDEF")
    assert (o.evaluation.decision.granted, o.evaluation.decision.reason) == (
        False, rules.SOURCE_ERROR)
    assert g.online.alarms()["online:chapterevents"].startswith("misconfigured")
    assert g.rows()[0]["upload"] == "local"


def test_the_alarm_clears_with_the_next_answer(ce, gate_at):
    g = gate_at(backend(ce))
    ce.add_fault(ROUTE, "authx1")
    assert g.scan(code_with(ce)).evaluation.decision.reason == rules.SOURCE_ERROR
    assert g.online.alarms()
    assert g.scan(code_with(ce)).evaluation.decision.granted
    assert g.online.alarms() == {}
    assert g.online.status()["chapterevents"]["last_answer_at"] is not None


# -- offline admissions --------------------------------------------------------
def test_the_same_offline_code_is_admitted_once(ce, gate_at):
    g = gate_at(backend(ce, offline_policy="admit-and-journal", online_deadline_s=0.3))
    code = code_with(ce)
    ce.add_fault(ROUTE, "503")
    first = g.scan(code).evaluation.decision
    assert first.granted and "offline" in first.detail
    again = g.scan(code).evaluation.decision
    assert (again.granted, again.reason) == (False, rules.ALREADY_INSIDE)
    assert not g.scan("notacode").evaluation.decision.granted  # only ticket-shaped codes
    assert g.scan(code, "out").evaluation.decision.granted
    assert g.scan(code).evaluation.decision.granted  # re-entry after the exit scan
    assert [r["upload"] for r in g.rows()] == ["pending", "local", "local", "local", "local"]
    ce.clear_faults()
    assert g.drain() == 1
    assert used(ce, code) == 1


def test_reconciliation_reports_payment_before_use_count(ce, gate_at):
    g = gate_at(backend(ce, offline_policy="admit-and-journal", online_deadline_s=0.3))
    fine, unpaid, elsewhere = code_with(ce), code_with(ce, "RESERVED"), [
        t["external_id"] for t in ce.state.tickets if t["status"] == "PAID"][1]
    ce.add_fault(ROUTE, "503")
    for code in (fine, unpaid, elsewhere):
        assert g.scan(code).evaluation.decision.granted
    ce.clear_faults()
    ce.admin_tickets({"action": "use", "external_id": unpaid})  # also used: status first
    ce.admin_tickets({"action": "use", "external_id": elsewhere})
    g.drain()
    rows = {r["barcode"]: r for r in g.rows()}
    assert rows[fine]["upload"] == "confirmed"
    assert rows[unpaid]["upload"] == "rejected"
    assert rows[unpaid]["upload_note"].startswith("conflict: payment status RESERVED")
    assert rows[elsewhere]["upload_note"].startswith("conflict: already used 1 time(s)")
    assert "someone else got in" in rows[elsewhere]["upload_note"]
    assert (used(ce, fine), used(ce, unpaid), used(ce, elsewhere)) == (1, 1, 1)


def test_a_use_whose_answer_was_lost_is_not_a_conflict_with_itself(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce)
    assert g.scan(code).evaluation.decision.granted
    ce.add_fault(ROUTE, "reset!x1@1")  # the check passes, the use is applied, the reply lost
    assert g.drain() == 0
    assert used(ce, code) == 1 and g.rows()[0]["upload"] == "pending"
    g.drainer.states["chapterevents"].next_due = 0
    assert g.drain() == 1
    assert g.rows()[0]["upload"] == "confirmed" and used(ce, code) == 1


def test_a_lost_use_after_a_registered_one_comes_back_resent(ce, gate_at):
    g = gate_at(backend(ce))
    first, second = fresh(ce), fresh(ce)
    for code in (first, second):
        assert g.scan(code).evaluation.decision.granted
    ce.add_fault(ROUTE, "reset!x1@3")  # check, use, check pass; the second use's reply is lost
    assert g.drain() == 1
    rows = {r["barcode"]: r for r in g.rows()}
    assert (rows[second]["upload"], rows[second]["resent"]) == ("pending", 1)
    assert used(ce, second) == 1
    g.drainer.states["chapterevents"].next_due = 0
    assert g.drain() == 1
    rows = {r["barcode"]: r for r in g.rows()}
    assert rows[second]["upload"] == "confirmed" and used(ce, second) == 1


def test_a_failed_check_is_not_marked_resent(ce, gate_at):
    g = gate_at(backend(ce))
    assert g.scan(code_with(ce)).evaluation.decision.granted
    ce.add_fault(ROUTE, "reset!x1")  # the check: nothing was used upstream
    assert g.drain() == 0
    assert (g.rows()[0]["upload"], g.rows()[0]["resent"]) == ("pending", 0)


def test_a_row_resent_after_a_crash_is_recognised_as_ours(ce, gate_at):
    g = gate_at(backend(ce))
    code = code_with(ce)
    assert g.scan(code).evaluation.decision.granted
    g.journal.claim("chapterevents", 10)  # the drain took it in flight...
    backend(ce).validate(code, True)  # ...the server used it, and the process died
    fresh = Drainer(g.cfg.paths.journal_db, [backend(ce)])  # the next run
    assert fresh.drain_once("chapterevents") == 1
    row = g.rows()[0]
    assert (row["upload"], row["resent"]) == ("confirmed", 1)
    assert used(ce, code) == 1
    fresh.close()


# -- the daemon, turnstilectl lookup / status / doctor -------------------------
def write_conf(tmp_path, e, password=None, **gate):
    path = tmp_path / "turnstiled.toml"
    events = ", ".join(f'"{x}"' for x in gate.get("events", ()))
    path.write_text(
        f'[gate]\nevents = [{events}]\ndebounce_s = 0.0\n'
        f'[paths]\ndata_dir = "{tmp_path}/data"\ncontrol_socket = "{tmp_path}/ctl.sock"\n'
        '[journal]\nupload_batch_delay_s = 0.0\n'
        f'[sources.chapterevents]\nbase_url = "{e.base_url}"\n'
        f'password = "{password or e.credentials["password"]}"\n')
    return path


def ctl(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, _ = capsys.readouterr()
    return code, out


def test_lookup_asks_the_server_and_says_why_without_using(ce, tmp_path, capsys):
    conf = write_conf(tmp_path, ce, events=["Fysikalen Dag 1"])
    day1, day2 = code_with(ce, event="Fysikalen Dag 1"), code_with(ce, event="Fysikalen Dag 2")
    code, out = ctl(capsys, "--config", conf, "lookup", day1, "--json")
    got = json.loads(out)
    assert code == 0 and got["granted"] and got["online"]["times_used"] == 0
    assert got["ticket"]["event"] == "Fysikalen Dag 1" and got["alarms"] == {}
    code, out = ctl(capsys, "--config", conf, "lookup", day2)
    assert code == 1 and out.startswith("DENY  wrong_event: ticket is for event Fysikalen Dag 2")
    assert (used(ce, day1), used(ce, day2)) == (0, 0)
    assert {v["use_ticket"] for v in ce.records.all("validation")} == {False}
    bad = write_conf(tmp_path, ce, password="guess")
    code, out = ctl(capsys, "--config", bad, "lookup", day1)
    assert code == 1 and out.startswith("DENY  source_error")
    assert "ALARM    online:chapterevents: auth_refused" in out


def test_doctor_asks_the_source_before_any_scan(ce, tmp_path, capsys):
    _, out = ctl(capsys, "--config", write_conf(tmp_path, ce), "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(out)}
    assert checks["source chapterevents"]["level"] == "OK"
    _, out = ctl(capsys, "--config", write_conf(tmp_path, ce, password="guess"), "doctor",
                 "--json")
    checks = {c["check"]: c for c in json.loads(out)}
    assert checks["source chapterevents"]["level"] == "FAIL"
    assert checks["source chapterevents"]["detail"].startswith("auth_refused")
    assert not ce.records.all("validation", use_ticket=True)


def test_the_daemon_registers_from_its_journal_and_status_shows_the_source(
        ce, tmp_path, pins, capsys):
    conf = write_conf(tmp_path, ce)
    _, out = ctl(capsys, "--config", conf, "status", "--json")
    assert json.loads(out)["online"] == {"chapterevents": None}  # no daemon: unknown
    outcomes: queue.Queue = queue.Queue()
    daemon = Daemon(config_mod.load(str(conf)), pins, on_outcome=outcomes.put)
    daemon.start()
    try:
        code = code_with(ce)
        daemon.submit(code.encode())
        assert outcomes.get(timeout=10).evaluation.decision.granted
        assert wait_until(lambda: used(ce, code) == 1, 30)  # the cloud process's drain
        _, out = ctl(capsys, "--config", conf, "status", "--json")
        health = json.loads(out)["online"]["chapterevents"]
        assert health["last_answer_at"] is not None and health["alarm"] is None
        ce.add_fault(ROUTE, "authx1")  # the password is changed upstream, for one request
        daemon.submit(code_with(ce).encode())
        assert outcomes.get(timeout=10).evaluation.decision.reason == rules.SOURCE_ERROR
        _, out = ctl(capsys, "--config", conf, "status")
        assert "ALARM    online:chapterevents: auth_refused" in out
        assert "source   chapterevents  online check  last answer" in out
        _, out = ctl(capsys, "--config", conf, "doctor", "--json")
        assert any(c["check"] == "online:chapterevents" and c["level"] == "FAIL"
                   for c in json.loads(out))
    finally:
        daemon.stop()
    j = Journal(tmp_path / "data" / "journal.db", readonly=True)
    assert j.counts() == {"confirmed": 1, "local": 1}
    j.close()
    assert used(ce, code) == 1


def test_a_base_url_missing_the_deployment_prefix_is_an_alarm(tmp_path):
    with start_emulator("chapterevents", tickets=5, seed=8, prefix="bittan") as e:
        right = OnlineChecker([backend(e)])
        code = code_with(e)
        assert right.check(code).ticket.barcode == code
        wrong = OnlineChecker([backend(e, base_url=e.base_url.removesuffix("/bittan"),
                                       offline_policy="admit-and-journal")])
        assert wrong.check(code).verdict.reason == rules.SOURCE_ERROR
        assert "HTML page" in wrong.alarms()["online:chapterevents"]
        right.close()
        wrong.close()
