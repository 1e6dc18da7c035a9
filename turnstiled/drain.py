"""The journal drain: every uploadable scan reaches its cloud, in order, once.

Rows move pending -> inflight -> confirmed | rejected, each step one
short committed transaction on the drain's own journal connection (the
scan path never waits on it). On start, rows left in flight by a crash go
back to pending and are sent again: the cloud may then see a scan twice
only if the process died between the cloud's answer and our commit, the
one window no API without idempotency keys lets a client close.

Failures: transient ones (network, 5xx, 429/503 with Retry-After, HTML,
half a page) put the rows back and back off with jitter; a 400/404 is
narrowed down by halving the batch until the one refused row is recorded
as rejected with the cloud's text; 401/403/412 stop that backend's drain
and raise an alarm shown by ``turnstilectl status``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnstiled.backends.base import (
    AuthError,
    Backend,
    BackendError,
    Rejected,
    UpgradeRequired,
    UploadScan,
)
from turnstiled.journal import Journal
from turnstiled.retry import BACKOFF_BASE_S, BACKOFF_MAX_S, Retry
from turnstiled.worker import Worker

logger = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
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

    def count_failure(self, exc: BackendError) -> None:
        kind = failure_kind(exc)
        self.failures_by_kind[kind] = self.failures_by_kind.get(kind, 0) + 1


def to_upload(row: dict[str, Any]) -> UploadScan:
    return UploadScan(row["nonce"], row["barcode"], row["at"], bool(row["granted"]),
                      row["direction"], row["event"], row["ticket_id"], row["gate_id"],
                      bool(row.get("resent")))


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
        """Send one batch of *name*'s pending scans; returns how many were settled."""
        journal = self._journal()
        st = self.states[name]
        size = max(1, min(self.batch, getattr(st.backend.settings, "upload_batch", self.batch)))
        if self.batch_delay_s > 0:
            # Fill batches: fewer requests, and fewer moments in which a power
            # cut could fall between the cloud's answer and our commit.
            waiting, oldest = journal.pending(name)
            if waiting == 0:
                st.next_due = time.monotonic() + min(IDLE_POLL_S, self.batch_delay_s)
                return 0
            # The oldest scan's age is wall-clock (it is a journal time): a
            # clock step back makes it negative, which waits one delay at most.
            age = time.time() - oldest if oldest is not None else 0.0
            if waiting < size and age < self.batch_delay_s:
                st.next_due = time.monotonic() + min(self.batch_delay_s,
                                                     self.batch_delay_s - age)
                return 0
        rows = journal.claim(name, size)
        if not rows:
            st.next_due = time.monotonic() + IDLE_POLL_S
            return 0
        settled: set[int] = set()
        try:
            self._send(st, rows, settled)
        except BackendError as exc:
            journal.release([r["id"] for r in rows if r["id"] not in settled], str(exc))
            st.count_failure(exc)
            st.failed(exc, f"upload to {name}", base=self.retry[0], ceiling=self.retry[1])
            return len(settled)
        st.succeeded(f"upload to {name}", 0.0)
        st.sent += len(settled)
        return len(settled)

    def _send(self, st: DrainState, rows: list[dict[str, Any]], settled: set[int]) -> None:
        """Upload *rows*; adds the ids it settled to *settled* (kept on a later error)."""
        journal = self._journal()
        by_nonce = {r["nonce"]: r["id"] for r in rows}
        try:
            result = st.backend.upload([to_upload(r) for r in rows])
        except Rejected as exc:
            if len(rows) > 1:  # which one? halve until the refused row stands alone
                half = len(rows) // 2
                self._send(st, rows[:half], settled)
                self._send(st, rows[half:], settled)
                return
            journal.settle([], {rows[0]["id"]: str(exc)})
            settled.add(rows[0]["id"])
            st.count_failure(exc)
            logger.warning("drain %s: scan #%d rejected: %s", st.backend.name,
                           rows[0]["id"], exc)
            return
        confirmed = [by_nonce[n] for n in result.confirmed if n in by_nonce]
        rejected = {by_nonce[n]: why for n, why in result.rejected.items() if n in by_nonce}
        journal.settle(confirmed, rejected)
        st.failures_by_kind["rejected"] += len(rejected)
        settled.update(confirmed)
        settled.update(rejected)
        unanswered = [r["id"] for r in rows if r["id"] not in settled]
        if unanswered:
            journal.release(unanswered, "no answer for this scan in the cloud's reply")

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
        if self.journal is not None:
            self.journal.close()
            self.journal = None
