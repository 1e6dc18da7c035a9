"""A background loop with a stop signal and a bounded shutdown (sync and drain).

A loop counts as progressing after every pass and after every request it
makes from its own thread (:func:`report_progress`, called by the HTTP
client; work handed to other threads reports itself, as the syncer does
per page): a slow but working cloud never looks like a hang to the
watchdog; a wedged loop does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

logger = logging.getLogger(__name__)

BACKGROUND_NICE = 10

_running = threading.local()  # .worker: the Worker whose loop runs in this thread


def report_progress() -> None:
    """Tell this thread's loop (if any) that it progressed: one request answered or failed."""
    worker = getattr(_running, "worker", None)
    if worker is not None and worker.on_progress is not None:
        worker.on_progress()


class Worker(ABC):
    """Runs :meth:`run_once` until stopped, sleeping until :meth:`next_due` when idle."""

    thread_name = "worker"

    def __init__(self, on_progress: Callable[[], None] | None = None) -> None:
        self.on_progress = on_progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def run_once(self) -> object:
        """Do what is due now; something truthy if work was done (loop again at once)."""

    @abstractmethod
    def next_due(self) -> float:
        """When (time.monotonic(), which no clock step moves) there may be work again."""

    @abstractmethod
    def close(self) -> None:
        """Release what the loop opened (runs in the loop's thread, at its end)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the loop to end and wait up to *timeout* (it is a daemon thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("%s did not stop within %.1f s", self.thread_name, timeout)

    def _run(self) -> None:
        # Background work yields the CPU to the scan path (Linux threads are
        # scheduled one by one, so this lowers only this thread).
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        _running.worker = self
        try:
            while not self._stop.is_set():
                try:
                    busy = self.run_once()
                except Exception:
                    logger.exception("%s pass failed; retrying", self.thread_name)
                    busy = False
                if self.on_progress is not None:
                    self.on_progress()
                if not busy:
                    self._stop.wait(max(0.02, min(1.0, self.next_due() - time.monotonic())))
        finally:
            self.close()
