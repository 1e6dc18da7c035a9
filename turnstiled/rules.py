"""The gate's decision: a pure function of ticket, usage, settings and time.

Nothing here does I/O. ``decide`` is called on every scan (and by
``turnstilectl lookup``) with what the cache and the journal know; it
returns a :class:`Decision` whose ``reason`` is a stable code shown in the
journal, the CLI's ``--json`` output and the cloud uploads.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stable reason codes (an interface: CLI --json, journal, README).
GRANTED = "granted"
EXIT = "exit"
UNKNOWN = "unknown"
UNREADABLE = "unreadable"
INVALID = "invalid"
CANCELLED = "cancelled"
WRONG_EVENT = "wrong_event"
WRONG_ZONE = "wrong_zone"
NOT_YET_VALID = "not_yet_valid"
EXPIRED = "expired"
ALREADY_USED = "already_used"
ALREADY_INSIDE = "already_inside"
REENTRY_NOT_ALLOWED = "reentry_not_allowed"
SOURCE_ERROR = "source_error"  # an online source refused us or is misconfigured: an alarm
VENUE_FULL = "venue_full"
MESH_PARTITIONED = "mesh_partitioned"
ERROR = "error"  # the decision itself failed (e.g. an unreadable cache): denied
CLOCK_UNSYNCHRONISED = "clock_unsynchronised"  # unsynced_clock = "deny", time-windowed ticket

DENY_REASONS = (
    UNKNOWN, UNREADABLE, INVALID, CANCELLED, WRONG_EVENT, WRONG_ZONE,
    NOT_YET_VALID, EXPIRED, ALREADY_USED, ALREADY_INSIDE, REENTRY_NOT_ALLOWED, SOURCE_ERROR,
    VENUE_FULL, MESH_PARTITIONED, ERROR, CLOCK_UNSYNCHRONISED,
)
# What the rules do with entry windows while the clock is known not to be
# synchronised ([gate] unsynced_clock).
CLOCK_POLICIES = ("trust", "deny", "admit")

STATUSES = ("valid", "invalid", "cancelled", "used", "wrong_zone")
# A ticket whose cloud did not say where it admits: no zone-restricted gate admits it.
ZONES_UNKNOWN = ("\x1e",)
POLICIES = ("single", "reentry", "unlimited")


@dataclass(frozen=True, slots=True)
class Ticket:
    """One ticket as the cache holds it (times are Unix seconds, UTC)."""

    source: str
    barcode: str
    event: str = ""
    status: str = "valid"
    zones: tuple[str, ...] = ()
    valid_from: float | None = None
    valid_until: float | None = None
    entries: str = "single"
    name: str = ""
    ticket_id: str = ""
    use_window_s: float | None = None  # timed pass: valid this long after first use


@dataclass(frozen=True, slots=True)
class Usage:
    """What this gate (and, over the venue mesh, its peers) knows a ticket has done."""

    entries: int = 0
    exits: int = 0
    inside: bool = False
    first_used: float | None = None
    last_at: float | None = None  # the last change (an entry, an exit, an annulment)


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The part of the gate configuration the rules read."""

    events: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    early_entry_s: float = 0.0
    late_entry_s: float = 0.0
    unsynced_clock: str = "trust"  # one of CLOCK_POLICIES


@dataclass(frozen=True, slots=True)
class Decision:
    """Open or not, and why."""

    granted: bool
    reason: str
    detail: str = ""


def parse_policy(text: str) -> str | int | tuple[str, int]:
    """``single`` | ``reentry`` | ``unlimited`` | N | ``reentry:S`` | ``inside:N``.

    N (a positive number) is N entries in all. ``inside:N`` lets at most N
    holders be inside at once (entries minus exits: a 4-person pass admits
    4; when one leaves, one may come back). ``reentry:S`` is re-entry where
    an entry counts as "inside" for at most S seconds: a card that never
    meets an exit scanner is not locked out for ever.
    """
    text = text.strip().lower()
    if text in POLICIES:
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    kind, _, number = text.partition(":")
    if kind in ("reentry", "inside") and number.isdigit() and int(number) > 0:
        return kind, int(number)
    raise ValueError("entry policy must be single, reentry, unlimited, a number >= 1, "
                     f"reentry:SECONDS or inside:N: {text!r}")


def entry_limit(text: str) -> int | None:
    """How many admissions a ticket allows in all (None: no fixed number)."""
    try:
        policy = parse_policy(text)
    except ValueError:
        return None
    if policy == "single":
        return 1
    return policy if isinstance(policy, int) else None


def unreadable(detail: str = "") -> Decision:
    """The decision for a scan the normaliser rejected."""
    return Decision(False, UNREADABLE, detail or "barcode could not be read")


def decide(
    ticket: Ticket | None,
    usage: Usage,
    settings: RuleSettings,
    now: float,
    direction: str = "in",
    clock_synced: bool | None = None,
) -> Decision:
    """Decide one scan at a scanner facing *direction* (``in`` or ``out``).

    *clock_synced* False (known not synchronised) puts the entry-window
    checks under ``settings.unsynced_clock``; True or None (unknown) trusts
    *now*.
    """
    if ticket is None:
        return Decision(False, UNKNOWN, "ticket not in cache")
    if direction == "out":
        # Never trap anyone: a known ticket may always leave.
        return Decision(True, EXIT, "leaving")
    if ticket.status == "cancelled":
        return Decision(False, CANCELLED, "ticket cancelled")
    if ticket.status == "used":
        return Decision(False, ALREADY_USED, "already admitted (recorded upstream)")
    if ticket.status == "wrong_zone":
        return Decision(False, WRONG_ZONE, "the cloud does not admit it at this device's zone")
    if ticket.status != "valid":
        return Decision(False, INVALID, f"ticket status {ticket.status}")
    if settings.events and ticket.event and ticket.event not in settings.events:
        return Decision(False, WRONG_EVENT, f"ticket is for event {ticket.event or '?'}")
    if settings.zones and ticket.zones == ZONES_UNKNOWN:
        return Decision(False, WRONG_ZONE, "the cloud did not say which zones it admits to")
    if settings.zones and ticket.zones and not set(ticket.zones) & set(settings.zones):
        return Decision(False, WRONG_ZONE, f"ticket zones {', '.join(ticket.zones)}")
    windowed = (ticket.valid_from is not None or ticket.valid_until is not None
                or (ticket.use_window_s is not None and usage.first_used is not None))
    if windowed and clock_synced is False and settings.unsynced_clock != "trust":
        if settings.unsynced_clock == "deny":
            return Decision(False, CLOCK_UNSYNCHRONISED, "the clock is not synchronised: "
                            "tickets with an entry window cannot be checked")
        return _check_entries(ticket, usage, now)  # "admit": windows are not checked
    if ticket.valid_from is not None and now < ticket.valid_from - settings.early_entry_s:
        return Decision(False, NOT_YET_VALID, "before the ticket's entry window")
    if ticket.valid_until is not None and now > ticket.valid_until + settings.late_entry_s:
        return Decision(False, EXPIRED, "after the ticket's entry window")
    if (ticket.use_window_s is not None and usage.first_used is not None
            and now > usage.first_used + ticket.use_window_s):
        return Decision(False, EXPIRED, "the pass's time since first use has run out")
    return _check_entries(ticket, usage, now)


def _check_entries(ticket: Ticket, usage: Usage, now: float) -> Decision:
    try:
        policy = parse_policy(ticket.entries)
    except ValueError:
        return Decision(False, INVALID, f"bad entry policy {ticket.entries!r}")
    if policy == "unlimited":
        return Decision(True, GRANTED, "unlimited entries")
    if policy == "reentry":
        if usage.inside:
            return Decision(False, ALREADY_INSIDE, "entered and has not left")
        return Decision(True, GRANTED, "re-entry" if usage.entries else "first entry")
    if isinstance(policy, tuple):
        kind, n = policy
        if kind == "inside":
            inside = max(0, usage.entries - usage.exits)
            if inside >= n:
                return Decision(False, ALREADY_INSIDE, f"{inside} of {n} inside")
            return Decision(True, GRANTED, f"{inside + 1} of {n} inside")
        lapsed = usage.last_at is not None and now - usage.last_at >= n
        if usage.inside and not lapsed:
            return Decision(False, ALREADY_INSIDE, "entered and has not left")
        return Decision(True, GRANTED, "re-entry" if usage.entries else "first entry")
    if policy == "single":
        if usage.entries == 0:
            return Decision(True, GRANTED, "first entry")
        if usage.exits and not usage.inside:
            return Decision(False, REENTRY_NOT_ALLOWED, "single-entry ticket already left")
        return Decision(False, ALREADY_USED, "single-entry ticket already used")
    assert isinstance(policy, int)
    if usage.entries >= policy:
        return Decision(False, ALREADY_USED, f"{usage.entries} of {policy} entries used")
    return Decision(True, GRANTED, f"entry {usage.entries + 1} of {policy}")


def venue_limits(decision: Decision, ticket: Ticket, direction: str, occupancy: int | None,
                 max_occupancy: int, partitioned: bool) -> Decision:
    """*decision* after the venue's limits: its zone's occupancy and a mesh partition.

    *occupancy* is the people inside the gate's zone (None: not counted);
    *partitioned*: the mesh has been unreachable past its grace period and
    the gate is told to refuse single-entry tickets meanwhile.
    """
    if not decision.granted or direction != "in":
        return decision
    if partitioned and entry_limit(ticket.entries) == 1:
        return Decision(False, MESH_PARTITIONED,
                        "venue mesh unreachable: single-entry tickets refused")
    if max_occupancy and occupancy is not None and occupancy >= max_occupancy:
        return Decision(False, VENUE_FULL, f"{occupancy} of {max_occupancy} inside")
    return decision


def apply(usage: Usage, decision: Decision, direction: str, now: float) -> Usage:
    """The usage after *decision* took effect (the journal stores the result)."""
    if not decision.granted:
        return usage
    if direction == "out":
        return Usage(usage.entries, usage.exits + 1, False, usage.first_used, now)
    first = usage.first_used if usage.first_used is not None else now
    return Usage(usage.entries + 1, usage.exits, True, first, now)
