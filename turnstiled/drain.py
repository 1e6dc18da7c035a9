"""The journal drain: every uploadable scan reaches its cloud, in order, once.

Rows move pending -> inflight -> confirmed | rejected in short committed
transactions on the drain's own journal connection (the scan path never
waits on it). A pass claims a backend's oldest pending scans whatever
their event and sends each event its own request(s), in journal order.
Any error in a pass, expected or not, puts the rows it had not settled
back to pending (those of the events after it too).

Pipeline: while a full batch is under way, a thread reads the next one
(reads only: nothing changes if it is never sent) and builds its bodies.
Once the batch's answers are in, ONE commit settles it and claims the
next (the oldest pending rows then, as a claim alone would take them),
which is sent at once. A row is in flight only from just before its
send, as without the pipeline; a pass that released rows (a failure, an
unanswered scan) or claimed rows beyond the batch (a lone refusal's tail)
ends the chain.

Refusals, and how a refused request is told from a refused scan:
:mod:`turnstiled.drain_event`.

Duplicates: a row whose send may have reached the cloud without our
hearing the answer (a crash, a reset or read timeout after the request
was written, a 5xx) is marked ``resent`` before it goes again, so
``turnstilectl scans`` shows every upload that may be doubled upstream.
A resent row the cloud already holds is confirmed as our own earlier
send, never rejected (the backend says so, or answers
:attr:`UploadResult.ours` and the drain decides by ``resent``).

Transient failures (network, 5xx, 429/503 with Retry-After, HTML, half a
page) back off with jitter; 401/403/412 and a misconfigured set-up stop
that backend's drain, a refused request that event's, with an alarm shown
by ``turnstilectl status``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnstiled.backends.base import (
    AuthError,
    Backend,
    BackendError,
    Rejected,
    RequestRefused,
    UpgradeRequired,
    UploadScan,
)
from turnstiled.drain_event import EventPass, event_pass, to_upload
from turnstiled.journal import Journal
from turnstiled.journal_uploads import AT, EVENT, ID, Settlement
from turnstiled.retry import BACKOFF_BASE_S, BACKOFF_MAX_S, Retry
from turnstiled.worker import Worker

logger = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
CHAIN = 20  # batches one drain_once sends back to back while there are full ones
# Why an upload failed, for the metrics (``turnstiled_upload_failures_total``).
FAILURE_KINDS = ("network", "server_error", "rate_limited", "bad_answer", "rejected",
                 "auth_refused", "upgrade_required")


def failure_kind(exc: BackendError) -> str:
    """One of :data:`FAILURE_KINDS` for a failed upload."""
    if isinstance(exc, AuthError):
        return "auth_refused"
    if isinstance(exc, UpgradeRequired):
        return "upgrade_required"
    if isinstance(exc, Rejected):
        return "rejected"
    if exc.status == 429:
        return "rate_limited"
    if exc.status is not None and exc.status >= 500:
        return "server_error"
    if exc.status is None:
        return "network"
    return "bad_answer"  # an HTML page, half a page, an unexpected answer


@dataclass(kw_only=True)
class DrainState(Retry):
    """Per backend: when to try next, what is wrong, how much went up."""

    backend: Backend
    sent: int = 0
    failures_by_kind: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(FAILURE_KINDS, 0))
    # Events whose uploads the cloud refuses as a whole: until when, and why. The
    # other events of the backend go on meanwhile.
    refused: dict[str | None, tuple[float, str]] = field(default_factory=dict)

    def count_failure(self, exc: BackendError) -> None:
        kind = failure_kind(exc)
        self.failures_by_kind[kind] = self.failures_by_kind.get(kind, 0) + 1


def _prepare(backend: Backend, rows: list[Any]) -> tuple[list[UploadScan], Any]:
    """One event's *rows* as UploadScans, and their bodies as the backend builds them."""
    scans = [to_upload(r) for r in rows]
    return scans, backend.prepare_upload(scans)


def _by_event(rows: list[Any]) -> list[list[Any]]:
    """*rows* grouped by event, in the order each event's first row comes."""
    by_event: dict[str | None, list[Any]] = {}
    for r in rows:
        by_event.setdefault(r[EVENT], []).append(r)
    return list(by_event.values())


class Drainer(Worker):
    """Uploads journaled scans of every backend that can take them."""

    thread_name = "drain"

    def __init__(self, journal_path: str | Path, backends: Iterable[Backend], *,
                 batch: int = 500, batch_delay_s: float = 0.0,
                 retention_s: float = 30 * 86400,
                 retry: tuple[float, float] = (BACKOFF_BASE_S, BACKOFF_MAX_S),
                 on_progress: Callable[[], None] | None = None) -> None:
        super().__init__(on_progress)
        self.journal_path = Path(journal_path)
        self.states = {b.name: DrainState(backend=b) for b in backends
                       if b.capabilities.scan_upload}
        self.batch = batch
        self.batch_delay_s = batch_delay_s
        self.retry = retry
        self.retention_s = retention_s
        self.journal: Journal | None = None
        self._reader: Journal | None = None  # read-ahead's own connection (read only)
        self._pool: cf.ThreadPoolExecutor | None = None
        self._last_prune = -math.inf  # time.monotonic() of the last prune

    def _journal(self) -> Journal:
        if self.journal is None:
            self.journal = Journal(self.journal_path)
            n = self.journal.recover_inflight()
            if n:
                logger.info("drain: %d scan(s) left in flight by the last run will be re-sent", n)
        return self.journal

    def alarms(self) -> dict[str, str]:
        return {n: st.alarm for n, st in self.states.items() if st.alarm}

    # -- one pass --------------------------------------------------------
    def drain_once(self, name: str) -> int:
        """Send *name*'s pending scans, a batch at a time; returns how many were settled.

        While a full batch is under way, the next one is read (never
        written) and its bodies built on another thread; once the batch's
        answers are in, one commit settles it and claims the next, which
        goes out at once. Up to :data:`CHAIN` batches follow each other so.
        """
        journal = self._journal()
        st = self.states[name]
        size = max(1, min(self.batch, getattr(st.backend.settings, "upload_batch", self.batch)))
        if self.batch_delay_s > 0:
            # Fill batches: fewer requests, and fewer moments in which a power
            # cut could fall between the cloud's answer and our commit.
            waiting, oldest = journal.pending(name, limit=size)
            if waiting == 0:
                st.next_due = time.monotonic() + min(IDLE_POLL_S, self.batch_delay_s)
                return 0
            if waiting < size and not self._due(oldest):
                # The oldest scan's age is wall-clock (a journal time): a clock
                # step back makes it negative, which waits one delay at most.
                age = time.time() - oldest if oldest is not None else 0.0
                st.next_due = time.monotonic() + min(self.batch_delay_s,
                                                     self.batch_delay_s - age)
                return 0
        now = time.monotonic()
        st.refused = {ev: v for ev, v in st.refused.items() if v[0] > now}
        rows: list[Any] = journal.claim(name, size, skip=st.refused)
        if not rows:
            st.next_due = time.monotonic() + IDLE_POLL_S
            return 0
        total = 0
        prepared: dict[int, tuple[list[UploadScan], Any]] = {}
        for n in range(1, CHAIN + 1):
            # A full batch: the backlog may hold more. Read the next one meanwhile.
            more = (self._read_ahead(st.backend, size, st.refused)
                    if len(rows) >= size and n < CHAIN else None)
            settled, done = self._batch(st, rows, size, prepared)
            total += settled
            if done is None:  # failed: written already, the next batch waits
                return total
            ahead = self._ahead(more, done, size)
            # Should a commit fail, the rows stay in flight: the next start sends
            # them again, marked resent (the cloud may hold them).
            if not ahead:
                journal.apply(done)
                self._succeeded(st, settled)
                return total
            ids = journal.apply(done, claim=(name, size, st.refused))
            self._succeeded(st, settled)
            if not ids:
                return total
            if ids == [r[ID] for r in ahead[0]]:  # as read ahead: the usual case
                rows, prepared = ahead
            else:  # the journal moved meanwhile (a grant settled, an annulment)
                rows, prepared = journal.claimed(ids), {}
        return total

    def _due(self, oldest: float | None) -> bool:
        """Whether a batch that is not full goes now: its oldest scan waited long enough."""
        return oldest is not None and time.time() - oldest >= self.batch_delay_s

    def _succeeded(self, st: DrainState, settled: int) -> None:
        st.succeeded(f"upload to {st.backend.name}", 0.0)
        if st.refused:  # another event is still refused: the alarm stays
            st.alarm, st.last_error = "request_refused", next(iter(st.refused.values()))[1]
        st.sent += settled

    def _read_ahead(self, backend: Backend, size: int,
                    skip: Collection[str | None]) -> cf.Future[Any]:
        """The next batch's rows and bodies, read and built on the read-ahead thread."""
        if self._reader is None:
            self._reader = Journal(self.journal_path, readonly=True)
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="drain-ahead")
        reader, skip = self._reader, set(skip)

        def read() -> tuple[list[Any], dict[int, tuple[list[UploadScan], Any]]]:
            rows = reader.peek(backend.name, size, skip)
            return rows, {group[0][ID]: _prepare(backend, group) for group in _by_event(rows)}

        assert self._pool is not None
        return self._pool.submit(read)

    def _ahead(self, more: cf.Future[Any] | None, done: Settlement,
               size: int) -> tuple[list[Any], dict[int, Any]] | None:
        """The batch read ahead, if it goes next: the pass ended clean and it is due."""
        if more is None:
            return None
        try:
            rows, prepared = more.result()
        except Exception:  # a read that failed costs the chain, nothing else
            logger.exception("drain: reading the next batch ahead failed")
            return None
        if (done.back or done.tail or self._stop.is_set() or not rows
                or (len(rows) < size and self.batch_delay_s > 0
                    and not self._due(min(r[AT] for r in rows)))):
            return None
        return rows, prepared

    def _batch(self, st: DrainState, rows: list[Any], size: int,
               prepared: dict[int, tuple[list[UploadScan], Any]]
               ) -> tuple[int, Settlement | None]:
        """Send one claimed batch: its settled count, and what to write (None: written
        already, after a failure)."""
        name = st.backend.name
        journal = self._journal()
        # One request (or more, narrowing a refusal down) per event, in the order
        # each event's first row was journaled.
        groups = _by_event(rows)
        settled = 0
        done = Settlement()  # every event's answers: one commit for the whole batch
        for k, group in enumerate(groups):
            p = EventPass(done=done)
            ahead = prepared.get(group[0][ID])
            try:
                event_pass(st, journal, group, p, size, ahead)
            except Exception as exc:
                # Whatever went wrong, the rows not settled go back to pending (the
                # later events' too: they wait for the next pass); those of a
                # request that may have reached the cloud are marked resent.
                ambiguous = not isinstance(exc, BackendError) or exc.ambiguous
                if not isinstance(exc, BackendError):
                    logger.exception("drain %s: pass failed; its scans go back to pending",
                                     name)
                    exc = BackendError(f"internal error: {type(exc).__name__}: {exc}")
                back = [r[ID] for r in group if r[ID] not in p.settled]
                back += [r[ID] for later in groups[k + 1:] for r in later]
                done.release(back, str(exc), resent=set(p.in_request) if ambiguous else ())
                journal.apply(done)
                st.count_failure(exc)
                st.failed(exc, f"upload to {name}", base=self.retry[0], ceiling=self.retry[1])
                if isinstance(exc, RequestRefused):  # this event waits; the others need not
                    st.refused[group[0][EVENT]] = (st.next_due, str(exc))
                    st.next_due = time.monotonic()
                st.sent += settled + len(p.settled)
                return settled + len(p.settled), None
            settled += len(p.settled)
        return settled, done

    def run_once(self) -> int:
        mono = time.monotonic()
        done = sum(self.drain_once(n) for n, st in self.states.items() if st.next_due <= mono)
        if mono - self._last_prune > 3600:
            self._last_prune = mono
            pruned = self._journal().prune(time.time() - self.retention_s)
            if pruned:
                logger.info("journal: pruned %d settled scan(s) past retention", pruned)
        return done

    def next_due(self) -> float:
        return min((s.next_due for s in self.states.values()),
                   default=time.monotonic() + IDLE_POLL_S)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a read under way ends first
            self._pool = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None
