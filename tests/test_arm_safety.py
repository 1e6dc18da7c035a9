"""While the fire input or an emergency hold is active, nothing locks the arm.

Every path that touches the relay is driven with the fire alarm active, on
gpiozero's MockFactory pins, for both ``relay_idle`` settings and both
polarities; the relay pin's whole history after the alarm began must show
no locked level. Then the same through a running daemon (scans, passage
waits, technician commands, errors, shutdown).
"""

from __future__ import annotations

import os
import pwd
import threading
from typing import Any

import pytest

from tests.conftest import wait_until
from turnstiled.control import request
from turnstiled.errors import ControlError
from turnstiled.gate import Gate
from turnstiled.rules import Ticket
from turnstiled.settings import HardwareSettings

FIRE, PASSAGE, RELAY = 25, 24, 17
WIRINGS = [(True, "fail-secure"), (False, "fail-secure"), (True, "fail-safe"),
           (False, "fail-safe")]


def locked_level(active_high: bool, idle: str) -> bool:
    """The relay pin's level when the arm is locked."""
    return active_high == (idle == "fail-safe")


def history_since(pin: Any, mark: int) -> list[bool]:
    return [s.state for s in pin.states[mark:]]


def no_lock_after(pin: Any, mark: int, locked: bool) -> bool:
    return locked not in history_since(pin, mark)


def _pulse_over(gate: Gate) -> bool:
    return wait_until(lambda: not gate.state()["pulse"], 5)


def _grant_pulse(gate: Gate) -> None:
    gate.grant()
    assert _pulse_over(gate)


def _grant_passage_timeout(gate: Gate) -> None:
    gate.grant(until_passage=True)
    assert gate.wait_passage(timeout=0.05) is False


def _grant_passage_passed(gate: Gate, pins: Any) -> None:
    gate.grant(until_passage=True)
    pins.pin(PASSAGE).drive_low()
    assert gate.wait_passage(timeout=5) is True
    pins.pin(PASSAGE).drive_high()


def _grant_passage_backstop(gate: Gate) -> None:
    # The decision thread died during a passage wait: the timer ends it.
    gate.grant(until_passage=True)
    assert _pulse_over(gate)


def _deny(gate: Gate) -> None:
    gate.deny()


def _hold_release(gate: Gate) -> None:
    gate.hold_open(True)
    gate.hold_open(False)


def _emergency_on_off(gate: Gate) -> None:
    gate.set_emergency(True)
    gate.set_emergency(False)


def _idle(gate: Gate) -> None:
    gate.idle()  # start-up and the first step of stop


def _fail_safe(gate: Gate) -> None:
    gate.grant()
    gate.fail_safe()  # an error in the decision path


def _end_pulse(gate: Gate) -> None:
    gate.grant()
    gate.end_pulse()


PATHS = {
    "grant pulse": _grant_pulse,
    "grant, passage timeout": _grant_passage_timeout,
    "grant, passed": _grant_passage_passed,
    "grant, passage wait never ended": _grant_passage_backstop,
    "deny": _deny,
    "technician hold and release": _hold_release,
    "emergency on and off": _emergency_on_off,
    "idle (start, stop)": _idle,
    "error in the decision path": _fail_safe,
    "pulse ended early": _end_pulse,
}


@pytest.mark.parametrize(("active_high", "idle"), WIRINGS)
@pytest.mark.parametrize("path", list(PATHS))
def test_no_relay_path_locks_during_fire_alarm(pins, path, active_high, idle):
    hw = HardwareSettings(relay_active_high=active_high, relay_idle=idle, relay_pulse_s=0.05,
                          passage_pin=PASSAGE, passage_timeout_s=0.1, fire_alarm_pin=FIRE)
    gate = Gate(hw, pins)
    locked = locked_level(active_high, idle)
    relay = pins.pin(RELAY)
    assert relay.state is locked
    pins.pin(FIRE).drive_low()  # active-low fire contact closes
    assert relay.state is (not locked)
    mark = len(relay.states)
    fn = PATHS[path]
    fn(gate, pins) if fn is _grant_passage_passed else fn(gate)
    assert no_lock_after(relay, mark, locked), history_since(relay, mark)
    assert gate.state()["relay"] == "held free"
    pins.pin(FIRE).drive_high()  # only the alarm clearing locks again
    assert relay.state is locked
    gate.close()


@pytest.mark.parametrize(("active_high", "idle"), WIRINGS)
def test_close_during_fire_alarm_leaves_the_relay_free(pins, active_high, idle):
    gate = Gate(HardwareSettings(relay_active_high=active_high, relay_idle=idle,
                                 fire_alarm_pin=FIRE), pins)
    pins.pin(FIRE).drive_low()
    locked = locked_level(active_high, idle)
    relay = pins.pin(RELAY)
    mark = len(relay.states)
    gate.close()  # SIGTERM
    assert relay.state is (not locked)
    assert no_lock_after(relay, mark, locked)


@pytest.mark.parametrize(("active_high", "idle"), WIRINGS)
def test_start_with_fire_alarm_active_never_locks(pins, active_high, idle):
    pins.pin(FIRE).drive_low()
    relay = pins.pin(RELAY)
    mark = len(relay.states)
    gate = Gate(HardwareSettings(relay_active_high=active_high, relay_idle=idle,
                                 fire_alarm_pin=FIRE, fire_alarm_pull=False), pins)
    locked = locked_level(active_high, idle)
    assert relay.state is (not locked)
    assert no_lock_after(relay, mark + 1, locked)  # +1: the pin's state before the relay
    gate.close()


@pytest.mark.parametrize(("active_high", "idle"), WIRINGS)
def test_start_and_stop_force_the_locked_state(pins, active_high, idle):
    locked = locked_level(active_high, idle)
    relay = pins.pin(RELAY)
    gate = Gate(HardwareSettings(relay_active_high=active_high, relay_idle=idle,
                                 relay_pulse_s=30), pins)
    assert relay.state is locked
    gate.grant()
    assert relay.state is (not locked)
    gate.close()
    assert relay.state is locked


def test_emergency_holds_free_like_the_fire_input(pins):
    gate = Gate(HardwareSettings(relay_pulse_s=0.05, passage_pin=PASSAGE,
                                 passage_timeout_s=0.05), pins)
    relay = pins.pin(RELAY)
    gate.set_emergency(True)
    mark = len(relay.states)
    gate.grant(until_passage=True)
    gate.wait_passage()
    gate.deny()
    gate.hold_open(True)
    gate.hold_open(False)
    gate.fail_safe()
    gate.idle()
    assert no_lock_after(relay, mark, False)
    assert gate.state()["holds"] == ["emergency"]
    gate.set_emergency(False)
    assert relay.state is False
    gate.close()


def test_a_scan_starts_no_thread_and_the_pulse_ends_on_time(pins, monkeypatch):
    """No thread can be started (process limit reached): grants still pulse and lock."""
    gate = Gate(HardwareSettings(relay_pulse_s=0.05), pins)
    relay = pins.pin(RELAY)

    def no_thread(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    for _ in range(3):
        gate.grant()
        assert relay.state is True
        assert pins.pin(22).state is True  # green, timed by the gate's own timer
        assert wait_until(lambda: relay.state is False)
        assert wait_until(lambda: pins.pin(22).state is False)
        gate.deny()
        assert wait_until(lambda: len([s for s in pins.pin(23).states if s.state]) >= 3)
    monkeypatch.undo()
    gate.close()


def test_a_relay_that_fails_to_move_leaves_the_timer_alive(pins):
    gate = Gate(HardwareSettings(relay_pulse_s=0.05), pins)
    relay = pins.pin(RELAY)
    gate.grant()
    relay.function = "input"  # the line was taken away: setting it raises
    assert wait_until(lambda: not gate.state()["pulse"])
    relay.function = "output"
    gate.grant()
    assert wait_until(lambda: relay.state is False)
    gate.close()


# -- through a running daemon ---------------------------------------------
FIRE_HW = {"fire_alarm_pin": FIRE, "passage_pin": PASSAGE, "passage_timeout_s": 3.0,
           "relay_pulse_s": 0.05}


def _fire_on(g) -> int:
    g.pins.pin(FIRE).drive_low()
    assert g.relay.state is True
    return len(g.relay.states)


def test_granted_scan_with_passage_sensor_during_fire_alarm_does_not_lock(start_gate):
    g = start_gate([Ticket("local", "OK-1"), Ticket("local", "OK-2")], hardware=FIRE_HW)
    mark = _fire_on(g)
    g.scan(b"OK-1")
    assert g.next().passed is False  # passage timeout
    g.scan(b"OK-2")
    assert wait_until(lambda: g.daemon.gate.state()["pulse"])  # waiting for the arm
    g.pins.pin(PASSAGE).drive_low()
    assert g.next().passed is True
    g.scan(b"NOPE")
    assert not g.next().evaluation.decision.granted
    assert no_lock_after(g.relay, mark, False)


def test_technician_commands_during_fire_alarm_do_not_lock(start_gate):
    g = start_gate([], hardware=FIRE_HW)
    sock = g.daemon.cfg.paths.control_socket
    mark = _fire_on(g)
    request(sock, "open")
    assert wait_until(lambda: not g.daemon.gate.state()["pulse"])
    request(sock, "hold")
    request(sock, "release")
    request(sock, "emergency", state="on")
    request(sock, "emergency", state="off")
    with pytest.raises(ControlError, match="refused"):
        request(sock, "test")
    status = request(sock, "status")
    assert status["gate"]["relay"] == "held free" and "fire_alarm" in status["alarms"]
    g.daemon.stop()  # SIGTERM during the alarm
    assert no_lock_after(g.relay, mark, False)
    assert g.relay.state is True


def test_fire_alarm_events_are_journaled_by_the_decision_worker(start_gate):
    g = start_gate([], hardware=FIRE_HW)
    g.pins.pin(FIRE).drive_low()
    g.pins.pin(FIRE).drive_high()

    def kinds():
        j = g.journal()
        try:
            return [(e["kind"], e["detail"]) for e in j.events(10)]
        finally:
            j.close()
    assert wait_until(lambda: ("fire_alarm", "cleared") in kinds())
    assert ("fire_alarm", "active") in kinds()
    assert g.relay.state is False


def test_technician_commands_are_journaled_first_with_the_login_name(start_gate):
    g = start_gate([], hardware={"relay_pulse_s": 30})
    sock = g.daemon.cfg.paths.control_socket
    journal = g.daemon.journal
    me = pwd.getpwuid(os.getuid()).pw_name
    request(sock, "hold", by="someone else")  # a name in the text is ignored
    ev = journal.events(1)[0]
    assert (ev["kind"], ev["detail"]) == ("hold_open", f"by {me}")
    assert request(sock, "status")["gate"]["holds"] == ["technician"]
    request(sock, "release")
    assert g.relay.state is False
    # The journal refuses the write: the command fails and the relay does not move.
    journal.conn.execute("PRAGMA query_only = ON")
    for cmd, args in (("open", {}), ("hold", {}), ("emergency", {"state": "on"})):
        with pytest.raises(ControlError, match="readonly"):
            request(sock, cmd, **args)
        assert [s.state for s in g.relay.states][-1] is False
    journal.conn.execute("PRAGMA query_only = OFF")
    request(sock, "emergency", state="on")
    assert journal.events(1)[0]["detail"] == f"on by {me}"
    assert g.relay.state is True
    request(sock, "emergency", state="off")
    assert g.relay.state is False


def test_emergency_hold_survives_a_restart(start_gate):
    g = start_gate([], hardware={"relay_pulse_s": 0.05})
    request(g.daemon.cfg.paths.control_socket, "emergency", state="on")
    g.daemon.stop()
    assert g.relay.state is True  # stopping does not lock during an emergency
    mark = len(g.relay.states)
    g2 = start_gate([], hardware={"relay_pulse_s": 0.05})
    assert g2.daemon.gate.emergency and g2.relay.state is True
    assert no_lock_after(g.relay, mark, False)
    status = request(g2.daemon.cfg.paths.control_socket, "status")
    assert "emergency" in status["alarms"]
