"""USB HID keyboard-wedge scanners through evdev, grabbed so the console never sees them.

The device is a path (``/dev/input/event3``, ``/dev/input/by-id/...``) or
``name:SUBSTRING`` matched against the device names. It is grabbed
(EVIOCGRAB) while read and always released in a ``finally``. Unplugging
is noticed (ENODEV), logged once, and the device is looked for again with
backoff until it is back. Key events become text in the pure
:class:`~turnstiled.scanners.keymaps.KeyDecoder`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Callable
from typing import Any

import evdev

from turnstiled.scanners.base import FrameSink, ScannerThread
from turnstiled.scanners.keymaps import KeyDecoder

logger = logging.getLogger(__name__)

def find_device(spec: str) -> str:
    """The event device path for *spec* (a path, or ``name:SUBSTRING``)."""
    if not spec.startswith("name:"):
        return spec
    wanted = spec[5:].lower()
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError:
            continue
        try:
            if wanted in dev.name.lower():
                return path
        finally:
            dev.close()
    raise FileNotFoundError(f"no input device named like {spec[5:]!r}")


def open_input(spec: str) -> Any:
    """Open the evdev device *spec* names (the default ``open_device``)."""
    return evdev.InputDevice(find_device(spec))


class HidScanner(ScannerThread):
    """Reads barcodes typed by one HID scanner in a background thread."""

    kind = "hid"

    def __init__(self, name: str, device: str, on_frame: FrameSink, *, layout: str = "us",
                 grab: bool = True, reopen_backoff: tuple[float, float] = (0.2, 5.0),
                 open_device: Callable[[str], Any] = open_input) -> None:
        super().__init__(name, on_frame, reopen_backoff)
        self.device = device
        self.decoder = KeyDecoder(layout)
        self.grab = grab
        self.open_device = open_device

    def _run(self) -> None:
        delay = self.backoff[0]
        lost_logged = False
        while not self._stop.is_set():
            try:
                dev = self.open_device(self.device)
            except OSError as exc:
                self._last_error = str(exc)
                if not lost_logged:
                    logger.warning("scanner %s: cannot open %s: %s; retrying", self.name,
                                   self.device, exc)
                    lost_logged = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if lost_logged:
                logger.info("scanner %s back on %s", self.name, self.device)
            lost_logged, delay = False, self.backoff[0]
            try:
                self._read(dev)
            except OSError as exc:
                self._last_error = str(exc)
                if not self._stop.is_set():
                    logger.warning("scanner %s lost: %s; waiting for it", self.name, exc)
                    lost_logged = True
            finally:
                self._connected = False
                self.decoder.reset()
                with contextlib.suppress(OSError):
                    dev.close()

    def _read(self, dev: Any) -> None:
        grabbed = False
        try:
            if self.grab:
                dev.grab()
                grabbed = True
            self._connected = True
            self._last_error = None
            while not self._stop.is_set():
                ready, _, _ = select.select([dev.fd], [], [], 0.1)
                if not ready:
                    continue
                try:
                    events = list(dev.read())
                except BlockingIOError:
                    continue
                now = time.monotonic()
                for event in events:
                    text = self.decoder.feed(event)
                    if text is not None:
                        self.on_frame(text.encode("utf-8"), now)
        finally:
            if grabbed:
                with contextlib.suppress(OSError):
                    dev.ungrab()
