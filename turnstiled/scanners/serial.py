"""Serial barcode scanners through pyserial: a device path or any pyserial URL.

The I/O loop lives here; framing and normalisation are the pure
:mod:`turnstiled.scanners.decode`. A scanner that vanishes (unplugged,
USB reset) is reopened with exponential backoff; that is logged once when
it is lost and once when it is back, never once per retry, even when the
port reopens and fails again at once.
"""

from __future__ import annotations

import contextlib
import logging
import time

import serial

from turnstiled.scanners.base import FrameSink, ScannerThread
from turnstiled.scanners.decode import TERMINATORS, Framer

logger = logging.getLogger(__name__)

# A reopened port counts as back once it delivers data or stays up this long.
STABLE_S = 1.0
# Longest a read blocks: bounds how long stop() and the idle-gap flush wait.
READ_TIMEOUT_S = 0.05


class SerialScanner(ScannerThread):
    """Reads frames from one serial scanner in a background thread."""

    kind = "serial"

    def __init__(self, name: str, url: str, on_frame: FrameSink, *, baudrate: int = 9600,
                 bytesize: int = 8, parity: str = "N", stopbits: float = 1,
                 terminator: str = "CR", idle_gap: float = 0.05,
                 reopen_backoff: tuple[float, float] = (0.2, 5.0)) -> None:
        _check_settings(baudrate, bytesize, parity, stopbits, terminator, idle_gap,
                        reopen_backoff)
        super().__init__(name, on_frame, reopen_backoff)
        self.url = url
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity,
                         "stopbits": stopbits}
        self.terminator = terminator
        self.idle_gap = idle_gap
        self._port: serial.SerialBase | None = None
        self._outage = False  # a warning was logged and "back" is not yet
        self._delay = reopen_backoff[0]

    def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and close the port; RuntimeError if the thread will not die.

        Even then the port is closed, so the device is released; the stuck
        thread finds it closed and ends once it gets back to reading.
        """
        try:
            super().stop(timeout)
        finally:
            port = self._port
            if port is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()

    def _interrupt(self) -> None:
        port = self._port
        if port is not None:
            with contextlib.suppress(AttributeError, OSError, serial.SerialException):
                port.cancel_read()

    def _open(self) -> serial.SerialBase:
        port = serial.serial_for_url(self.url, do_not_open=True)
        port.baudrate = self.settings["baudrate"]
        port.bytesize = self.settings["bytesize"]
        port.parity = self.settings["parity"]
        port.stopbits = self.settings["stopbits"]
        port.timeout = (min(READ_TIMEOUT_S, self.idle_gap / 2) if self.terminator == "NONE"
                        else READ_TIMEOUT_S)
        port.open()
        return port

    def _run(self) -> None:
        self._delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self._failed(exc, opening=True)
            except Exception as exc:
                self._failed(exc, opening=True, unexpected=True)
            else:
                self._serve(port)
            if not self._stop.is_set():
                self._stop.wait(self._delay)
                self._delay = min(self._delay * 2, self.backoff[1])

    def _serve(self, port: serial.SerialBase) -> None:
        """Read an open port until it fails or the reader is stopped, then close it."""
        self._port = port
        self._connected = True
        try:
            self._read_loop(port)
        except (serial.SerialException, OSError) as exc:
            if not self._stop.is_set():
                self._failed(exc, opening=False)
        except Exception as exc:
            self._failed(exc, opening=False, unexpected=True)
        finally:
            self._connected = False
            self._port = None
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def _failed(self, exc: BaseException, *, opening: bool, unexpected: bool = False) -> None:
        """Record a failure; warn only at the start of an outage, never per retry."""
        self._last_error = str(exc) or type(exc).__name__
        if self._outage:
            logger.debug("scanner %s still failing: %s", self.name, exc)
            return
        self._outage = True
        if opening:
            logger.warning("scanner %s: cannot open %s: %s; retrying", self.name, self.url,
                           exc, exc_info=unexpected)
        else:
            logger.warning("scanner %s lost: %s; reopening", self.name, exc,
                           exc_info=unexpected)
        logger.debug("scanner %s failure details", self.name, exc_info=exc)

    def _back(self) -> None:
        """The reopened port works: say so once and start the next outage's backoff afresh."""
        self._outage = False
        self._last_error = None
        self._delay = self.backoff[0]
        logger.info("scanner %s back", self.name)

    def _read_loop(self, port: serial.SerialBase) -> None:
        framer = Framer(self.terminator)
        opened = last_data = time.monotonic()
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if self._outage and (data or now - opened >= STABLE_S):
                self._back()
            if data:
                last_data = now
                for frame in framer.feed(data):
                    self._deliver(frame, now)
            elif self.terminator == "NONE" and now - last_data >= self.idle_gap:
                frame = framer.flush()
                if frame:
                    self._deliver(frame, last_data)

    def _deliver(self, frame: bytes, t: float) -> None:
        """Hand *frame* on; a failing handler must not stop the reader."""
        try:
            self.on_frame(frame, t)
        except Exception:
            logger.exception("scanner %s: frame handler failed on a %d-byte frame",
                             self.name, len(frame))


def _check_settings(baudrate: int, bytesize: int, parity: str, stopbits: float,
                    terminator: str, idle_gap: float,
                    reopen_backoff: tuple[float, float]) -> None:
    """ValueError now for settings that would only fail later, in the thread."""
    if terminator not in TERMINATORS:
        raise ValueError(f"terminator must be one of {', '.join(TERMINATORS)}, "
                         f"not {terminator!r}")
    if baudrate <= 0:
        raise ValueError(f"baudrate must be positive, not {baudrate}")
    if bytesize not in serial.SerialBase.BYTESIZES:
        raise ValueError(f"bytesize must be one of {serial.SerialBase.BYTESIZES}")
    if parity not in serial.SerialBase.PARITIES:
        raise ValueError(f"parity must be one of {', '.join(serial.SerialBase.PARITIES)}")
    if stopbits not in serial.SerialBase.STOPBITS:
        raise ValueError(f"stopbits must be one of {serial.SerialBase.STOPBITS}")
    if idle_gap <= 0:
        raise ValueError("idle_gap must be positive")
    low, high = reopen_backoff
    if not 0 < low <= high:
        raise ValueError("reopen_backoff must be (first, ceiling) with 0 < first <= ceiling")
