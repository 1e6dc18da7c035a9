"""What every scanner reader shares: a thread, a stop signal, connection state."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

FrameSink = Callable[[bytes, float], None]


class ScannerThread(ABC):
    """Reads one scanner in a background thread and hands frames to ``on_frame``."""

    kind = "scanner"

    def __init__(self, name: str, on_frame: FrameSink,
                 reopen_backoff: tuple[float, float]) -> None:
        self.name = name
        self.on_frame = on_frame
        self.backoff = reopen_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._last_error: str | None = None

    @property
    def connected(self) -> bool:
        """True while the device is open and being read."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Why the device was last lost or could not be opened."""
        return self._last_error

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and release the device; RuntimeError if the thread will not die."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.kind} scanner {self.name} did not stop "
                                   f"within {timeout}s")

    def _interrupt(self) -> None:  # noqa: B027 - optional hook, most readers poll
        """Wake a blocked read (subclasses that can)."""

    @abstractmethod
    def _run(self) -> None:
        """Open, read, recover: until stopped."""
