"""A gate without an RTC: clock steps, unsynchronised clocks, and what status says about it."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time

import pytest
from gpiozero import OutputDevice

from tests.conftest import make_config, wait_until
from turnstiled import cli, clock, rules
from turnstiled.backends.base import TransientError
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal
from turnstiled.pipeline import ScanPipeline
from turnstiled.retry import Retry
from turnstiled.rules import RuleSettings, Ticket, Usage
from turnstiled.service import Rounds, run, status_line
from turnstiled.timeutil import ago

NOW = 1_800_000_000.0
WINDOWED = Ticket("local", "W1", valid_from=NOW + 3600, valid_until=NOW + 7200)
PLAIN = Ticket("local", "P1")


@pytest.mark.parametrize(("policy", "synced", "ticket", "reason"), [
    ("trust", False, WINDOWED, rules.NOT_YET_VALID),
    ("deny", False, WINDOWED, rules.CLOCK_UNSYNCHRONISED),
    ("admit", False, WINDOWED, rules.GRANTED),
    ("deny", None, WINDOWED, rules.NOT_YET_VALID),  # unknown: the clock is trusted
    ("deny", True, WINDOWED, rules.NOT_YET_VALID),
    ("deny", False, PLAIN, rules.GRANTED),  # no window: nothing to doubt
    ("admit", False, Ticket("local", "U", entries="single"), rules.GRANTED),
])
def test_unsynced_clock_policy(policy, synced, ticket, reason):
    d = rules.decide(ticket, Usage(), RuleSettings(unsynced_clock=policy), NOW, "in", synced)
    assert d.reason == reason


def test_admit_still_applies_every_other_rule():
    used = Usage(entries=1, first_used=NOW - 10)
    d = rules.decide(WINDOWED, used, RuleSettings(unsynced_clock="admit"), NOW, "in", False)
    assert d.reason == rules.ALREADY_USED
    timed = Ticket("local", "T", use_window_s=60, entries="unlimited")
    d = rules.decide(timed, Usage(entries=1, first_used=NOW - 3600),
                     RuleSettings(unsynced_clock="deny"), NOW, "in", False)
    assert d.reason == rules.CLOCK_UNSYNCHRONISED


def test_ages_are_never_negative_zero():
    assert ago(NOW - 4, NOW) == "4 s ago"
    assert ago(NOW - 190, NOW) == "3 min ago"
    assert ago(NOW - 7300, NOW) == "2 h ago"
    assert ago(None, NOW) == "never"
    assert ago(NOW + 3600, NOW) == "1 h ahead of the clock (clock stepped back?)"


def test_status_line():
    figs = {"sources": [{"source": "vivenu", "tickets": 48_000, "last_sync": NOW - 4},
                        {"source": "local", "tickets": 210, "last_sync": NOW - 900}],
            "backlog": {"vivenu": {"pending": 0}}}
    assert status_line("online", figs, NOW) == (
        "online · 48,210 tickets · synced 4 s ago · backlog 0")
    figs["sources"][0]["last_sync"] = None
    figs["sources"][1]["last_sync"] = None
    figs["backlog"] = {"vivenu": {"pending": 1200}}
    assert status_line("offline", figs, NOW) == (
        "offline · 48,210 tickets · never synced · backlog 1,200")


def test_retries_are_scheduled_on_the_monotonic_clock():
    r = Retry()
    r.failed(TransientError("down"), "test", base=60, ceiling=60)
    assert 29 <= r.next_due - time.monotonic() <= 61
    r.succeeded("test", 15)
    assert 14 <= r.next_due - time.monotonic() <= 15


def test_step_watch():
    wall = [NOW]
    mono = [100.0]
    watch = clock.StepWatch(wall=lambda: wall[0], mono=lambda: mono[0])
    wall[0] += 1.0
    mono[0] += 1.0
    assert watch.check() is None
    wall[0] += 1.0 - 3600  # a second passed, and an NTP correction back by an hour
    mono[0] += 1.0
    step = watch.check()
    assert step is not None and round(step.delta_s) == -3600
    wall[0] += 1.0
    mono[0] += 1.0
    assert watch.check() is None


def test_a_clock_step_is_an_alarm_and_journaled(tmp_path, pins):
    daemon = Daemon(make_config(tmp_path), pins)
    daemon.start()
    try:
        wall = [time.time()]
        rounds = Rounds(daemon, None, clock.StepWatch(wall=lambda: wall[0],
                                                      mono=time.monotonic))
        rounds.tick()
        assert "clock" not in daemon.alarms()
        wall[0] += 3 * 365 * 86400  # the first NTP sync of a Pi that booted in the past
        rounds.tick()
        assert daemon.alarms()["clock"].startswith("stepped +94608000 s")
        assert daemon.status()["clock"]["unsynced_policy"] == "trust"
        assert wait_until(lambda: any(e["kind"] == "clock_step"
                                      for e in daemon.journal.events(10)), 10)
    finally:
        daemon.stop()


def test_status_line_reaches_systemd(tmp_path, systemd_notify):
    guests = tmp_path / "guests.csv"
    guests.write_text("barcode\nG1\nG2\nG3\n")
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(f"[paths]\ndata_dir = '{tmp_path}/data'\n"
                   f"control_socket = '{tmp_path}/ctl.sock'\n")
    assert cli.main(["import", "--config", str(cfg), str(guests)]) == 0
    sock, env = systemd_notify
    proc = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon", "--config", str(cfg)],
                            env=env, stderr=subprocess.DEVNULL)
    try:
        statuses: list[str] = []
        while not any(re.fullmatch(r"local · 3 tickets · synced \d+ s ago · backlog 0", s)
                      for s in statuses):
            msg = sock.recv(4096).decode()
            statuses += [line[7:] for line in msg.splitlines() if line.startswith("STATUS=")]
        assert all("\n" not in s for s in statuses)
    finally:
        proc.terminate()
        proc.wait(10)


def test_debounce_ignores_a_jump_of_years(tmp_path):
    cfg = make_config(tmp_path)
    cache = Cache(tmp_path / "cache.db")
    journal = Journal(tmp_path / "journal.db")
    wall = [NOW]
    pipe = ScanPipeline(cfg, cache, journal, None, clock=lambda: wall[0])
    try:
        assert pipe.handle(b"CODE-1", "s", "in", 100.0) is not None
        wall[0] += 5 * 365 * 86400  # NTP sets the clock of a Pi that booted in the past
        assert pipe.handle(b"CODE-1", "s", "in", 100.5) is None  # still a repeat
        wall[0] -= 10 * 365 * 86400
        assert pipe.handle(b"CODE-1", "s", "in", 101.0) is None
        assert pipe.handle(b"CODE-1", "s", "in", 100.0 + cfg.gate.debounce_s + 0.1) is not None
    finally:
        cache.close()
        journal.close()


def test_a_gpio_error_at_start_is_one_line(tmp_path, pins, caplog):
    busy = OutputDevice(17, pin_factory=pins)  # someone else holds the relay's pin
    try:
        assert run(make_config(tmp_path), pins) == 1
    finally:
        busy.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert errors[0].getMessage().startswith("cannot start: GPIOPinInUse")
