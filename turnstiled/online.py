"""Online fallback for a barcode the cache does not know, under a hard deadline.

Only backends that declare an online check (and have it switched on) are
asked, one after another in configuration order. Each call runs on a small
worker pool and is abandoned at its deadline (default 800 ms), so a hanging
cloud can delay a scan by at most that (per source asked), never hang the
gate. An online check never
changes anything upstream, so an abandoned one has changed nothing.

"Offline" (no answer in time, transport trouble, 5xx, 429) lets a
backend's offline policy answer. Any other failure (a refused password,
a wrong URL, an answer that is not the API's) is an alarm: the scan is
denied as ``source_error`` and no offline policy applies. Each backend's
health (last answer, last error, alarm) is kept for ``turnstilectl status``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from turnstiled import rules
from turnstiled.backends.base import (
    AuthError,
    Backend,
    BackendError,
    OnlineAnswer,
    TimedOut,
    TransientError,
    UpgradeRequired,
)
from turnstiled.rules import Decision

logger = logging.getLogger(__name__)


@dataclass
class Health:
    """How one online source has been doing (shown by ``turnstilectl status``)."""

    last_answer_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    alarm: str | None = None  # auth_refused | upgrade_required | misconfigured
    offline_since: float | None = None

    def answered(self) -> None:
        self.last_answer_at = time.time()
        self.alarm = None
        self.offline_since = None

    def failed(self, error: str, alarm: str | None) -> None:
        now = time.time()
        self.last_error, self.last_error_at, self.alarm = error, now, alarm
        if alarm is None and self.offline_since is None:
            self.offline_since = now


def alarm_of(exc: BackendError) -> str | None:
    """The alarm a failure raises, or None when it is only "offline"."""
    if isinstance(exc, TransientError):
        return None
    if isinstance(exc, AuthError):
        return "auth_refused"
    if isinstance(exc, UpgradeRequired):
        return "upgrade_required"
    return "misconfigured"


class OnlineChecker:
    """Asks the clouds about unknown barcodes; None when none had anything to say."""

    def __init__(self, backends: Iterable[Backend]) -> None:
        self.backends = [(b, d) for b in backends if (d := b.online_deadline()) is not None]
        for b, _ in self.backends:  # now, not at the first unknown barcode's deadline
            b.connect()
        self.health = {b.name: Health() for b, _ in self.backends}
        self._pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="online")
        self._last_warning = 0.0

    def __bool__(self) -> bool:
        return bool(self.backends)

    def check(self, barcode: str) -> OnlineAnswer | None:
        """The first answer that names a ticket, within each backend's deadline.

        A backend that is offline may offer its offline policy's answer
        (chapter-event ``admit-and-journal``), used only when no backend
        named the ticket and none raised an alarm: an alarm denies. With
        neither, an answer without a ticket may still say why (its note).
        """
        offline: OnlineAnswer | None = None
        error: OnlineAnswer | None = None
        miss: OnlineAnswer | None = None  # why no ticket came back ("no such ticket", offline)
        for backend, deadline in self.backends:
            health = self.health[backend.name]
            future = self._pool.submit(backend.online_check, barcode)
            try:
                answer = future.result(timeout=deadline)
            except (cf.TimeoutError, TimedOut):
                # The request's own timeout is the deadline too: whichever of the
                # two fires first, the scan was not answered in time (offline).
                future.cancel()
                why = f"no answer within {deadline * 1000:.0f} ms"
                health.failed(why, None)
                self._warn("%s online check: %s", backend.name, why)
                offline = offline or backend.offline_answer(barcode)
                miss = miss or OnlineAnswer(None, note=f"{backend.name} offline: {why}")
                continue
            except BackendError as exc:
                alarm = alarm_of(exc)
                if alarm is not None and alarm != health.alarm:  # once, not every scan
                    logger.error("%s online check: %s (%s): scans are denied until it "
                                 "answers", backend.name, exc, alarm)
                health.failed(str(exc), alarm)
                if alarm is None:
                    self._warn("%s online check failed: %s", backend.name, exc)
                    offline = offline or backend.offline_answer(barcode)
                    miss = miss or OnlineAnswer(None, note=f"{backend.name} offline: {exc}")
                else:
                    error = error or OnlineAnswer(None, Decision(
                        False, rules.SOURCE_ERROR, f"{backend.name} {alarm}: {exc}"))
                continue
            if health.alarm is not None:
                logger.warning("%s online check answers again: alarm %s cleared", backend.name,
                               health.alarm)
            health.answered()
            if answer.ticket is not None:
                return answer
            miss = miss or (answer if answer.note else None)
        return error or offline or miss

    def status(self) -> dict[str, dict[str, Any]]:
        """Each online source's health, for the control socket's ``status``."""
        return {name: asdict(h) for name, h in self.health.items()}

    def alarms(self) -> dict[str, str]:
        return {f"online:{name}": f"{h.alarm}: {h.last_error}"
                for name, h in self.health.items() if h.alarm}

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
