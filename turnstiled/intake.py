"""What waits for the decision worker: each scanner's frames, and gate events.

Each scanner has its own bounded queue (``PER_SCANNER`` frames; when it is
full the oldest frame goes), so a flooding scanner cannot bury another
one's codes. A frame read longer ago than ``max_age_s`` is dropped when it
comes up, never decided: a code must not open the gate long after it was
read. Time the worker spends on a deliberate pause (a configuration
reload, see :meth:`Intake.paused`) does not age the frames waiting. Gate
events (the fire alarm, a reload) always come first and are never dropped.
Drops are counted per kind for ``status``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PER_SCANNER = 256


@dataclass(frozen=True, slots=True)
class Frame:
    """One raw frame and where and when it was read (``t_read``: monotonic)."""

    raw: bytes
    scanner: str
    direction: str
    t_read: float


class Intake:
    """Bounded per-scanner frame queues plus an event queue, for one consumer."""

    def __init__(self, max_age_s: float, per_scanner: int = PER_SCANNER) -> None:
        self.max_age_s = max_age_s
        self.per_scanner = per_scanner
        self._cond = threading.Condition()
        self._frames: dict[str, deque[tuple[Frame, float]]] = {}  # frame, pause credit
        self._credit = 0.0  # seconds of deliberate pauses so far
        self._events: deque[Any] = deque()
        self.dropped = {"stale": 0, "overflow": 0}

    def put_frame(self, frame: Frame) -> None:
        with self._cond:
            q = self._frames.get(frame.scanner)
            if q is None:
                q = self._frames[frame.scanner] = deque()
            if len(q) >= self.per_scanner:
                q.popleft()
                self.dropped["overflow"] += 1
            q.append((frame, self._credit))
            self._cond.notify()

    def put_event(self, item: Any) -> None:
        with self._cond:
            self._events.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> Any:
        """The next event, else the oldest fresh frame; None after *timeout*."""
        deadline: float | None = None
        with self._cond:
            while True:
                if self._events:
                    return self._events.popleft()
                now = time.monotonic()  # one clock read per look, shared with the age check
                frame = self._oldest_fresh(now)
                if frame is not None:
                    return frame
                if deadline is None:
                    deadline = now + timeout
                left = deadline - now
                if left <= 0:
                    return None
                self._cond.wait(left)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A deliberate pause of the consumer: frames waiting meanwhile do not age."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._credit += time.monotonic() - t0

    def qsize(self) -> int:
        with self._cond:
            return len(self._events) + sum(len(q) for q in self._frames.values())

    def _oldest_fresh(self, now: float) -> Frame | None:
        while True:
            heads = [q for q in self._frames.values() if q]
            if not heads:
                return None
            q = min(heads, key=lambda q: q[0][0].t_read)
            frame, credit = q.popleft()
            if now - frame.t_read - (self._credit - credit) <= self.max_age_s:
                return frame
            self.dropped["stale"] += 1
