"""Serial barcode scanners through pyserial: a device path or any pyserial URL.

The I/O loop lives here; framing and normalisation are the pure
:mod:`turnstiled.scanners.decode`. A scanner that vanishes (unplugged,
USB reset) is reopened with exponential backoff; that is logged once when
it is lost and once when it is back, never once per retry, even when the
port reopens and fails again at once.
"""

from __future__ import annotations

import logging
import time

import serial

from turnstiled.scanners.base import FrameSink, ScannerThread, quietly
from turnstiled.scanners.decode import TERMINATORS, Framer

logger = logging.getLogger(__name__)

# Longest a read blocks: bounds how long stop() and the idle-gap flush wait.
READ_TIMEOUT_S = 0.05


class SerialScanner(ScannerThread):
    """Reads frames from one serial scanner in a background thread."""

    kind = "serial"

    log = logger
    device_errors = (serial.SerialException, OSError, ValueError)

    def __init__(self, name: str, url: str, on_frame: FrameSink, *, baudrate: int = 9600,
                 bytesize: int = 8, parity: str = "N", stopbits: float = 1,
                 terminator: str = "ANY", idle_gap: float = 0.05, max_frame: int = 512,
                 reopen_backoff: tuple[float, float] = (0.2, 5.0)) -> None:
        _check_settings(baudrate, bytesize, parity, stopbits, terminator, idle_gap)
        super().__init__(name, on_frame, url, reopen_backoff)
        self.url = url
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity,
                         "stopbits": stopbits}
        self.terminator = terminator
        self.idle_gap = idle_gap
        self.max_frame = max_frame  # bytes; see decode.frame_cap

    @property
    def _port(self) -> serial.SerialBase | None:
        """The open port, while there is one."""
        return self._handle

    def _interrupt(self) -> None:
        port = self._handle
        if port is not None:
            quietly(port.cancel_read, AttributeError, OSError, serial.SerialException)

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

    def _close(self, port: serial.SerialBase) -> None:
        quietly(port.close, serial.SerialException, OSError)

    def _read(self, port: serial.SerialBase) -> None:
        self._connected = True
        framer = Framer(self.terminator, self.max_frame)
        opened = last_data = time.monotonic()
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            now = time.monotonic()
            self._working(bool(data), now - opened)
            if data:
                last_data = now
                for frame in framer.feed(data):
                    self._deliver(frame, now)
            elif self.terminator == "NONE" and now - last_data >= self.idle_gap:
                frame = framer.flush()
                if frame:
                    self._deliver(frame, last_data)


def _check_settings(baudrate: int, bytesize: int, parity: str, stopbits: float,
                    terminator: str, idle_gap: float) -> None:
    """ValueError now for settings that would only fail later, in the thread.

    (``reopen_backoff`` is checked by :class:`~turnstiled.scanners.base.ScannerThread`.)
    """
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
