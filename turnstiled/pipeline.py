"""Where a barcode goes: normalise -> debounce -> look up -> decide -> journal -> gate.

:class:`ScanPipeline` is the scan path. It runs in one thread (the
daemon's decision worker), owns its cache reader and journal writer, and
moves the gate only after the journal's commit has returned.
:meth:`ScanPipeline.evaluate` is the same path without side effects, for
``turnstilectl lookup``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from turnstiled import importer, rules
from turnstiled.backends.base import Backend, OnlineAnswer
from turnstiled.cache import Cache
from turnstiled.config import Config
from turnstiled.gate import Gate
from turnstiled.journal import Journal, Scan
from turnstiled.meshwire import barcode_key
from turnstiled.online import OnlineChecker
from turnstiled.rules import Decision, RuleSettings, Ticket, Usage
from turnstiled.scanners.decode import Debouncer, normalise, printable

logger = logging.getLogger(__name__)

# Unreadable frames journaled per scanner: a burst, then this many a second;
# the rest are counted (status: frames_dropped.unreadable), not journaled.
UNREADABLE_BURST = 5.0
UNREADABLE_PER_S = 1.0


def mask(barcode: str) -> str:
    """A barcode as logs may show it: only its last four characters."""
    return "…" + barcode[-4:] if len(barcode) > 4 else "…"


def _used_upstream(ticket: Ticket | None, answer: OnlineAnswer | None,
                   usage: Usage) -> Ticket | None:
    """*ticket*, as used when its online source counted uses this venue did not make.

    Someone else got in on this code first (chapter-event counts every use).
    """
    if (ticket is not None and answer is not None and answer.times_used
            and ticket.status == "valid" and not usage.entries):
        return replace(ticket, status="used")
    return ticket


def rule_settings(cfg: Config) -> RuleSettings:
    g = cfg.gate
    return RuleSettings(g.events, g.zones, g.early_entry_s, g.late_entry_s, g.unsynced_clock)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the gate would decide for one scan, and from what."""

    barcode: str
    direction: str
    decision: Decision
    ticket: Ticket | None
    usage: Usage  # what the decision used: this gate's plus its peers' (mesh)
    online: OnlineAnswer | None = None  # what an online source said, if it was asked
    local: Usage | None = None  # this gate's own usage (None: nothing looked up)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decided and journaled scan."""

    scan_id: int  # 0: the journal could not record it
    evaluation: Evaluation
    passed: bool | None
    scanner: str = ""
    # From the frame's arrival to the gate acting on it (relay or red light);
    # None where no gate moved (lookup).
    latency_s: float | None = None


class ScanPipeline:
    """The scan path of one gate."""

    def __init__(self, cfg: Config, cache: Cache, journal: Journal | None,
                 gate: Gate | None = None, *, clock: Callable[[], float] = time.time,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 online: OnlineChecker | None = None,
                 uploaders: dict[str, Backend] | None = None) -> None:
        self.cache = cache
        self.journal = journal
        self.gate = gate
        self.clock = clock
        self.debouncer = Debouncer(cfg.gate.debounce_s)
        self.configure(cfg)
        self.on_outcome = on_outcome
        # Told (code, scanner) of each repeat the debounce ignored (the demo shows them).
        self.on_repeat: Callable[[str, str], None] | None = None
        self.online = online
        self.uploaders = uploaders or {}
        self.journal_alarm: str | None = None
        self.decision_alarm: str | None = None
        self.unreadable_dropped = 0
        self._unreadable_budget: dict[str, tuple[float, float]] = {}  # scanner -> tokens, t
        self.gate_alarm: str | None = None
        # The venue mesh's link (mesh.MeshClient), set by the daemon: only
        # asked whether it is partitioned; never waited on.
        self.mesh_link: Any = None
        # Whether the wall clock is synchronised (None: not known), set by
        # the daemon's rounds (service.py); the rules' unsynced_clock reads it.
        self.clock_synced: bool | None = None

    def configure(self, cfg: Config) -> None:
        """Decide by *cfg* from the next scan on (at start, and at a reload)."""
        self.cfg = cfg
        self.settings = rule_settings(cfg)
        # Which cached source counts for a barcode several list (cache.pick);
        # a source removed from the configuration no longer admits.
        self.precedence = (*cfg.sources, importer.SOURCE)
        self.debouncer.window_s = cfg.gate.debounce_s

    def evaluate(self, raw: bytes, direction: str = "in",
                 now: float | None = None) -> Evaluation:
        """Decide *raw* as a scan would, without journaling, moving or using anything.

        ``turnstilectl lookup`` uses it; online clouds are asked exactly as
        a scan asks them (never using a ticket: only the drain does that).
        """
        now = self.clock() if now is None else now
        norm = normalise(raw, self.cfg.gate.max_barcode_length)
        if norm.text is None:
            return Evaluation(printable(raw), direction, rules.unreadable(), None, Usage())
        return self._decide(norm.text, direction, now)

    def _decide(self, text: str, direction: str, now: float) -> Evaluation:
        ticket = self.cache.lookup(text, self.precedence)
        answer = None
        if ticket is None and self.online:
            answer = self.online.check(text)
            if answer is not None:
                ticket = answer.ticket
        local, usage = self._usage(ticket)
        if answer is not None and answer.verdict is not None:
            decision = answer.verdict  # the source failed in a way that is an alarm
        else:
            ticket = _used_upstream(ticket, answer, usage)
            decision = rules.decide(ticket, usage, self.settings, now, direction,
                                    self.clock_synced)
            if answer is not None and answer.note:
                decision = replace(decision, detail=f"{decision.detail} ({answer.note})")
        if ticket is not None:
            decision = self._venue_limits(decision, ticket, direction)
        return Evaluation(text, direction, decision, ticket, usage, answer, local)

    def _usage(self, ticket: Ticket | None) -> tuple[Usage, Usage]:
        """(this gate's usage of *ticket*, the venue's: with a mesh, its peers' added)."""
        if ticket is None or self.journal is None:
            return Usage(), Usage()
        mesh = self.cfg.mesh
        if mesh is None:
            own = self.journal.usage(ticket.source, ticket.barcode)
            return own, own
        return self.journal.venue_usage(ticket.source, ticket.barcode,
                                        barcode_key(mesh, ticket.barcode), self.cfg.gate.id)

    def _venue_limits(self, decision: Decision, ticket: Ticket, direction: str) -> Decision:
        """*decision* after the venue's limits (a mesh's partition, the zone's occupancy).

        They can only turn an admission into a denial: nothing is read for
        any other decision.
        """
        mesh = self.cfg.mesh
        if mesh is None or self.journal is None or not decision.granted or direction != "in":
            return decision
        g = self.cfg.gate
        partitioned = (mesh.on_partition == "deny-single-entry"
                       and self.mesh_link is not None and self.mesh_link.partitioned())
        occupancy = self.journal.zone_occupancy(g.zone) if g.max_occupancy else None
        return rules.venue_limits(decision, ticket, direction, occupancy, g.max_occupancy,
                                  partitioned)

    def handle(self, raw: bytes, scanner: str, direction: str,
               t_read: float | None = None) -> Outcome | None:
        """Process one frame from *scanner*; None when it was a debounced repeat."""
        assert self.journal is not None, "handle() needs the journal"
        now = self.clock()
        mono = time.monotonic() if t_read is None else t_read
        norm = normalise(raw, self.cfg.gate.max_barcode_length)
        if norm.text is None:
            if not self._unreadable_allowed(scanner):
                self.unreadable_dropped += 1
                return None  # a flood of garbage: journal a few, count the rest
            ev = Evaluation(printable(raw), direction, rules.unreadable(), None, Usage())
        elif self.debouncer.seen(f"{scanner}\x00{norm.text}", mono):
            if self.on_repeat is not None:
                self.on_repeat(norm.text, scanner)
            return None  # before any lookup: a repeat must not ask a cloud again
        else:
            ev = self._decide_or_deny(norm.text, direction, now)
        t = ev.ticket
        # The journal keeps this gate's own usage; peers' stays in their events.
        own = ev.local if ev.local is not None else ev.usage
        source = t.source if t is not None else None
        granted = ev.decision.granted
        try:
            scan_id = self.journal.record(
                Scan(now, self.cfg.gate.id, scanner, direction, ev.barcode, ev.decision,
                     source, t.event if t else None, t.ticket_id if t else None, None,
                     self._upload_state(ev, source),
                     awaiting_gate=granted and self.gate is not None),
                rules.apply(own, ev.decision, direction, now) if granted else None,
            )
        except sqlite3.Error as exc:
            return self._unjournaled(ev, scanner, exc, mono)
        if self.journal_alarm is not None:
            logger.warning("journal writable again; alarm cleared")
            self.journal_alarm = None
        passed, acted = (self._move_gate(scan_id, ev, own, source) if self.gate is not None
                         else (None, None))
        # The relay has moved: the disk can be spared for a checkpoint now.
        self.journal.checkpoint_if_due()
        logger.info(
            "scan %s at %s: %s (%s)", mask(ev.barcode), scanner,
            "GRANTED" if granted else "DENIED", ev.decision.reason,
            extra={"SCAN_ID": scan_id, "SCAN_REASON": ev.decision.reason,
                   "SCAN_GRANTED": int(granted), "SCANNER": scanner,
                   "TICKET_SOURCE": source or "", "PASSED": "" if passed is None else int(passed)},
        )
        outcome = Outcome(scan_id, ev, passed, scanner,
                          None if acted is None else acted - mono)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _upload_state(self, ev: Evaluation, source: str | None) -> str:
        """``pending`` when *source* registers this scan upstream (the drain sends it,
        from the journal), else ``local``."""
        uploader = self.uploaders.get(source or "")
        if uploader is None or not uploader.uploads(ev.decision.granted, ev.direction):
            return "local"
        if uploader.capabilities.first_entry_only and ev.usage.entries:
            return "local"  # the cloud counts uses itself: only a first entry goes up
        return "pending"

    def _unreadable_allowed(self, scanner: str) -> bool:
        """Token bucket per scanner: ``UNREADABLE_BURST`` at once, then one a second."""
        now = time.monotonic()
        tokens, last = self._unreadable_budget.get(scanner, (UNREADABLE_BURST, now))
        tokens = min(UNREADABLE_BURST, tokens + (now - last) * UNREADABLE_PER_S)
        allowed = tokens >= 1
        self._unreadable_budget[scanner] = (tokens - 1 if allowed else tokens, now)
        return allowed

    def _decide_or_deny(self, text: str, direction: str, now: float) -> Evaluation:
        """Decide; a decision that fails (e.g. an unexpected cache layout) is a denial.

        The denial is journaled like any other, with reason ``error``, and
        the failure stays an alarm until a decision succeeds again.
        """
        try:
            ev = self._decide(text, direction, now)
        except Exception as exc:
            what = f"{type(exc).__name__}: {exc}"[:200]
            if self.decision_alarm is None:
                logger.exception("decision failed; denying")
            self.decision_alarm = f"decisions failing: {what}"
            return Evaluation(text, direction, rules.Decision(False, rules.ERROR, what),
                              None, Usage())
        if self.decision_alarm is not None:
            logger.warning("decisions work again; alarm cleared")
            self.decision_alarm = None
        return ev

    def _move_gate(self, scan_id: int, ev: Evaluation, own: Usage,
                   source: str | None) -> tuple[bool | None, float | None]:
        """Open or deny after the journal's commit; journal what the gate did.

        Returns whether the arm turned (None: no sensor, or denied) and when
        the gate acted (monotonic; the metrics' scan-to-relay latency). A
        gate error ends any pulse (the arm locks unless held free), raises
        the gate alarm and settles the grant as ``unknown``.
        """
        assert self.gate is not None and self.journal is not None
        passed: bool | None = None
        acted: float | None = None
        try:
            if not ev.decision.granted:
                self.gate.deny()
                return None, time.monotonic()
            self.gate.grant(until_passage=True)
            acted = time.monotonic()
            if self.gate.has_passage_sensor:
                passed = self.gate.wait_passage()
                self.journal.record_passage(scan_id, passed, own, source, ev.barcode)
            else:
                self.journal.record_outcome(scan_id, "opened")
            self.gate_alarm = None
        except Exception as exc:
            logger.exception("gate failed after scan #%d; arm back to idle", scan_id)
            self.gate_alarm = f"gate failed: {type(exc).__name__}: {exc}"[:200]
            self.gate.fail_safe()
            if ev.decision.granted and passed is None:
                with contextlib.suppress(sqlite3.Error):
                    self.journal.record_outcome(scan_id, "unknown", " (gate error)")
        return passed, acted

    def _unjournaled(self, ev: Evaluation, scanner: str, exc: sqlite3.Error,
                     t_read: float) -> Outcome:
        """The journal cannot be written (disk full, I/O error): apply the policy.

        What is already in the journal stays intact (the failed transaction
        rolled back). ``deny`` keeps the gate shut; ``decide`` goes on
        admitting by the rules, unrecorded, and says so in the log.
        """
        policy = self.cfg.journal.on_write_failure
        if self.journal_alarm is None:
            logger.error("journal write failed (%s): policy %s", exc, policy)
        self.journal_alarm = f"journal write failed: {exc}"
        granted = ev.decision.granted and policy == "decide"
        acted: float | None = None
        if self.gate is not None:
            (self.gate.grant if granted else self.gate.deny)()
            acted = time.monotonic()
        logger.warning("scan %s at %s NOT JOURNALED: %s", mask(ev.barcode), scanner,
                       "GRANTED" if granted else "DENIED")
        decision = ev.decision if granted or not ev.decision.granted else rules.Decision(
            False, ev.decision.reason, "journal unwritable: policy deny")
        outcome = Outcome(0, Evaluation(ev.barcode, ev.direction, decision, ev.ticket,
                                        ev.usage), None, scanner,
                          None if acted is None else acted - t_read)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome
