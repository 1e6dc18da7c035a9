"""One event's upload in a drain pass: the cloud's per-scan answers, and refusals told apart.

Refusals: a row is rejected only when the cloud names it (a per-scan
answer) or when it is isolated: refused alone while the cloud took other
scans of the same event in the same pass. A refusal of the request as a
whole keeps every row pending: a 4xx with an HTML page or no JSON (a
wrong base URL, a proxy's 404 page) is the ``misconfigured`` alarm; an
event the device may no longer see, or a batch whose rows the cloud
refuses one by one without taking any, is ``request_refused`` for that
event while the backend's other events go on. A 400/404 that names no
row is narrowed down by halving, and after :data:`PROBES` lone refusals
with nothing taken the rest of the batch is tried in one request as the
proof either way.

The batch, its commit and the pipeline around it are :mod:`turnstiled.drain`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnstiled.backends.base import Rejected, RequestRefused, UploadResult, UploadScan
from turnstiled.journal import Journal
from turnstiled.journal_uploads import (
    AT,
    BARCODE,
    DIRECTION,
    EVENT,
    GATE_ID,
    GRANTED,
    ID,
    NONCE,
    RESENT,
    TICKET_ID,
    Settlement,
)

if TYPE_CHECKING:
    from turnstiled.drain import DrainState

logger = logging.getLogger(__name__)

PROBES = 3  # lone refusals, with nothing taken, before the rest of a batch is tried at once


def to_upload(row: Any) -> UploadScan:
    """A claimed row (:data:`~turnstiled.journal_uploads.CLAIMED` columns) as a backend
    uploads it."""
    return UploadScan(row[NONCE], row[BARCODE], row[AT], bool(row[GRANTED]), row[DIRECTION],
                      row[EVENT], row[TICKET_ID], row[GATE_ID], bool(row[RESENT]))


@dataclass
class EventPass:
    """What one event's pass learnt: rows settled, rows refused alone, whether any went up."""

    settled: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)  # refused alone: id -> why
    taken: bool = False  # the cloud took a scan of this event in this pass
    in_request: list[int] = field(default_factory=list)  # ids of the request under way
    tail_tried: bool = False
    held: bool = False  # a scan went unanswered: the event's later scans wait for it
    done: Settlement = field(default_factory=Settlement)  # the batch's: one commit


def event_pass(st: DrainState, journal: Journal, rows: list[Any], p: EventPass, size: int,
               prepared: tuple[list[UploadScan], Any] | None = None) -> None:
    """Upload one event's claimed *rows*; a refusal is told from a refused request.

    *prepared*: the rows as UploadScans and their bodies, built ahead.
    """
    name = st.backend.name
    _send(st, rows, p, prepared)
    if p.refused and not p.taken and not p.tail_tried and not p.held:
        # Refused alone with nothing else sent: the next scans of the event
        # tell a refused row from a refused request.
        more = journal.claim_event(name, rows[0][EVENT], size)
        rows.extend(more)  # the caller's list: released with the others on failure
        p.tail_tried = p.done.tail = True
        _send(st, more, p)
    if p.refused and not p.taken:
        raise RequestRefused(f"upload to {name}: the cloud refused every scan sent, "
                             f"alone too, and took none: {next(iter(p.refused.values()))}")
    if p.refused:
        p.done.rejected.update({i: f"refused alone (the cloud took the others): {why}"
                                for i, why in p.refused.items()})
        for i, why in p.refused.items():
            logger.warning("drain %s: scan #%d rejected: %s", name, i, why)
        p.settled.update(p.refused)
        st.failures_by_kind["rejected"] += len(p.refused)

def _send(st: DrainState, rows: list[Any], p: EventPass,
          prepared: tuple[list[UploadScan], Any] | None = None) -> None:
    """Upload *rows* in order, narrowing down a refusal that names no row."""
    chunks = [rows]
    while chunks:
        chunk = chunks.pop(0)
        p.in_request = [r[ID] for r in chunk]
        ahead, prepared = prepared, None  # built for the whole of *rows*: the first chunk
        try:
            scans, bodies = ahead or ([to_upload(r) for r in chunk], None)
            result = st.backend.upload(scans, bodies)
        except RequestRefused:
            raise
        except Rejected as exc:
            p.in_request = []
            if p.tail_tried and not p.taken:
                raise RequestRefused(f"upload to {st.backend.name}: refused alone and "
                                     f"together, none taken: {exc}",
                                     status=exc.status) from None
            if len(chunk) > 1:  # which one? halve, in order
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            p.refused[chunk[0][ID]] = str(exc)
            if len(p.refused) >= PROBES and not p.taken and chunks and not p.tail_tried:
                # Refused one by one and nothing taken: most likely the request
                # itself. One request with the rest of the batch settles it.
                p.tail_tried = True
                chunks = [[r for c in chunks for r in c]]
            continue
        p.in_request = []
        _settle(st, chunk, result, p)
        if p.held:
            # The cloud left a scan unanswered: it goes again at the next pass,
            # and the later scans of its event wait for it (never sent: not
            # resent), so the cloud sees an event's scans in journal order.
            later = [r[ID] for c in chunks for r in c]
            if later:
                p.done.release(later, "waits for an earlier scan of its event")
            return

def _settle(st: DrainState, rows: list[Any], result: UploadResult,
            p: EventPass) -> None:
    """Note the cloud's per-scan answer to *rows* (written with the pass's others)."""
    by_nonce = {r[NONCE]: r for r in rows}
    confirmed = [by_nonce[n][ID] for n in result.confirmed if n in by_nonce]
    rejected = {by_nonce[n][ID]: why for n, why in result.rejected.items()
                if n in by_nonce}
    notes: dict[int, str] = {}
    for n in result.ours:
        row = by_nonce.get(n)
        if row is None:
            continue
        if row[RESENT]:
            confirmed.append(row[ID])
            notes[row[ID]] = "already upstream: our earlier send of it"
        else:  # never sent before: someone else's use of the ticket
            rejected[row[ID]] = "already recorded upstream, not by this gate's upload"
    p.done.confirmed.extend(confirmed)
    p.done.rejected.update(rejected)
    p.done.notes.update(notes)
    st.failures_by_kind["rejected"] += len(rejected)
    p.taken = p.taken or bool(confirmed)
    p.settled.update(confirmed)
    p.settled.update(rejected)
    unsure = {by_nonce[n][ID] for n in result.unsure if n in by_nonce}
    unanswered = [r[ID] for r in rows if r[ID] not in p.settled]
    if unanswered:
        p.done.release(unanswered, "no answer for this scan in the cloud's reply", unsure)
        p.held = True
