"""The main thread's rounds under systemd: watchdog, the ``STATUS=`` line, the wall clock.

:func:`turnstiled.daemon.run` wakes every second (or every half watchdog
interval) and calls :meth:`Rounds.tick`:

- ``WATCHDOG=1`` only while every loop shows progress;
- ``STATUS=`` in one line whenever it changes, e.g.
  ``online · 48,210 tickets · synced 4 s ago · backlog 0``;
- the wall clock: a step (an NTP sync after a boot without RTC, a
  technician's ``date``) is logged, journaled and an alarm for an hour;
  whether the clock is synchronised is asked every minute and handed to
  the rules (``[gate] unsynced_clock``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from turnstiled import clock, figures, sdnotify
from turnstiled.timeutil import ago, iso

if TYPE_CHECKING:
    from turnstiled.daemon import Daemon

logger = logging.getLogger(__name__)

CLOCK_CHECK_S = 60.0
STEP_ALARM_S = 3600.0


def status_line(state: str, figs: dict[str, Any], now: float) -> str:
    """``online · 48,210 tickets · synced 4 s ago · backlog 0`` from :func:`figures.read`."""
    sources = figs.get("sources", [])
    tickets = sum(int(s.get("tickets") or 0) for s in sources)
    synced = [s["last_sync"] for s in sources if s.get("last_sync") is not None]
    backlog = sum(int(b.get("pending") or 0) for b in figs.get("backlog", {}).values())
    parts = [state, f"{tickets:,} tickets"]
    if any(s["source"] != "local" for s in sources) or synced:
        parts.append(f"synced {ago(max(synced), now)}" if synced else "never synced")
    parts.append(f"backlog {backlog:,}")
    return " · ".join(parts)


class Rounds:
    """What the main thread does between two signals."""

    def __init__(self, daemon: Daemon, watchdog_interval: float | None,
                 steps: clock.StepWatch | None = None) -> None:
        self.daemon = daemon
        self.watchdog_interval = watchdog_interval
        self.steps = steps or clock.StepWatch()
        self._next_clock_check = 0.0
        self._step_alarm_until = 0.0
        self._status = ""

    def tick(self) -> None:
        self._watchdog()
        self._clock()
        self._status_line()

    def _watchdog(self) -> None:
        stale = self.daemon.stale_loops()
        if self.watchdog_interval is not None and not stale:
            sdnotify.notify("WATCHDOG=1")
        elif stale:
            logger.warning("loop(s) not progressing: %s; withholding watchdog",
                           ", ".join(stale))

    def _clock(self) -> None:
        d = self.daemon
        mono = time.monotonic()
        step = self.steps.check()
        if step is not None:
            logger.warning("the wall clock stepped by %+.1f s (now %s); waits and schedules "
                           "use the monotonic clock", step.delta_s, iso(step.at))
            d.journal_event("clock_step", f"{step.delta_s:+.1f} s")
            d.clock_alarm = f"stepped {step.delta_s:+.0f} s at {iso(step.at)}"
            self._step_alarm_until = mono + STEP_ALARM_S
        elif d.clock_alarm is not None and mono > self._step_alarm_until:
            d.clock_alarm = None
        if mono >= self._next_clock_check:
            self._next_clock_check = mono + CLOCK_CHECK_S
            state = clock.synchronised()
            if state != d.clock_synced:
                log = logger.warning if state is False else logger.info
                log("the wall clock is %s", clock.describe(state))
            d.clock_synced = state

    def _status_line(self) -> None:
        d = self.daemon
        try:
            figs = figures.stored(d.cfg, counts=False)
        except Exception:  # a busy or odd database must not stop the rounds
            logger.debug("status figures unavailable", exc_info=True)
            return
        line = status_line(d.state_word(), figs, time.time())
        if line != self._status:
            self._status = line
            sdnotify.notify(f"STATUS={line}")
