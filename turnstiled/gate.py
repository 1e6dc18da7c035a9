"""The gate's hardware as gpiozero devices: relay, LEDs, buzzer, sensors.

Nothing else in turnstiled touches GPIO. Every device takes the injected
``pin_factory`` (tests and the demo use gpiozero's ``MockFactory``). The
relay device is *active* when the arm is unlocked; whether that means
the coil is energised depends on ``relay_idle``:

- ``fail-secure`` (default): energise to unlock; losing power locks.
- ``fail-safe``: the coil holds the lock; losing power frees the arm.

Either way the idle (locked) state is forced at start and at shutdown.
While the fire-alarm input is active the arm is held free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice, OutputDevice
from gpiozero.pins import Factory

from turnstiled.config import HardwareSettings

logger = logging.getLogger(__name__)

BEEP_S = 0.08


def _input(pin: int, active_high: bool, pull: bool, factory: Factory | None) -> DigitalInputDevice:
    # With the internal resistor on, it pulls towards the inactive level.
    if pull:
        return DigitalInputDevice(pin, pull_up=not active_high, pin_factory=factory)
    return DigitalInputDevice(pin, pull_up=None, active_state=active_high, pin_factory=factory)


class Gate:
    """The relay, lights, buzzer, passage sensor and fire-alarm input of one gate."""

    def __init__(self, hw: HardwareSettings, pin_factory: Factory | None = None,
                 on_fire_alarm: Callable[[bool], None] | None = None) -> None:
        self.hw = hw
        self._lock = threading.Lock()
        self._off_timer: threading.Timer | None = None
        self._held = False
        self._passed = threading.Event()
        self._on_fire_alarm = on_fire_alarm
        f = pin_factory
        relay_active_high = hw.relay_active_high != (hw.relay_idle == "fail-safe")
        self.relay = OutputDevice(hw.relay_pin, active_high=relay_active_high,
                                  initial_value=False, pin_factory=f)
        self.green = (LED(hw.green_led_pin, active_high=hw.leds_active_high, pin_factory=f)
                      if hw.green_led_pin is not None else None)
        self.red = (LED(hw.red_led_pin, active_high=hw.leds_active_high, pin_factory=f)
                    if hw.red_led_pin is not None else None)
        self.buzzer = (Buzzer(hw.buzzer_pin, active_high=hw.buzzer_active_high, pin_factory=f)
                       if hw.buzzer_pin is not None else None)
        self.passage = (_input(hw.passage_pin, hw.passage_active_high, hw.passage_pull, f)
                        if hw.passage_pin is not None else None)
        if self.passage is not None:
            self.passage.when_activated = self._passage_seen
        self.fire = (_input(hw.fire_alarm_pin, hw.fire_alarm_active_high, hw.fire_alarm_pull, f)
                     if hw.fire_alarm_pin is not None else None)
        if self.fire is not None:
            self.fire.when_activated = lambda: self._fire_changed(True)
            self.fire.when_deactivated = lambda: self._fire_changed(False)
        self.safe_idle()
        if self.fire_alarm:
            self._fire_changed(True)

    # -- state -----------------------------------------------------------
    @property
    def fire_alarm(self) -> bool:
        return bool(self.fire is not None and self.fire.is_active)

    @property
    def has_passage_sensor(self) -> bool:
        return self.passage is not None

    def state(self) -> dict[str, Any]:
        """What a technician would see on the gate, for status and the demo."""
        def val(dev: Any) -> bool | None:
            return None if dev is None else bool(dev.value)
        return {
            "relay": "unlocked" if self.relay.is_active else "locked",
            "green": val(self.green), "red": val(self.red), "buzzer": val(self.buzzer),
            "passage": val(self.passage), "fire_alarm": self.fire_alarm,
            "relay_idle": self.hw.relay_idle,
        }

    # -- actions ---------------------------------------------------------
    def grant(self, pulse_s: float | None = None, *, until_passage: bool = False) -> None:
        """Unlock, green light, one short beep.

        The arm locks again after one pulse, or, with *until_passage*, when
        :meth:`wait_passage` returns (the arm turned or its timeout passed).
        """
        pulse = self.hw.relay_pulse_s if pulse_s is None else pulse_s
        with self._lock:
            self._passed.clear()
            self.relay.on()
            self._cancel_timer()
            if not (until_passage and self.passage is not None):
                self._schedule_off(pulse)
        if self.red is not None:
            self.red.off()
        if self.green is not None:
            self.green.blink(on_time=pulse, off_time=0, n=1, background=True)
        if self.buzzer is not None:
            self.buzzer.beep(on_time=BEEP_S * 2, off_time=BEEP_S, n=1, background=True)

    def deny(self) -> None:
        """Red light and three short beeps; the relay does not move."""
        if self.green is not None:
            self.green.off()
        if self.red is not None:
            self.red.blink(on_time=1.0, off_time=0, n=1, background=True)
        if self.buzzer is not None:
            self.buzzer.beep(on_time=BEEP_S, off_time=BEEP_S, n=3, background=True)

    def wait_passage(self, timeout: float | None = None) -> bool:
        """After :meth:`grant`: True once the arm turned, False at the timeout."""
        if self.passage is None:
            return True
        timeout = self.hw.passage_timeout_s if timeout is None else timeout
        passed = self._passed.wait(timeout)
        with self._lock:
            self._cancel_timer()
            if not self._held:
                self.relay.off()
        return passed

    def hold_open(self, held: bool) -> None:
        """Keep the arm free until released again (technician or fire alarm)."""
        with self._lock:
            self._held = held
            self._cancel_timer()
            if held:
                self.relay.on()
            elif not self.fire_alarm:
                self.relay.off()

    def safe_idle(self) -> None:
        """Force the relay to its idle (locked) state, lights and buzzer off."""
        with self._lock:
            self._cancel_timer()
            self._held = False
            self.relay.off()
        for dev in (self.green, self.red, self.buzzer):
            if dev is not None:
                dev.off()

    def close(self) -> None:
        """Lock, then release every pin."""
        self.safe_idle()
        for dev in (self.relay, self.green, self.red, self.buzzer, self.passage, self.fire):
            if dev is not None:
                dev.close()

    # -- internals -------------------------------------------------------
    def _schedule_off(self, pulse: float) -> None:
        timer = threading.Timer(pulse, self._pulse_over)
        timer.daemon = True
        self._off_timer = timer
        timer.start()

    def _cancel_timer(self) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()
            self._off_timer = None

    def _pulse_over(self) -> None:
        with self._lock:
            self._off_timer = None
            if not self._held and not self.fire_alarm:
                self.relay.off()

    def _passage_seen(self) -> None:
        self._passed.set()

    def _fire_changed(self, active: bool) -> None:
        logger.warning("fire alarm %s: arm %s", "ACTIVE" if active else "cleared",
                       "held free" if active else "back to normal")
        with self._lock:
            self._cancel_timer()
            if active:
                self.relay.on()
            elif not self._held:
                self.relay.off()
        if self._on_fire_alarm is not None:
            self._on_fire_alarm(active)
