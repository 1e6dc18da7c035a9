"""Serial barcode scanners through pyserial: a device path or any pyserial URL.

The I/O loop lives here; framing and normalisation are the pure
:mod:`turnstiled.scanners.decode`. A scanner that vanishes (unplugged,
USB reset) is reopened with exponential backoff; that is logged once when
it is lost and once when it is back, never once per retry.
"""

from __future__ import annotations

import contextlib
import logging
import time

import serial

from turnstiled.scanners.base import FrameSink, ScannerThread
from turnstiled.scanners.decode import Framer

logger = logging.getLogger(__name__)

class SerialScanner(ScannerThread):
    """Reads frames from one serial scanner in a background thread."""

    kind = "serial"

    def __init__(self, name: str, url: str, on_frame: FrameSink, *, baudrate: int = 9600,
                 bytesize: int = 8, parity: str = "N", stopbits: float = 1,
                 terminator: str = "CR", idle_gap: float = 0.05,
                 reopen_backoff: tuple[float, float] = (0.2, 5.0)) -> None:
        super().__init__(name, on_frame, reopen_backoff)
        self.url = url
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity,
                         "stopbits": stopbits}
        self.terminator = terminator
        self.idle_gap = idle_gap
        self._port: serial.SerialBase | None = None

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
        port.timeout = min(0.05, self.idle_gap) if self.terminator == "NONE" else 0.1
        port.open()
        return port

    def _run(self) -> None:
        delay = self.backoff[0]
        lost_logged = False
        while not self._stop.is_set():
            try:
                self._port = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self._last_error = str(exc)
                if not lost_logged:
                    logger.warning("scanner %s: cannot open %s: %s; retrying", self.name,
                                   self.url, exc)
                    lost_logged = True
                else:
                    logger.debug("scanner %s: reopen failed", self.name, exc_info=True)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if lost_logged:
                logger.info("scanner %s back on %s", self.name, self.url)
            lost_logged = False
            delay = self.backoff[0]
            self._connected = True
            self._last_error = None
            try:
                self._read_loop(self._port)
            except (serial.SerialException, OSError) as exc:
                self._last_error = str(exc)
                if not self._stop.is_set():
                    logger.warning("scanner %s lost: %s; reopening", self.name, exc)
                    lost_logged = True
            finally:
                self._connected = False
                with contextlib.suppress(serial.SerialException, OSError):
                    self._port.close()
                self._port = None

    def _read_loop(self, port: serial.SerialBase) -> None:
        framer = Framer(self.terminator)
        last_data = time.monotonic()
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if data:
                last_data = now
                for frame in framer.feed(data):
                    self.on_frame(frame, now)
            elif self.terminator == "NONE" and now - last_data >= self.idle_gap:
                frame = framer.flush()
                if frame:
                    self.on_frame(frame, now)
