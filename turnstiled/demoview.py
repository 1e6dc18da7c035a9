"""What ``turnstiled-demo`` shows: a live panel on a terminal, or one line per scan.

The panel fits the terminal it runs in (80x24 and up): the gate's lamps and
relay, the vivenu sync, tickets worth trying, and the newest decisions,
ignored repeats included. The bottom few lines stay free for the prompt.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections import deque
from typing import Any

from turnstiled.cache import Cache
from turnstiled.pipeline import Outcome

PROMPT_LINES = 4  # rows under the panel for the prompt and its echo


class View:
    """Collects the gate's decisions and repeats; paints them or prints them."""

    def __init__(self, hints: list[str], legend: list[tuple[str, str]], live: bool,
                 emulator: Any = None) -> None:
        self.daemon: Any = None  # the gate shown: set once it is built with our callbacks
        self.hints = hints
        self.legend = legend
        self.live = live
        self.emulator = emulator
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.handled = 0  # decisions plus ignored repeats
        self.events: deque[str] = deque(maxlen=50)
        self._size = (0, 0)
        self.painted = threading.Event()

    # -- what happened ---------------------------------------------------------
    def wait_handled(self, count: int, timeout: float) -> int:
        """Wait until *count* frames were decided or ignored as repeats."""
        with self.lock:
            self.lock.wait_for(lambda: self.handled >= count, timeout)
            return self.handled

    def outcome(self, o: Outcome) -> None:
        d = o.evaluation.decision
        verdict = "GRANT" if d.granted else "DENY "
        self._add(f"#{o.scan_id:<5} {verdict} {o.evaluation.direction:<3} "
                  f"{o.evaluation.barcode[:16]:<16} {d.reason}: {d.detail}",
                  f"{verdict} {o.evaluation.barcode}  {d.reason}: {d.detail}")

    def repeat(self, code: str, scanner: str) -> None:
        window = self.daemon.cfg.gate.debounce_s
        way = next((s.direction for s in self.daemon.cfg.scanner if s.name == scanner), "")
        self._add(f"{'':6} ----- {way:<3} {code[:16]:<16} repeat within {window:g} s: "
                  "ignored", f"----- {code}  repeat within the debounce window: ignored")

    def _add(self, panel_line: str, plain_line: str) -> None:
        with self.lock:
            self.handled += 1
            self.events.appendleft(panel_line)
            self.lock.notify_all()
        if not self.live:
            print(plain_line, flush=True)

    # -- the panel ---------------------------------------------------------------
    def synced(self) -> str:
        try:
            cache = Cache(self.daemon.cfg.paths.cache_db, readonly=True)
        except (FileNotFoundError, OSError):
            return "not synced yet"
        try:
            row = next((r for r in cache.sources() if r["source"] == "vivenu"), None)
        finally:
            cache.close()
        if row is None or not row.get("last_sync"):
            return "not synced yet"
        err = f", ERROR {row['last_error']}" if row.get("last_error") else ""
        uploaded = len(self.emulator.received("scan")) if self.emulator else 0
        return (f"{row['tickets']} tickets, synced {int(time.time() - row['last_sync'])} s ago, "
                f"{uploaded} scans uploaded{err}")

    def panel(self, width: int, height: int) -> list[str]:
        g = self.daemon.gate.state()
        lamp = lambda on, name: f"[{name.upper()}]" if on else f" {name} "  # noqa: E731
        col = max(20, width // 2)
        half = (len(self.legend) + 1) // 2
        legend = []
        for k in range(half):
            left = self._ticket(*self.legend[k], col - 1).ljust(col)
            right = self._ticket(*self.legend[k + half], col - 1) if k + half < len(
                self.legend) else ""
            legend.append(left + right)
        lines = [
            "turnstiled demo: mock GPIO, simulated scanners, vivenu emulator, local list",
            *self.hints,
            f"  RELAY {g['relay'].upper():<9} {lamp(g['green'], 'green')} "
            f"{lamp(g['red'], 'red')} {lamp(g['buzzer'], 'buzzer')}"
            f"{'  FIRE ALARM' if g['fire_alarm'] else ''}",
            f"  vivenu: {self.synced()}",
            "tickets to try (this gate admits zone GA):",
            *legend,
            "last decisions, newest first:",
        ]
        with self.lock:
            events = list(self.events)
        room = max(0, height - len(lines) - 1)
        lines += [f"  {e}" for e in events[:room]]
        lines += [""] * (height - 1 - len(lines))
        lines.append("-" * (width - 1))
        return [ln[:width - 1] for ln in lines[:height]]

    @staticmethod
    def _ticket(code: str, what: str, width: int) -> str:
        return f"  {code:<12} {what}"[:width]

    def _height(self, rows: int) -> int:
        return max(8, rows - PROMPT_LINES)

    def run(self) -> None:
        """Repaint the panel until stopped; the prompt scrolls in the rows below it."""
        out = sys.stdout
        while True:
            size = shutil.get_terminal_size()
            width, rows = size.columns, size.lines
            height = self._height(rows)
            buf = ["\0337"]
            if (width, rows) != self._size:  # first paint, or the terminal was resized
                self._size = (width, rows)
                buf = [f"\033[2J\033[{height + 1};{rows}r\033[{rows};1H\0337"]
            for i, line in enumerate(self.panel(width, height)):
                buf.append(f"\033[{i + 1};1H\033[2K{line}")
            buf.append("\0338")
            out.write("".join(buf))
            out.flush()
            self.painted.set()
            if self.stop.wait(0.1):
                return

    def restore(self) -> None:
        if self.live:
            rows = shutil.get_terminal_size().lines
            sys.stdout.write(f"\033[r\033[{rows};1H\n")
            sys.stdout.flush()
