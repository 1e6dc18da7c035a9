"""The wall clock of a gate without a real-time clock: synchronised or not, and its steps.

A Raspberry Pi has no RTC: until NTP (or fake-hwclock's guess) sets it, the
wall clock may be years off, and the sync may then step it by years. All
waiting (debounce, relay pulses, passage waits, sync and upload
schedules) uses the monotonic clock, which never steps; the wall clock
only stamps scans and checks tickets' entry windows, under the
``[gate] unsynced_clock`` policy while it is known not to be synchronised.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
STEP_S = 2.0  # a jump of the wall clock against the monotonic one counts as a step


def _adjtimex() -> bool | None:
    """The kernel's word (adjtimex, read-only); None where it may not be asked (seccomp)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None  # EPERM under the unit's @clock system-call filter
    return state != TIME_ERROR


def _timedatectl() -> bool | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([exe, "show", "--property=NTPSynchronized", "--value"],  # noqa: S603
                             capture_output=True, text=True, timeout=5, check=False)
        if out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
            return out.stdout.strip() == "yes"
    return None


def synchronised() -> bool | None:
    """True or False when known (adjtimex, else timedatectl); None when it cannot be told."""
    state = _adjtimex()
    return state if state is not None else _timedatectl()


def describe(state: bool | None) -> str:
    return {True: "synchronised", False: "NOT synchronised", None: "unknown"}[state]


@dataclass
class Step:
    """One step of the wall clock: when (wall time after it) and by how much."""

    at: float
    delta_s: float


class StepWatch:
    """Notices steps of the wall clock by comparing it with the monotonic clock."""

    def __init__(self, threshold_s: float = STEP_S, *,
                 wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.threshold_s = threshold_s
        self._wall, self._mono = wall, mono
        self._offset = wall() - mono()
        self.last: Step | None = None

    def check(self) -> Step | None:
        """A step since the last call, or None (call it every second or so)."""
        wall = self._wall()
        offset = wall - self._mono()
        delta = offset - self._offset
        self._offset = offset
        if abs(delta) < self.threshold_s:
            return None
        self.last = Step(wall, delta)
        return self.last
