"""USB HID keyboard-wedge scanners through evdev, grabbed so the console never sees them.

The device is a path (``/dev/input/event3``, ``/dev/input/by-id/...``) or
``name:SUBSTRING`` matched against the device names. It is grabbed
(EVIOCGRAB) while read and always released in a ``finally``. Unplugging
is noticed (ENODEV), logged once, and the device is looked for again with
backoff until it is back, which is logged once too. Key events become text
in the pure :class:`~turnstiled.scanners.keymaps.KeyDecoder`; how the
device is opened is a seam (``open_device``) so the loop can be tested
without ``/dev/uinput``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import evdev

from turnstiled.scanners.base import FrameSink, ScannerThread, quietly
from turnstiled.scanners.keymaps import KeyDecoder

logger = logging.getLogger(__name__)

# Longest a select() waits: bounds how long stop() takes.
POLL_S = 0.05


class InputDeviceLike(Protocol):
    """What the reader needs of an ``evdev.InputDevice``."""

    fd: int

    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def read(self) -> Iterable[evdev.InputEvent]: ...
    def close(self) -> None: ...


def find_device(spec: str) -> str:
    """The event device path for *spec* (a path, or ``name:SUBSTRING``, case-insensitive)."""
    if not spec.startswith("name:"):
        return spec
    wanted = spec[5:].lower()
    for path in sorted(evdev.list_devices()):
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


def open_input(spec: str) -> InputDeviceLike:
    """Open the evdev device *spec* names (the default ``open_device``)."""
    return evdev.InputDevice(find_device(spec))


class HidScanner(ScannerThread):
    """Reads barcodes typed by one HID scanner in a background thread."""

    kind = "hid"

    log = logger

    def __init__(self, name: str, device: str, on_frame: FrameSink, *, layout: str = "us",
                 grab: bool = True, reopen_backoff: tuple[float, float] = (0.2, 5.0),
                 open_device: Callable[[str], InputDeviceLike] = open_input) -> None:
        super().__init__(name, on_frame, device, reopen_backoff)
        self.device = device
        self.decoder = KeyDecoder(layout)  # ValueError for an unknown layout, now
        self.grab = grab
        self.open_device = open_device

    def _open(self) -> InputDeviceLike:
        return self.open_device(self.device)

    def _close(self, dev: InputDeviceLike) -> None:
        self.decoder.reset()  # a half-typed code dies with the device
        quietly(dev.close)

    def _read(self, dev: InputDeviceLike) -> None:
        grabbed = False
        try:
            if self.grab:
                dev.grab()  # EBUSY if grabbed elsewhere: retried like a lost device
                grabbed = True
            self._connected = True
            opened = time.monotonic()
            while not self._stop.is_set():
                ready, _, _ = select.select([dev.fd], [], [], POLL_S)
                events: list[evdev.InputEvent] = []
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        events = list(dev.read())  # OSError ENODEV once unplugged
                now = time.monotonic()
                # Readable is not enough: an unplugged device is readable too.
                self._working(bool(events), now - opened)
                self.feed(events, now)
        finally:
            if grabbed:
                quietly(dev.ungrab)

    def feed(self, events: Iterable[evdev.InputEvent], now: float) -> None:
        """Decode *events* read at *now* and hand each completed barcode on."""
        for event in events:
            text = self.decoder.feed(event)
            if text is None:
                continue
            self._deliver(text.encode("utf-8"), now)
