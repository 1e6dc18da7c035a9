"""Keeps the ticket cache true to the clouds: full and delta syncs on a schedule.

One thread, one cache writer connection. Each backend with a ticket list
gets a full sync when the cache has none for it (or the last one is older
than ``full_sync_interval_s``) and a delta sync every ``sync_interval``.
A full sync streams page by page into one cache transaction, so readers
keep the old list until the new one is complete, and an interrupted sync
leaves the old list in place and simply starts again. Failures are
recorded per source (``turnstilectl status`` shows them) and retried with
exponential backoff and jitter, honouring Retry-After; refused credentials
and "client upgrade required" are alarms retried slowly.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from turnstiled.backends.base import AuthError, Backend, BackendError, UpgradeRequired
from turnstiled.cache import Cache
from turnstiled.rules import Ticket
from turnstiled.timeutil import iso
from turnstiled.worker import Worker

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
ALARM_RETRY_S = 300.0


@dataclass
class SourceState:
    """Scheduling state of one backend (in memory; the cache keeps the record)."""

    backend: Backend
    next_due: float = 0.0
    failures: int = 0
    alarm: str | None = None
    last_full: float | None = None
    cursor: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


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


def _flatten(pages: Iterable[list[Ticket]], counter: list[int],
             on_page: Callable[[], None] | None) -> Iterator[Ticket]:
    for page in pages:
        counter[0] += len(page)
        if on_page is not None:
            on_page()  # a long full sync is progress too (watchdog)
        yield from page


class Syncer(Worker):
    """Runs every configured backend's syncs; call :meth:`run_once` or :meth:`start`."""

    thread_name = "sync"

    def __init__(self, cache_path: str | Path, backends: Iterable[Backend],
                 on_progress: Callable[[], None] | None = None) -> None:
        super().__init__(on_progress)
        self.cache_path = Path(cache_path)
        self.cache: Cache | None = None
        self.sources = {b.name: SourceState(b) for b in backends if b.capabilities.full_sync}

    # -- one pass (tests call this directly) -----------------------------
    def _cache(self) -> Cache:
        if self.cache is None:
            self.cache = Cache(self.cache_path)
            for row in self.cache.sources():
                st = self.sources.get(row["source"])
                if st is not None:
                    st.last_full = row.get("last_full_sync")
                    st.cursor = row.get("cursor")
        return self.cache

    def sync(self, name: str, *, full: bool | None = None) -> str:
        """Sync one source now; returns "full", "delta" or the error text."""
        cache = self._cache()
        st = self.sources[name]
        now = time.time()
        try:
            if full is None:
                full = (st.last_full is None or not st.backend.capabilities.delta_sync
                        or now - st.last_full >= st.backend.full_sync_interval())
            if full:
                started = now
                counter = [0]
                pages = _flatten(st.backend.full_sync(), counter, self.on_progress)
                n = cache.replace_source(name, pages)
                st.last_full, st.cursor = started, iso(started)
                cache.mark_sync(name, full=True, ok=True, cursor=st.cursor, state="ok")
                logger.info("%s: full sync, %d tickets", name, n)
                kind = "full"
            else:
                delta = st.backend.delta_sync(st.cursor)
                counter = [0]
                cache.upsert(_flatten(delta.pages, counter, self.on_progress))
                st.cursor = delta.cursor
                cache.mark_sync(name, full=False, ok=True, cursor=st.cursor, state="ok")
                if counter[0]:
                    logger.info("%s: delta sync, %d changed tickets", name, counter[0])
                kind = "delta"
        except Exception as exc:
            if not isinstance(exc, BackendError):
                logger.exception("%s: sync crashed; old cache stays in use", name)
                exc = BackendError(f"internal error: {type(exc).__name__}: {exc}")
            st.failures += 1
            if isinstance(exc, AuthError | UpgradeRequired):
                state = "auth_refused" if isinstance(exc, AuthError) else "upgrade_required"
                wait = ALARM_RETRY_S
                if st.alarm != state:
                    logger.error("%s: %s; syncing paused, old cache stays in use", name, exc)
            else:
                state = "retrying"
                wait = backoff(st.failures, exc.retry_after)
                if st.failures == 1:
                    logger.warning("%s: sync failed: %s; old cache stays in use", name, exc)
                else:
                    logger.debug("%s: sync failed again", name, exc_info=True)
            st.alarm = state if state != "retrying" else None
            st.next_due = time.time() + wait
            cache.mark_sync(name, full=bool(full), ok=False, error=str(exc), state=state)
            return str(exc)
        if st.failures:
            logger.info("%s: sync works again", name)
        st.failures, st.alarm = 0, None
        try:
            st.next_due = time.time() + st.backend.sync_interval()
        except BackendError as exc:
            logger.debug("%s: sync interval unknown (%s); using 10 s", name, exc)
            st.next_due = time.time() + 10.0
        return kind

    def request(self, full: bool = False) -> list[str]:
        """Make every source due now (``turnstilectl sync``); the thread does the work."""
        for st in self.sources.values():
            st.next_due = 0.0
            if full:
                st.last_full = None
        return list(self.sources)

    def run_once(self) -> dict[str, str]:
        """Sync every source that is due; returns what each did."""
        now = time.time()
        return {n: self.sync(n) for n, st in self.sources.items() if st.next_due <= now}

    def next_due(self) -> float:
        return min((st.next_due for st in self.sources.values()), default=time.time() + 1)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None
