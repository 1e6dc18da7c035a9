"""Online fallback for a barcode the cache does not know, under a hard deadline.

Only backends that declare an online check (and have it switched on) are
asked, in configuration order. Each call runs on a small worker pool and
is abandoned at its deadline (default 800 ms), so a hanging cloud can
delay a scan by at most that, never hang the gate.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Iterable

from turnstiled.backends.base import Backend, BackendError, OnlineAnswer

logger = logging.getLogger(__name__)


class OnlineChecker:
    """Asks the clouds about unknown barcodes; None when none could answer in time."""

    def __init__(self, backends: Iterable[Backend]) -> None:
        self.backends = [(b, d) for b in backends if (d := b.online_deadline()) is not None]
        self._pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="online")
        self._last_warning = 0.0

    def __bool__(self) -> bool:
        return bool(self.backends)

    def check(self, barcode: str, consume: bool = True) -> OnlineAnswer | None:
        """The first answer that names a ticket or a verdict, within each deadline.

        A backend that could not answer in time may still offer its offline
        policy's answer (chapter-event ``admit-and-journal``).
        """
        offline: OnlineAnswer | None = None
        for backend, deadline in self.backends:
            future = self._pool.submit(backend.online_check, barcode, consume)
            try:
                answer = future.result(timeout=deadline)
            except cf.TimeoutError:
                future.cancel()
                self._warn("%s online check gave no answer within %.0f ms", backend.name,
                           deadline * 1000)
                offline = offline or backend.offline_answer(barcode)
                continue
            except BackendError as exc:
                self._warn("%s online check failed: %s", backend.name, exc)
                offline = offline or backend.offline_answer(barcode)
                continue
            if answer.ticket is not None or (answer.verdict is not None
                                             and answer.verdict.reason != "unknown"):
                return answer
        return offline

    def _warn(self, msg: str, *args: object) -> None:
        # A cloud that is down would otherwise log once per scan.
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning(msg, *args)
        else:
            logger.debug(msg, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
