"""The gate's hardware as gpiozero devices: relay, LEDs, buzzer, sensors.

Nothing else in turnstiled touches GPIO. Every device takes the injected
``pin_factory`` (tests and the demo use gpiozero's ``MockFactory``). The
relay device is *active* when the arm is unlocked; whether that means
the coil is energised depends on ``relay_idle``:

- ``fail-secure`` (default): energise to unlock; losing power locks.
- ``fail-safe``: the coil holds the lock; losing power frees the arm.

One rule decides the relay, in :meth:`Gate._apply`: the arm is free while
the fire-alarm input is active, an emergency or technician hold is on, or
a pulse (or a passage wait) is running; otherwise it is locked. Every
path that touches the relay goes through that rule, so nothing (grant,
deny, passage timeout, release, an error, shutdown) can lock the arm
while the fire alarm or an emergency is active. What the relay does at
boot, start, stop, crash and power loss is in ``hardware/README.md``.

Pulses end on one long-lived timer thread started with the gate, and the
end of a pulse is set before the relay is energised: if anything fails
after that (a GPIO error), the arm still locks on time. The lights and the
buzzer are timed by the same thread, so a scan never starts a thread
(gpiozero's ``blink``/``beep`` would start one each time).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice, OutputDevice
from gpiozero.pins import Factory

from turnstiled.settings import HardwareSettings

logger = logging.getLogger(__name__)

BEEP_S = 0.08
# A passage wait ends in wait_passage(); if that never runs (the decision
# thread failed), the timer locks the arm this long after the wait's timeout.
PASSAGE_BACKSTOP_S = 1.0


def _input(pin: int, active_high: bool, pull: bool, factory: Factory | None) -> DigitalInputDevice:
    # With the internal resistor on, it pulls towards the inactive level.
    if pull:
        return DigitalInputDevice(pin, pull_up=not active_high, pin_factory=factory)
    return DigitalInputDevice(pin, pull_up=None, active_state=active_high, pin_factory=factory)


class Gate:
    """The relay, lights, buzzer, passage sensor and fire-alarm input of one gate."""

    def __init__(self, hw: HardwareSettings, pin_factory: Factory | None = None,
                 on_fire_alarm: Callable[[bool, float], None] | None = None, *,
                 emergency: bool = False) -> None:
        self.hw = hw
        self._cond = threading.Condition(threading.Lock())
        self._pulse_until: float | None = None  # monotonic end of a pulse or passage wait
        self._held = False       # technician hold
        self._emergency = emergency  # emergency hold (turnstilectl emergency on)
        self._closed = False
        self._steps: list[tuple[float, int, Any, bool]] = []  # (when, seq, light, on) heap
        self._seq = 0
        self._passed = threading.Event()
        self._on_fire_alarm = on_fire_alarm
        f = pin_factory
        # Inputs first: if the fire alarm is already active, the relay starts free
        # instead of locking for a moment.
        self.passage = (_input(hw.passage_pin, hw.passage_active_high, hw.passage_pull, f)
                        if hw.passage_pin is not None else None)
        self.fire = (_input(hw.fire_alarm_pin, hw.fire_alarm_active_high, hw.fire_alarm_pull, f)
                     if hw.fire_alarm_pin is not None else None)
        relay_active_high = hw.relay_active_high != (hw.relay_idle == "fail-safe")
        self.relay = OutputDevice(hw.relay_pin, active_high=relay_active_high,
                                  initial_value=self.fire_alarm or emergency, pin_factory=f)
        self.green = (LED(hw.green_led_pin, active_high=hw.leds_active_high, pin_factory=f)
                      if hw.green_led_pin is not None else None)
        self.red = (LED(hw.red_led_pin, active_high=hw.leds_active_high, pin_factory=f)
                    if hw.red_led_pin is not None else None)
        self.buzzer = (Buzzer(hw.buzzer_pin, active_high=hw.buzzer_active_high, pin_factory=f)
                       if hw.buzzer_pin is not None else None)
        self._timer = threading.Thread(target=self._timer_loop, name="relay-timer", daemon=True)
        self._timer.start()
        if self.passage is not None:
            self.passage.when_activated = self._passage_seen
        if self.fire is not None:
            self.fire.when_activated = lambda: self._fire_changed(True)
            self.fire.when_deactivated = lambda: self._fire_changed(False)
        self.idle()
        if self.fire_alarm:
            self._fire_changed(True)

    # -- state -----------------------------------------------------------
    @property
    def fire_alarm(self) -> bool:
        return bool(self.fire is not None and not self.fire.closed and self.fire.is_active)

    @property
    def emergency(self) -> bool:
        return self._emergency

    @property
    def has_passage_sensor(self) -> bool:
        return self.passage is not None

    def holds(self) -> list[str]:
        """Why the arm is held free right now (empty: it follows scans)."""
        out = []
        if self.fire_alarm:
            out.append("fire alarm")
        if self._emergency:
            out.append("emergency")
        if self._held:
            out.append("technician")
        return out

    def state(self) -> dict[str, Any]:
        """What a technician would see on the gate, for status and the demo."""
        def val(dev: Any) -> bool | None:
            return None if dev is None else bool(dev.value)
        holds = self.holds()
        relay = "held free" if holds else "unlocked" if self.relay.is_active else "locked"
        return {
            "relay": relay, "holds": holds, "pulse": self._pulse_until is not None,
            "green": val(self.green), "red": val(self.red), "buzzer": val(self.buzzer),
            "passage": val(self.passage), "fire_alarm": self.fire_alarm,
            "emergency": self._emergency, "relay_idle": self.hw.relay_idle,
        }

    # -- actions ---------------------------------------------------------
    def grant(self, pulse_s: float | None = None, *, until_passage: bool = False) -> None:
        """Unlock, green light, one short beep.

        The arm locks again after one pulse, or, with *until_passage*, when
        :meth:`wait_passage` returns (the arm turned or its timeout passed).
        The end of the pulse is set before the relay moves.
        """
        pulse = self.hw.relay_pulse_s if pulse_s is None else pulse_s
        free_for = pulse
        if until_passage and self.passage is not None:
            free_for = self.hw.passage_timeout_s + PASSAGE_BACKSTOP_S
        with self._cond:
            self._passed.clear()
            self._pulse_until = time.monotonic() + free_for
            try:
                self._apply()
            finally:
                # Then wake the timer thread (it cannot end the pulse before we
                # let go of the lock anyway): a thread's wake-up, and the chance
                # it takes this core, must not come between commit and relay.
                self._cond.notify()
        self._signal(green=True, beeps=1, on_time=pulse)

    def deny(self) -> None:
        """Red light and three short beeps; the relay does not move."""
        self._signal(green=False, beeps=3, on_time=1.0)

    def wait_passage(self, timeout: float | None = None) -> bool:
        """After :meth:`grant`: True once the arm turned, False at the timeout."""
        if self.passage is None:
            return True
        timeout = self.hw.passage_timeout_s if timeout is None else timeout
        passed = self._passed.wait(timeout)
        self.end_pulse()
        return passed

    def end_pulse(self) -> None:
        """End a pulse or passage wait now (the arm locks unless it is held free)."""
        with self._cond:
            self._pulse_until = None
            self._apply()

    def hold_open(self, held: bool) -> None:
        """Keep the arm free until released again (technician)."""
        with self._cond:
            self._held = held
            if not held:
                self._pulse_until = None
            self._apply()

    def set_emergency(self, on: bool) -> None:
        """Hold the arm free like the fire input until switched off again."""
        with self._cond:
            self._emergency = on
            self._apply()

    def self_test(self, step_s: float = 0.4) -> list[str]:
        """Cycle green, red, buzzer and the relay one after another; the parts done.

        The caller refuses this while the arm is held free.
        """
        done = []
        for name, dev in (("green", self.green), ("red", self.red), ("buzzer", self.buzzer)):
            if dev is not None:
                dev.on()
                time.sleep(step_s)
                dev.off()
                done.append(name)
        with self._cond:
            self._pulse_until = time.monotonic() + step_s
            self._cond.notify()
            self._apply()
        time.sleep(step_s)
        self.end_pulse()
        done.append("relay")
        return done

    def idle(self) -> None:
        """Back to the idle state: no pulse, no technician hold, lights and buzzer off.

        The relay locks unless the fire alarm or an emergency holds it free.
        """
        with self._cond:
            self._pulse_until = None
            self._held = False
            self._apply()
        self._lights_off()

    def fail_safe(self) -> None:
        """After an error in the decision path: end any pulse, lights off; never raises.

        Holds stay as they were (a failed scan does not end a hold).
        """
        try:
            self.end_pulse()
        except Exception:
            logger.exception("cannot move the relay to its idle state")
        try:
            self._lights_off()
        except Exception:
            logger.debug("cannot switch the lights off", exc_info=True)

    def close(self) -> None:
        """Stop: lock the arm (unless held free by the fire alarm or an emergency),
        then release every pin.

        While the fire alarm or an emergency holds the arm free, the relay is
        left driven free: its pin is given up without being reset, and the
        process's exit releases it (see hardware/README.md for what the pin
        does then).
        """
        with self._cond:
            self._pulse_until = None
            self._held = False
            self._apply()
            keep_free = self.fire_alarm or self._emergency
            self._closed = True
            self._cond.notify()
        self._timer.join(1.0)
        if keep_free:
            logger.warning("stopping while the arm is held free (%s): relay left free",
                           ", ".join(self.holds()) or "fire alarm")
        self._lights_off()
        for dev in (self.fire, self.passage, self.green, self.red, self.buzzer):
            if dev is not None:
                dev.close()
        if keep_free:
            self.relay.pin_factory.release_pins(self.relay, self.hw.relay_pin)
        else:
            self.relay.close()

    # -- internals -------------------------------------------------------
    def _apply(self) -> None:
        """Drive the relay by the one rule (call with the lock held)."""
        if self._closed:
            return
        free = (self._pulse_until is not None or self._held or self._emergency
                or self.fire_alarm)
        if free:
            self.relay.on()
        else:
            self.relay.off()

    def _timer_loop(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = [t for t in (self._pulse_until,
                                   self._steps[0][0] if self._steps else None) if t is not None]
                if not due:
                    self._cond.wait()
                    continue
                if min(due) > now:
                    self._cond.wait(min(due) - now)
                    continue
                if self._pulse_until is not None and self._pulse_until <= now:
                    self._pulse_until = None
                    try:
                        self._apply()
                    except Exception:
                        logger.exception("cannot lock the relay at the end of a pulse")
                while self._steps and self._steps[0][0] <= now:
                    _, _, dev, on = heapq.heappop(self._steps)
                    self._switch(dev, on)

    def _signal(self, *, green: bool, beeps: int, on_time: float) -> None:
        """Light green or red for *on_time* and beep *beeps* times (timer thread)."""
        lit, dark = (self.green, self.red) if green else (self.red, self.green)
        beep = BEEP_S * (2 if green else 1)
        with self._cond:
            self._steps.clear()
            now = time.monotonic()
            plan: list[tuple[float, Any, bool]] = []
            if dark is not None:
                plan.append((now, dark, False))
            if lit is not None:
                plan += [(now, lit, True), (now + on_time, lit, False)]
            if self.buzzer is not None:
                for i in range(beeps):
                    t = now + i * (beep + BEEP_S)
                    plan += [(t, self.buzzer, True), (t + beep, self.buzzer, False)]
            for when, dev, on in plan:
                if when <= now:
                    self._switch(dev, on)
                else:
                    self._seq += 1
                    heapq.heappush(self._steps, (when, self._seq, dev, on))
            self._cond.notify()

    @staticmethod
    def _switch(dev: Any, on: bool) -> None:
        """Switch a light or the buzzer; a failure there never stops the gate."""
        try:
            dev.value = on
        except Exception:
            logger.debug("cannot switch a light or the buzzer", exc_info=True)

    def _lights_off(self) -> None:
        with self._cond:
            self._steps.clear()
        for dev in (self.green, self.red, self.buzzer):
            if dev is not None:
                with contextlib.suppress(Exception):
                    dev.off()

    def _passage_seen(self) -> None:
        self._passed.set()

    def _fire_changed(self, active: bool) -> None:
        at = time.time()
        logger.warning("fire alarm %s: arm %s", "ACTIVE" if active else "cleared",
                       "held free" if active else "back to normal")
        with self._cond:
            self._apply()
        if self._on_fire_alarm is not None:
            self._on_fire_alarm(active, at)
