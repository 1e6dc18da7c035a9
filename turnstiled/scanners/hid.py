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

from turnstiled.scanners.base import FrameSink, ScannerThread
from turnstiled.scanners.keymaps import KeyDecoder

logger = logging.getLogger(__name__)

# A reopened device counts as back once it sends events or stays up this long.
STABLE_S = 1.0
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

    def __init__(self, name: str, device: str, on_frame: FrameSink, *, layout: str = "us",
                 grab: bool = True, reopen_backoff: tuple[float, float] = (0.2, 5.0),
                 open_device: Callable[[str], InputDeviceLike] = open_input) -> None:
        low, high = reopen_backoff
        if not 0 < low <= high:
            raise ValueError("reopen_backoff must be (first, ceiling) with 0 < first <= ceiling")
        super().__init__(name, on_frame, reopen_backoff)
        self.device = device
        self.decoder = KeyDecoder(layout)  # ValueError for an unknown layout, now
        self.grab = grab
        self.open_device = open_device
        self._outage = False  # a warning was logged and "back" is not yet
        self._delay = low
        self._dev: InputDeviceLike | None = None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and release the device; RuntimeError if the thread will not die.

        Even then the device is closed, which also ends the grab, so the
        keyboard is not left captured by a stuck thread.
        """
        try:
            super().stop(timeout)
        finally:
            dev = self._dev
            if dev is not None:
                with contextlib.suppress(OSError):
                    dev.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                dev = self.open_device(self.device)
            except OSError as exc:
                self._failed(exc, opening=True)
            except Exception as exc:
                self._failed(exc, opening=True, unexpected=True)
            else:
                self._serve(dev)
            if not self._stop.is_set():
                self._stop.wait(self._delay)
                self._delay = min(self._delay * 2, self.backoff[1])

    def _serve(self, dev: InputDeviceLike) -> None:
        """Read an open device until it fails or the reader is stopped, then close it."""
        self._dev = dev
        try:
            self._read(dev)
        except OSError as exc:  # ENODEV when unplugged; EBUSY if grabbed elsewhere
            if not self._stop.is_set():
                self._failed(exc, opening=False)
        except Exception as exc:
            self._failed(exc, opening=False, unexpected=True)
        finally:
            self._connected = False
            self._dev = None
            self.decoder.reset()
            with contextlib.suppress(OSError):
                dev.close()

    def _read(self, dev: InputDeviceLike) -> None:
        grabbed = False
        try:
            if self.grab:
                dev.grab()
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
                if self._outage and (events or now - opened >= STABLE_S):
                    self._back()
                self.feed(events, now)
        finally:
            if grabbed:
                with contextlib.suppress(OSError):
                    dev.ungrab()

    def feed(self, events: Iterable[evdev.InputEvent], now: float) -> None:
        """Decode *events* read at *now* and hand each completed barcode on."""
        for event in events:
            text = self.decoder.feed(event)
            if text is None:
                continue
            raw = text.encode("utf-8")
            try:
                self.on_frame(raw, now)
            except Exception:
                logger.exception("scanner %s: frame handler failed on a %d-byte frame",
                                 self.name, len(raw))

    def _failed(self, exc: BaseException, *, opening: bool, unexpected: bool = False) -> None:
        """Record a failure; warn only at the start of an outage, never per retry."""
        self._last_error = str(exc) or type(exc).__name__
        if self._outage:
            logger.debug("scanner %s still failing: %s", self.name, exc)
            return
        self._outage = True
        if opening:
            logger.warning("scanner %s: cannot open %s: %s; retrying", self.name,
                           self.device, exc, exc_info=unexpected)
        else:
            logger.warning("scanner %s lost: %s; reopening", self.name, exc,
                           exc_info=unexpected)
        logger.debug("scanner %s failure details", self.name, exc_info=exc)

    def _back(self) -> None:
        """The reopened device works: say so once and start the next backoff afresh."""
        self._outage = False
        self._last_error = None
        self._delay = self.backoff[0]
        logger.info("scanner %s back", self.name)
