"""SIGHUP reloads the configuration of a running daemon; a bad one is refused, the old one stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config, wait_until
from turnstiled import cli
from turnstiled.cache import Cache
from turnstiled.control import request
from turnstiled.daemon import Daemon
from turnstiled.errors import ControlError
from turnstiled.journal import Journal
from turnstiled.reload import ReloadRefused
from turnstiled.rules import Ticket


def config(tmp_path: Path, events: str, ptys: list[str], extra: str = "") -> str:
    text = f"""
[gate]
id = "reload-gate"
debounce_s = 0.0
events = [{events}]
[paths]
data_dir = "{tmp_path}/data"
control_socket = "{tmp_path}/ctl.sock"
[log]
target = "stderr"
level = "warning"
{extra}
"""
    for i, pty in enumerate(ptys):
        text += f'[[scanner]]\nname = "s{i}"\ntype = "serial"\nurl = "{pty}"\n'
    return text


def connected(tmp_path: Path, n: int) -> bool:
    try:
        status = request(tmp_path / "ctl.sock", "status", timeout=2)
    except ControlError:
        return False
    return len(status["scanners"]) == n and all(s["connected"] for s in status["scanners"])


def decisions(tmp_path: Path) -> list[tuple[str, str, str]]:
    path = tmp_path / "data" / "journal.db"
    if not path.exists():
        return []
    j = Journal(path, readonly=True)
    try:
        return [(r["barcode"], r["scanner"], r["reason"]) for r in reversed(j.recent(1000))]
    finally:
        j.close()


def test_sighup_reloads_good_config_and_refuses_bad_one(tmp_path, systemd_notify):
    ptys = [os.openpty() for _ in range(2)]
    names = [os.ttyname(slave) for _master, slave in ptys]
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(config(tmp_path, '"e1"', names[:1]))
    guests = tmp_path / "guests.csv"
    guests.write_text("barcode,event\n" + "".join(f"A{i:03d},e1\n" for i in range(60))
                      + "".join(f"B{i:03d},e2\n" for i in range(60)))
    assert cli.main(["import", "--config", str(cfg), str(guests)]) == 0
    notify, env = systemd_notify
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon", "--config", str(cfg)],
                            env=env, stderr=log.open("w"))

    def wait_for(word: str) -> list[str]:
        seen = []
        while not any(word in m for m in seen):
            seen.append(notify.recv(4096).decode())
        return seen

    def reload_lines() -> list[str]:
        return [line for line in log.read_text().splitlines() if "reload" in line]

    def scan(i: int, code: str) -> None:
        os.write(ptys[i][0], code.encode() + b"\r")

    try:
        wait_for("READY=1")
        assert wait_until(lambda: connected(tmp_path, 1), 30)
        scan(0, "A000")
        assert wait_until(lambda: ("A000", "s0", "granted") in decisions(tmp_path), 30)
        # A good config: another event, a second scanner. Scans read around the
        # reload are all decided, none dropped.
        cfg.write_text(config(tmp_path, '"e2"', names))
        for i in range(1, 31):
            scan(0, f"A{i:03d}")
        proc.send_signal(signal.SIGHUP)
        for i in range(31, 51):
            scan(0, f"A{i:03d}")
        states = wait_for("READY=1")
        assert any("RELOADING=1" in m for m in states)
        assert wait_until(lambda: {f"A{i:03d}" for i in range(51)}
                          <= {d[0] for d in decisions(tmp_path)}, 60)
        assert wait_until(lambda: connected(tmp_path, 2), 30)
        scan(1, "B001")
        scan(0, "A051")
        assert wait_until(lambda: ("B001", "s1", "granted") in decisions(tmp_path), 30)
        assert wait_until(lambda: ("A051", "s0", "wrong_event") in decisions(tmp_path), 30)
        assert reload_lines() == [], log.read_text()

        # A bad config: one line, the running one stays in force.
        cfg.write_text(config(tmp_path, '"e1"', names, "[hardware]\nrelay_pin = 99\n"))
        proc.send_signal(signal.SIGHUP)
        wait_for("READY=1")
        assert wait_until(lambda: len(reload_lines()) == 1, 30)
        [line] = reload_lines()
        assert "hardware.relay_pin" in line and "keeping" in line and "ERROR" in line
        scan(1, "B002")
        scan(0, "A052")
        assert wait_until(lambda: ("B002", "s1", "granted") in decisions(tmp_path), 30)
        assert wait_until(lambda: ("A052", "s0", "wrong_event") in decisions(tmp_path), 30)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for master, slave in ptys:
            os.close(master)
            os.close(slave)


# -- what a reload may change, on mock pins ------------------------------------
@pytest.fixture
def daemon(tmp_path, pins):
    d = Daemon(make_config(tmp_path, hardware={"fire_alarm_pin": 25}), pins)
    d.start()
    yield d
    d.stop()


def test_new_pins_are_claimed_and_the_old_released(tmp_path, pins, daemon):
    new = make_config(tmp_path, hardware={"fire_alarm_pin": 25, "relay_pin": 5})
    assert daemon.reload(new) == {"hardware"}
    daemon.gate.grant(0.05)
    assert wait_until(lambda: pins.pin(5).state, 5)
    assert not pins.pin(17).state
    assert daemon.cfg.hardware.relay_pin == 5


def test_hardware_change_is_refused_while_the_fire_alarm_holds_the_arm(tmp_path, pins, daemon):
    pins.pin(25).drive_low()  # active low: the fire alarm is on
    assert wait_until(lambda: daemon.gate.fire_alarm, 5)
    relay = pins.pin(17)
    assert relay.state
    new = make_config(tmp_path, hardware={"fire_alarm_pin": 25, "relay_pin": 5})
    with pytest.raises(ReloadRefused, match="held free"):
        daemon.reload(new)
    assert relay.state and daemon.cfg.hardware.relay_pin == 17  # never locked, not changed


def test_paths_cannot_change_while_running(tmp_path, daemon):
    new = make_config(tmp_path, paths={"data_dir": str(tmp_path / "elsewhere")})
    with pytest.raises(ReloadRefused, match=r"\[paths\] cannot change"):
        daemon.reload(new)
    assert daemon.cfg.paths.data_dir == str(tmp_path / "data")


def test_a_source_added_by_a_reload_admits_its_tickets(tmp_path, daemon):
    cache = Cache(daemon.cfg.paths.cache_db)
    cache.upsert([Ticket("vivenu", "V-1")])
    cache.close()
    assert daemon.pipeline.evaluate(b"V-1").decision.reason == "unknown"  # not configured
    new = make_config(tmp_path, hardware={"fire_alarm_pin": 25},
                      sources={"vivenu": {"token": "t", "base_url": "http://127.0.0.1:9"}})
    assert daemon.reload(new) == {"sources"}
    assert daemon.pipeline.evaluate(b"V-1").decision.granted
