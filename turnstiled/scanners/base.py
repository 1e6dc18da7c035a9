"""What every scanner reader shares: the thread, and the open-read-recover loop.

A reader opens its device, reads it until it fails or is stopped, and
opens it again with exponential backoff. An outage is logged once when it
starts (a warning) and once when the device really works again (data
read, or open for ``STABLE_S``), never once per retry. Subclasses say how
to open, read and close their kind of device.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

FrameSink = Callable[[bytes, float], None]

STABLE_S = 1.0  # a reopened device that stays open this long counts as back


class ScannerThread(ABC):
    """Reads one scanner in a background thread and hands frames to ``on_frame``."""

    kind = "scanner"
    log: ClassVar[logging.Logger] = logging.getLogger(__name__)
    # Errors that mean "the device is gone or unusable": retried quietly.
    device_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)

    def __init__(self, name: str, on_frame: FrameSink, where: str,
                 reopen_backoff: tuple[float, float]) -> None:
        low, high = reopen_backoff
        if not 0 < low <= high:
            raise ValueError("reopen_backoff must be (first, ceiling) with 0 < first <= ceiling")
        self.name = name
        self.on_frame = on_frame
        self.where = where
        self.backoff = reopen_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._last_error: str | None = None
        self._handle: Any = None
        self._outage = False  # a warning was logged and "back" is not yet
        self._delay = low

    @property
    def connected(self) -> bool:
        """True while the device is open and being read."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Why the device was last lost or could not be opened."""
        return self._last_error

    # -- to implement ------------------------------------------------------
    @abstractmethod
    def _open(self) -> Any:
        """Open the device; raise one of ``device_errors`` if it is not there."""

    @abstractmethod
    def _read(self, handle: Any) -> None:
        """Read until stopped (set ``_connected`` once reading); raise when the device fails."""

    @abstractmethod
    def _close(self, handle: Any) -> None:
        """Release the device (never raises)."""

    def _interrupt(self) -> None:  # noqa: B027 - optional hook, most readers poll
        """Wake a blocked read (subclasses that can)."""

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and release the device; RuntimeError if the thread will not die.

        Even then the device is closed (which also ends a grab), so it is
        not left captured by a stuck thread.
        """
        self._stop.set()
        self._interrupt()
        try:
            if self._thread is not None:
                self._thread.join(timeout)
                if self._thread.is_alive():
                    raise RuntimeError(f"{self.kind} scanner {self.name} did not stop "
                                       f"within {timeout}s")
        finally:
            handle = self._handle
            if handle is not None:
                self._close(handle)

    # -- the loop ------------------------------------------------------------
    def _run(self) -> None:
        self._delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                handle = self._open()
            except self.device_errors as exc:
                self._failed(exc, opening=True)
            except Exception as exc:
                self._failed(exc, opening=True, unexpected=True)
            else:
                self._serve(handle)
            if not self._stop.is_set():
                self._stop.wait(self._delay)
                self._delay = min(self._delay * 2, self.backoff[1])

    def _serve(self, handle: Any) -> None:
        """Read an open device until it fails or the reader is stopped, then close it."""
        self._handle = handle
        try:
            self._read(handle)
        except self.device_errors as exc:
            if not self._stop.is_set():
                self._failed(exc, opening=False)
        except Exception as exc:
            self._failed(exc, opening=False, unexpected=True)
        finally:
            self._connected = False
            self._handle = None
            self._close(handle)

    def _failed(self, exc: BaseException, *, opening: bool, unexpected: bool = False) -> None:
        """Record a failure; warn only at the start of an outage, never per retry."""
        self._last_error = str(exc) or type(exc).__name__
        if self._outage:
            self.log.debug("scanner %s still failing: %s", self.name, exc)
            return
        self._outage = True
        if opening:
            self.log.warning("scanner %s: cannot open %s: %s; retrying", self.name,
                             self.where, exc, exc_info=unexpected)
        else:
            self.log.warning("scanner %s lost: %s; reopening", self.name, exc,
                             exc_info=unexpected)
        self.log.debug("scanner %s failure details", self.name, exc_info=exc)

    def _working(self, saw_data: bool, open_for: float) -> None:
        """Call from the read loop: ends an outage once the device really works."""
        if self._outage and (saw_data or open_for >= STABLE_S):
            self._outage = False
            self._last_error = None
            self._delay = self.backoff[0]
            self.log.info("scanner %s back", self.name)

    def _deliver(self, frame: bytes, t: float) -> None:
        """Hand *frame* on; a failing handler must not stop the reader."""
        try:
            self.on_frame(frame, t)
        except Exception:
            self.log.exception("scanner %s: frame handler failed on a %d-byte frame",
                               self.name, len(frame))


def quietly(fn: Callable[[], object], *errors: type[BaseException]) -> None:
    """Call *fn*, ignoring *errors* (closing a device that is already gone)."""
    with contextlib.suppress(*(errors or (OSError,))):
        fn()
