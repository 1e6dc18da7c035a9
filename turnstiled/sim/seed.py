"""Deterministic ticket data for the emulators: same name, seed and ``now``, same tickets.

Every emulator draws from ``rng(name, seed)`` and places its tickets in
time relative to its ``now`` (the start time unless given), so two
emulators started with the same seed and ``now`` serve identical data.

Code formats, as each vendor prints them on a ticket:

- vivenu barcode: 12 of ``[0-9A-Z]`` (the OpenAPI asks for at least 8);
- CrowdManager barcode: 16 digits;
- Octopus access code: 8 lower-case letters and digits without look-alikes;
- TickeTing serial ``[0-9A-Z]{6}-[0-9A-Z]{12}``, admission token code
  ``[0-9A-Z]{8}``;
- chapter-event ``external_id``: 6 random capital letters.
"""

from __future__ import annotations

import itertools
import random
import string
import time
from collections.abc import Callable, Container, Sequence
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")

ALNUM = string.digits + string.ascii_uppercase
OCTOPUS_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
FIRST = ("Ada", "Bo", "Chloé", "Dmitri", "Elif", "Finn", "Greta", "Hiro", "Ines", "Jonas",
         "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
         "Ulla", "Viktor", "Wen", "Yara", "Zoltan")
LAST = ("Berg", "Costa", "Dubois", "Eriksen", "García", "Hansen", "Ivanova", "Jensen",
        "Kowalski", "Lund", "Müller", "Nakamura", "Olsen", "Petit", "Rossi", "Schmidt",
        "Tanaka", "Vega", "Wójcik", "Young")
DAY = 86400


def rng(name: str, seed: int, *parts: object) -> random.Random:
    """The generator of emulator *name* with *seed* (and an optional sub-stream)."""
    return random.Random(":".join(str(p) for p in (name, seed, *parts)))


def code(r: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(r.choices(alphabet, k=n))


def unique(make: Callable[[], str], *taken: Container[str]) -> str:
    """A new value of *make* in none of *taken* (short codes do collide at 100,000 tickets)."""
    while True:
        value = make()
        if not any(value in t for t in taken):
            return value


def hexid(r: random.Random) -> str:
    """A 24-hex-digit id like MongoDB's ObjectId."""
    return f"{r.getrandbits(96):024x}"


def uuid(r: random.Random) -> str:
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def person(r: random.Random) -> tuple[str, str]:
    return r.choice(FIRST), r.choice(LAST)


def email(first: str, last: str, n: int) -> str:
    plain = "".join(c for c in f"{first}.{last}".lower() if (c.isascii() and c.isalpha())
                    or c == ".")
    return f"{plain}{n}@example.org"


def weighted(table: Sequence[tuple[T, float]]) -> Callable[[random.Random], T]:
    """A function drawing a value of *table* with its weight from a generator."""
    values = [v for v, _ in table]
    cum = list(itertools.accumulate(w for _, w in table))
    return lambda r: r.choices(values, cum_weights=cum)[0]


def vivenu_barcode(r: random.Random) -> str:
    return code(r, 12)


def crowdmanager_barcode(r: random.Random) -> str:
    return code(r, 16, string.digits)


def octopus_code(r: random.Random) -> str:
    return code(r, 8, OCTOPUS_ALPHABET)


def ticketing_serial(r: random.Random) -> str:
    return f"{code(r, 6)}-{code(r, 12)}"


def ticketing_token_code(r: random.Random) -> str:
    return code(r, 8)


def external_id(r: random.Random) -> str:
    return code(r, 6, string.ascii_uppercase)


def spread(now: float, i: int, n: int, span: float) -> float:
    """The creation time of ticket *i* of *n*, sold evenly over the *span* s before *now*."""
    return now - span + span * (i + 0.5) / max(1, n)


# -- times as the vendors write them ------------------------------------------
def iso_ms(ms: int) -> str:
    """Unix milliseconds as ``2030-01-23T23:00:00.123Z``, as vivenu writes times (exact)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def iso_s(ts: float) -> str:
    """``2025-01-31T18:00:00+00:00``, as TickeTing and Octopus write times."""
    return datetime.fromtimestamp(int(ts), UTC).isoformat(timespec="seconds")


def iso_local(ts: float, offset_h: int = 1) -> str:
    """``2025-12-05T18:30:00+01:00``, as the chapter-event (Django) server writes times."""
    from datetime import timedelta, timezone
    return datetime.fromtimestamp(int(ts), timezone(timedelta(hours=offset_h))).isoformat()


def parse_iso(text: str) -> float:
    """An ISO 8601 time as Unix seconds (UTC if it has no offset); ValueError if bad.

    A ``+`` sent unencoded in a query string arrives as a space: it is read back.
    """
    text = text.strip()
    if len(text) > 19 and text[19:].startswith((" ", ".")) and " " in text[19:]:
        text = text[:19] + text[19:].replace(" ", "+")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_iso_ms(text: str) -> int:
    """An ISO 8601 time as Unix milliseconds."""
    return round(parse_iso(text) * 1000)
