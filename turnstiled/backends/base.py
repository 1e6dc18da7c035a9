"""The one small interface every ticket cloud implements, and its errors.

A backend knows HTTP and its vendor's shapes; it never touches SQLite or
GPIO. It turns vendor pages into :class:`~turnstiled.rules.Ticket` lists
(or, for a bulk list, :class:`Rows`) for :mod:`turnstiled.sync`, and
declares what it can do in :class:`Capabilities`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnstiled.backends.window import Anchor
from turnstiled.cache_tables import decode_zones
from turnstiled.errors import TurnstileError
from turnstiled.rules import Decision, Ticket


class BackendError(TurnstileError, OSError):
    """A ticket cloud could not be used right now."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # The request may have reached the cloud and been applied (a reset or
        # timeout after it was written, a 5xx): what it carried may be resent.
        self.ambiguous = ambiguous


class TransientError(BackendError):
    """Network trouble, 5xx, 429, HTML or half a page: try again later."""


class TimedOut(TransientError):
    """No answer within the time allowed: to a scan waiting on it, the same as its deadline."""


class AuthError(BackendError):
    """Credentials refused (401/403): no retry helps until a technician acts."""


class UpgradeRequired(BackendError):
    """The cloud wants a newer client (TickeTing 412): client upgrade required."""


class Rejected(BackendError):
    """The cloud refused this request (400/404) without saying which part of it."""


class RequestRefused(Rejected):
    """Refused as a whole (an event the device no longer sees): no row is at fault."""


class Misconfigured(BackendError):
    """An answer no working set-up gives (wrong URL, HTML 404, a redirect): a technician acts."""


class Unrecognised(BackendError):
    """The cloud does not know our code or event (a 404 that no retry mends): an alarm."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; sync and the drain only call what is declared."""

    full_sync: bool = False
    delta_sync: bool = False
    online_check: bool = False
    scan_upload: bool = False
    # The cloud counts a ticket's uses (chapter-event): only a ticket's first
    # entry here is registered upstream; re-entries stay in the local journal.
    first_entry_only: bool = False


class Rows:
    """A page of one source's tickets as plain tuples: a bulk list's cheap form.

    Each row is (barcode, event, status, zones, name, ticket_id) of a
    :class:`~turnstiled.rules.Ticket` whose ``entries`` is the page's and
    which has no validity or use window; its zones hold no empty name.
    Building a Ticket per row costs more than decoding the row, so the cache
    writes these as they are; iterating a page gives Tickets. *encoded*:
    each row's zones are already the cache's text of them
    (:func:`~turnstiled.cache_tables.encode_zones`), not a tuple, so the
    cache binds the rows as they are.
    """

    __slots__ = ("encoded", "entries", "rows", "source")

    def __init__(self, source: str, entries: str, rows: list[tuple[str, str, str, Any, str, str]],
                 *, encoded: bool = False) -> None:
        self.source = source
        self.entries = entries
        self.rows = rows
        self.encoded = encoded

    def __iter__(self) -> Iterator[Ticket]:
        src, entries = self.source, self.entries
        if self.encoded:
            return (Ticket(src, b, e, s, decode_zones(z), None, None, entries, n, t)
                    for b, e, s, z, n, t in self.rows)
        return (Ticket(src, b, e, s, z, None, None, entries, n, t)
                for b, e, s, z, n, t in self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class OnlineAnswer:
    """What a cloud says of a barcode the cache does not know."""

    ticket: Ticket | None
    verdict: Decision | None = None  # None: the local rules decide on `ticket`
    times_used: int | None = None  # uses the cloud counted (anyone's, ours included)
    note: str = ""  # what the cloud said, for ``turnstilectl lookup``


@dataclass(frozen=True)
class UploadScan:
    """One journaled scan as a backend uploads it."""

    nonce: str
    barcode: str
    at: float
    granted: bool
    direction: str
    event: str | None
    ticket_id: str | None
    gate_id: str
    resent: bool = False  # sent before without a known answer (crash or lost reply)


@dataclass
class UploadResult:
    """Per nonce: what the cloud said of each scan; a nonce left out goes back to pending.

    ``ours``: scans the cloud already holds without saying whose they are;
    the drain confirms a ``resent`` one (our own earlier send) and rejects
    one never sent before (someone else's). TickeTing and chapter-event
    can tell whose it is, so they look at :attr:`UploadScan.resent`
    themselves and answer ``confirmed`` or ``rejected``. ``unsure``: sent,
    but the answer was lost (they go back to pending marked ``resent``).
    """

    confirmed: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    ours: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)


@dataclass
class Delta:
    """Pages of tickets, and where the next delta window starts once they are read.

    ``full_sync`` of a backend with deltas returns one too, so the first
    delta after a full sync starts at the cloud's time the full sync began.
    """

    pages: Iterator[list[Ticket] | Rows]
    anchor: Anchor

    def __iter__(self) -> Iterator[list[Ticket] | Rows]:
        return self.pages

    @property
    def cursor(self) -> str | None:
        """The next window's start in the cloud's time (read it after the pages)."""
        return self.anchor.cursor()


class Backend:
    """Base of the five cloud backends; subclasses override what they declare."""

    name: str = ""
    capabilities = Capabilities()
    settings: Any = None

    def sync_interval(self) -> float:
        """Seconds between delta syncs (``sync_interval_s``; 10 if unset)."""
        return float(getattr(self.settings, "sync_interval_s", 0) or 10.0)

    def full_sync_interval(self) -> float:
        """Seconds between full syncs (``full_sync_interval_s``; 6 h if unset)."""
        return float(getattr(self.settings, "full_sync_interval_s", 0) or 21600.0)

    def uploads(self, granted: bool, direction: str) -> bool:
        """Whether a scan with this outcome is sent to the cloud (else kept locally)."""
        return self.capabilities.scan_upload

    def online_deadline(self) -> float | None:
        """Hard deadline of an online check, or None when it is switched off."""
        if not self.capabilities.online_check or not getattr(self.settings, "online_check",
                                                             False):
            return None
        return float(getattr(self.settings, "online_deadline_s", 0.8))

    def full_sync(self) -> Iterator[list[Ticket]] | Delta:
        """Every ticket this gate may see, page by page (streamed, never all at once).

        A backend with deltas returns a :class:`Delta`, whose cursor anchors the
        next delta window on the cloud's clock.
        """
        raise BackendError(f"{self.name} has no ticket list")

    def delta_sync(self, cursor: str) -> Delta:
        """Tickets changed since *cursor*, a cloud time from the last sync's ``Delta``."""
        raise BackendError(f"{self.name} has no delta sync")

    def online_check(self, barcode: str) -> OnlineAnswer:
        """Ask the cloud about one barcode (the caller enforces the hard deadline).

        Never changes anything upstream: a ticket is used only from the
        journal (the drain), after the gate granted it.
        """
        raise BackendError(f"{self.name} has no online check")

    def offline_answer(self, barcode: str) -> OnlineAnswer | None:
        """What to do when the online check cannot be made (None: unknown, deny)."""
        return None

    def upload(self, scans: Sequence[UploadScan], prepared: Any = None) -> UploadResult:
        """Send journaled scans; raise for the whole batch, or answer per scan.

        *prepared*: what :meth:`prepare_upload` built for exactly these *scans*.
        """
        raise BackendError(f"{self.name} has no scan upload")

    def prepare_upload(self, scans: Sequence[UploadScan]) -> Any:
        """The request bodies for *scans*, built ahead (the drain calls it on another
        thread while the batch before is under way); None: :meth:`upload` builds them."""
        return None

    def status(self) -> dict[str, Any]:
        """Backend-specific facts for ``turnstilectl status`` (never secrets)."""
        return {}

    def connect(self) -> None:
        """Make the HTTP client now (httpx is imported at its first use: see
        :mod:`turnstiled.backends.http`), so that a scan never waits for it."""
        http = getattr(self, "http", None)
        if http is not None:
            http.open()

    def close(self) -> None:
        """Release HTTP connections."""
