"""When to try a cloud again after a failure, and what to tell the technician.

Shared by the syncer and the drain: exponential backoff with jitter that
honours Retry-After for trouble that may pass, a slow retry plus an
alarm for refused credentials, "client upgrade required", an answer no
working set-up gives (wrong URL, a proxy's HTML 404 page), a code or
event the cloud does not recognise, and a request refused as a whole (an
event the device may no longer see), and logging
once per outage (a warning when it starts, an info line when it ends).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from turnstiled.backends.base import (
    AuthError,
    BackendError,
    Misconfigured,
    RequestRefused,
    Unrecognised,
    UpgradeRequired,
)

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
ALARM_RETRY_S = 300.0
ALARMS = {AuthError: "auth_refused", UpgradeRequired: "upgrade_required",
          Misconfigured: "misconfigured", Unrecognised: "not_recognised",
          RequestRefused: "request_refused"}


def backoff(failures: int, retry_after: float | None = None, *,
            base: float = BACKOFF_BASE_S, ceiling: float = BACKOFF_MAX_S,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after *failures* consecutive failures.

    Exponential from *base*, capped at *ceiling*, with jitter over the upper
    half so gates that failed together do not retry together; a server's
    Retry-After is honoured (up to four ceilings).
    """
    top = min(ceiling, base * 2 ** min(failures - 1, 16))
    wait = top / 2 + rng() * top / 2
    if retry_after is not None:
        wait = max(wait, min(retry_after, ceiling * 4))
    return wait


@dataclass
class Retry:
    """One cloud task's schedule and health (a source's sync, a backend's drain)."""

    next_due: float = 0.0  # time.monotonic(): a step of the wall clock moves no retry
    failures: int = 0
    alarm: str | None = None  # while it lasts: one of ALARMS
    last_error: str | None = None

    def failed(self, exc: BackendError, what: str, *, base: float = BACKOFF_BASE_S,
               ceiling: float = BACKOFF_MAX_S) -> str:
        """Record *exc*, schedule the next try; returns the state to show."""
        self.failures += 1
        self.last_error = str(exc)
        state = next((a for kind, a in ALARMS.items() if isinstance(exc, kind)), None)
        if state is not None:
            if self.alarm != state:
                logger.error("%s stopped: %s", what, exc)
            self.alarm = state
            self.next_due = time.monotonic() + ALARM_RETRY_S
            return state
        self.alarm = None
        self.next_due = time.monotonic() + backoff(self.failures, exc.retry_after, base=base,
                                              ceiling=ceiling)
        if self.failures == 1:
            logger.warning("%s failed, will retry: %s", what, exc)
        else:
            logger.debug("%s failed again", what, exc_info=exc)
        return "retrying"

    def succeeded(self, what: str, next_in: float) -> None:
        """The task worked: clear the outage and schedule the next run."""
        if self.failures:
            logger.info("%s works again", what)
        self.failures, self.alarm, self.last_error = 0, None, None
        self.next_due = time.monotonic() + next_in
