"""The gate's gpiozero devices, read back through MockFactory pins."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import wait_until
from turnstiled.gate import Gate
from turnstiled.settings import HardwareSettings


def test_relay_idle_locked_at_start_and_pulses_on_grant(pins):
    gate = Gate(HardwareSettings(relay_pulse_s=0.1), pins)
    relay = pins.pin(17)
    assert relay.state is False
    gate.grant()
    assert relay.state is True
    assert pins.pin(22).state is True  # green
    assert wait_until(lambda: relay.state is False)
    gate.close()


def test_deny_never_moves_the_relay(pins):
    gate = Gate(HardwareSettings(), pins)
    gate.deny()
    assert pins.pin(27).state is True  # red
    assert wait_until(lambda: len([s for s in pins.pin(23).states if s.state]) == 3)
    assert [s.state for s in pins.pin(17).states] == [False]
    gate.close()


@pytest.mark.parametrize(("active_high", "idle", "locked_level"), [
    (True, "fail-secure", False),
    (False, "fail-secure", True),
    (True, "fail-safe", True),   # coil energised holds the lock
    (False, "fail-safe", False),
])
def test_relay_polarity_and_idle_mode(pins, active_high, idle, locked_level):
    gate = Gate(HardwareSettings(relay_active_high=active_high, relay_idle=idle,
                                 relay_pulse_s=5), pins)
    relay = pins.pin(17)
    assert relay.state is locked_level
    gate.grant()
    assert relay.state is (not locked_level)
    gate.idle()  # what SIGTERM does first
    assert relay.state is locked_level
    gate.close()


def test_passage_sensor_counts_only_when_arm_turns(pins):
    gate = Gate(HardwareSettings(passage_pin=24, passage_timeout_s=2.0, relay_pulse_s=0.05),
                pins)
    sensor = pins.pin(24)
    gate.grant()  # a technician's open: one pulse, even with a sensor wired
    assert pins.pin(17).state is True
    assert wait_until(lambda: pins.pin(17).state is False)
    gate.grant(until_passage=True)
    assert pins.pin(17).state is True
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("passed", gate.wait_passage()))
    t.start()
    sensor.drive_low()  # active-low sensor: the arm turned
    t.join(3)
    assert result["passed"] is True
    assert pins.pin(17).state is False
    sensor.drive_high()
    gate.grant(until_passage=True)
    assert gate.wait_passage(timeout=0.05) is False
    assert pins.pin(17).state is False
    gate.close()


def test_fire_alarm_holds_arm_free_and_reports(pins):
    seen = []
    gate = Gate(HardwareSettings(fire_alarm_pin=25, relay_pulse_s=0.05), pins,
                on_fire_alarm=lambda active, at: seen.append(active))
    pins.pin(25).drive_low()
    assert pins.pin(17).state is True
    gate.grant()
    assert wait_until(lambda: not gate.state()["pulse"])
    assert pins.pin(17).state is True  # the pulse ending does not lock during an alarm
    assert gate.state()["relay"] == "held free"
    pins.pin(25).drive_high()
    assert pins.pin(17).state is False
    assert seen == [True, False]
    gate.close()


def test_fire_alarm_already_active_at_start(pins):
    pins.pin(25).drive_low()  # external pull resistor, alarm contact already closed
    gate = Gate(HardwareSettings(fire_alarm_pin=25, fire_alarm_pull=False), pins)
    assert gate.fire_alarm and pins.pin(17).state is True
    gate.close()


def test_hold_and_release(pins):
    gate = Gate(HardwareSettings(relay_pulse_s=0.05), pins)
    gate.hold_open(True)
    gate.grant()
    assert wait_until(lambda: not gate.state()["pulse"])
    assert pins.pin(17).state is True
    assert gate.state()["holds"] == ["technician"]
    gate.hold_open(False)
    assert pins.pin(17).state is False
    gate.close()
