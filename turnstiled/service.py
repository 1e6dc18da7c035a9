"""turnstiled under systemd: the process's life, and the main thread's rounds.

:func:`main` is the ``turnstiled`` command: it loads the configuration
and refuses a bad one itself (one line, exit 78, ``STATUS=``), or with
``--check`` only says whether it would. :func:`run` starts the
:class:`~turnstiled.daemon.Daemon`, says ``READY=1``, turns SIGTERM/SIGINT
into its bounded stop and SIGHUP into a reload, and wakes every second (or
every half watchdog interval) to call :meth:`Rounds.tick`:

- ``WATCHDOG=1`` only while every loop shows progress;
- ``STATUS=`` in one line whenever it changes, e.g.
  ``online · 48,210 tickets · synced 4 s ago · backlog 0``;
- the wall clock: a step (an NTP sync after a boot without RTC, a
  technician's ``date``) is logged, journaled and an alarm for an hour;
  whether the clock is synchronised is asked every minute and handed to
  the rules (``[gate] unsynced_clock``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from gpiozero.exc import GPIOZeroError
from gpiozero.pins import Factory

from turnstiled import clock, figures, logs, preflight, sdnotify
from turnstiled import config as config_mod
from turnstiled import reload as reload_mod
from turnstiled.config import Config
from turnstiled.daemon import Daemon
from turnstiled.errors import ConfigError
from turnstiled.timeutil import ago, iso

logger = logging.getLogger(__name__)

EX_CONFIG = 78  # sysexits: configuration error (systemd: RestartPreventExitStatus)
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


def run(cfg: Config, pin_factory: Factory | None = None) -> int:
    """Run until SIGTERM/SIGINT; the process's whole life under systemd."""
    wake = threading.Event()
    stop, hup = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            hup.set()
        else:
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            stop.set()
        wake.set()

    try:
        daemon = Daemon(cfg, pin_factory)
    except (GPIOZeroError, OSError) as exc:
        # GPIO busy or not there yet (boot), a device's permissions: one line,
        # and systemd tries again (exit 1; the configuration itself is fine).
        logger.error("cannot start: %s: %s", type(exc).__name__, exc)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        daemon.start()
        sdnotify.notify(f"READY=1\nSTATUS=gate {cfg.gate.id} ready")
        interval = sdnotify.watchdog_interval()
        rounds = Rounds(daemon, interval)
        rounds.tick()
        while not stop.is_set():
            wake.wait(min(interval or 1.0, 1.0))
            wake.clear()
            if stop.is_set():
                break
            if hup.is_set():
                hup.clear()
                reload_mod.from_file(daemon)
            rounds.tick()
    finally:
        sdnotify.notify("STOPPING=1")
        daemon.stop()
    return 0


def refuse(message: str) -> int:
    """Stop start-up: one line on stderr (the journal under systemd), exit 78."""
    print(f"turnstiled: {message}", file=sys.stderr)
    sdnotify.notify(f"STATUS=refused to start: {message}")
    return EX_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnstiled", description="ticket turnstile daemon")
    parser.add_argument("--config", help=f"TOML file (default ${config_mod.ENV_VAR} "
                        f"or {config_mod.DEFAULT_PATH})")
    parser.add_argument("--check", action="store_true",
                        help="refuse (exit 78, one line) what the daemon would refuse, and exit")
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        return refuse(str(exc))
    found = preflight.problems(cfg, checking=args.check)
    if found:
        return refuse(found[0])
    if args.check:
        for line in preflight.warnings(cfg):
            print(f"turnstiled: warning: {line}", file=sys.stderr)
        print(f"turnstiled: {cfg.path}: configuration OK")
        return 0
    logs.setup(cfg.log)
    return run(cfg)
