"""Keeps the ticket cache true to the clouds: full and delta syncs on a schedule.

One thread, one cache writer connection. Each backend with a ticket list
gets a full sync when the cache has none for it (or the last one is older
than ``full_sync_interval_s``) and a delta sync every ``sync_interval``.
A full sync streams page by page into a new table of the cache, swapped
for the old list when complete (:meth:`Cache.replace_pages`), so readers
keep the old list until the new one is complete, and an interrupted sync
leaves the old list in place and simply starts again. Each sync of a
backend with deltas hands back a cursor on the cloud's clock
(:mod:`turnstiled.backends.window`): the next delta starts there, never at
the gate's time; without one (a cloud that sent no time) the next sync is
a full one. Failures are
recorded per source (``turnstilectl status`` shows them) and retried with
exponential backoff and jitter, honouring Retry-After; what no retry mends
(refused credentials, "client upgrade required", a wrong base URL, a code
the cloud does not recognise) is an alarm retried slowly
(:mod:`turnstiled.retry`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from turnstiled.backends.base import Backend, BackendError, Delta, Rows
from turnstiled.cache import Cache
from turnstiled.retry import Retry
from turnstiled.rules import Ticket
from turnstiled.worker import Worker

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SourceState(Retry):
    """Scheduling state of one backend (in memory; the cache keeps the record)."""

    backend: Backend
    last_full: float | None = None
    cursor: str | None = None


def _progress(pages: Iterable[list[Ticket] | Rows],
              on_page: Callable[[], None] | None) -> Iterator[list[Ticket] | Rows]:
    for page in pages:
        if on_page is not None:
            # A long full sync is progress too (watchdog). Http reports each
            # request only from the loop's own thread, and pages are fetched
            # ahead on others (vivenu's page thread, the cache's row thread).
            on_page()
        yield page


class Syncer(Worker):
    """Runs every configured backend's syncs; call :meth:`run_once` or :meth:`start`."""

    thread_name = "sync"

    def __init__(self, cache_path: str | Path, backends: Iterable[Backend],
                 on_progress: Callable[[], None] | None = None) -> None:
        super().__init__(on_progress)
        self.cache_path = Path(cache_path)
        self.cache: Cache | None = None
        self.sources = {b.name: SourceState(backend=b) for b in backends
                        if b.capabilities.full_sync}

    # -- one pass (tests call this directly) -----------------------------
    def _cache(self) -> Cache:
        if self.cache is None:
            self.cache = Cache(self.cache_path)
            for row in self.cache.records():
                st = self.sources.get(row["source"])
                if st is not None:
                    st.last_full = row.get("last_full_sync")
                    st.cursor = row.get("cursor")
        return self.cache

    def sync(self, name: str, *, full: bool | None = None) -> str:
        """Sync one source now; returns "full", "delta" or the error text."""
        cache = self._cache()
        st = self.sources[name]
        backend = st.backend
        now = time.time()
        try:
            if full is None:
                full = (st.last_full is None or not backend.capabilities.delta_sync
                        or not 0 <= now - st.last_full < backend.full_sync_interval())
            full = full or st.cursor is None  # no cloud time to start a delta from
            if full:
                listing = backend.full_sync()
                n = cache.replace_pages(name, _progress(listing, self.on_progress))
                st.last_full = now
                st.cursor = listing.cursor if isinstance(listing, Delta) else None
                logger.info("%s: full sync, %d tickets", name, n)
            else:
                delta = backend.delta_sync(st.cursor)
                n = cache.upsert(t for page in _progress(delta.pages, self.on_progress)
                                 for t in page)
                st.cursor = delta.cursor or st.cursor
                if n:
                    logger.info("%s: delta sync, %d changed tickets", name, n)
            cache.mark_sync(name, full=full, ok=True, cursor=st.cursor, state="ok")
        except Exception as exc:
            if not isinstance(exc, BackendError):
                logger.exception("%s: sync crashed; old cache stays in use", name)
                exc = BackendError(f"internal error: {type(exc).__name__}: {exc}")
            state = st.failed(exc, f"{name} sync (old cache stays in use)")
            cache.mark_sync(name, full=bool(full), ok=False, error=str(exc), state=state)
            return str(exc)
        try:
            interval = backend.sync_interval()
        except BackendError as exc:
            logger.debug("%s: sync interval unknown (%s); using 10 s", name, exc)
            interval = 10.0
        st.succeeded(f"{name} sync", interval)
        return "full" if full else "delta"

    def request(self, full: bool = False) -> list[str]:
        """Make every source due now (``turnstilectl sync``); the thread does the work."""
        for st in self.sources.values():
            st.next_due = 0.0
            if full:
                st.last_full = None
        return list(self.sources)

    def run_once(self) -> dict[str, str]:
        """Sync every source that is due; returns what each did."""
        now = time.monotonic()
        return {n: self.sync(n) for n, st in self.sources.items() if st.next_due <= now}

    def next_due(self) -> float:
        return min((st.next_due for st in self.sources.values()), default=time.monotonic() + 1)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None
