"""Deterministic ticket data for the emulators: same seed, same tickets."""

from __future__ import annotations

import random
import string
import time
from datetime import UTC, datetime

FIRST = ("Ada", "Bo", "Chloé", "Dmitri", "Elif", "Finn", "Greta", "Hiro", "Ines", "Jonas",
         "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara")
LAST = ("Berg", "Costa", "Dubois", "Eriksen", "García", "Hansen", "Ivanova", "Jensen",
        "Kowalski", "Lund", "Müller", "Nakamura", "Olsen", "Petit", "Rossi", "Schmidt")
ZONES = ("GA", "VIP", "BACKSTAGE", "NORTH", "SOUTH")


def iso_ms(ts: float) -> str:
    """``2030-01-23T23:00:00.123Z`` like vivenu writes it."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def iso_s(ts: float) -> str:
    """``2025-01-31T18:00:00+00:00`` like TickeTing writes it."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def code(rng: random.Random, n: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def hexid(rng: random.Random) -> str:
    """A 24-hex-digit id like MongoDB's ObjectId."""
    return f"{rng.getrandbits(96):024x}"


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def base_time() -> float:
    """Tickets are created in the hour before the emulator starts."""
    return time.time() - 3600
