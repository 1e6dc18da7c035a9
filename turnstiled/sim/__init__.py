"""Emulators of the five ticket clouds, with fault injection, for tests, demo and bench.

``start_emulator("vivenu", port=0, tickets=1000, seed=1)`` starts one on
127.0.0.1 and returns it (``.base_url``, ``.credentials``, ``.records``,
``.add_fault()``, ``.stop()``; a context manager). ``turnstiled-sim``
runs them from the command line.
"""

from __future__ import annotations

from typing import Any

from turnstiled.sim.chapterevents import ChapterEventsEmulator
from turnstiled.sim.crowdmanager import CrowdManagerEmulator
from turnstiled.sim.octopus import OctopusEmulator
from turnstiled.sim.server import Emulator, Fault, HttpError
from turnstiled.sim.ticketing import TicketingEmulator
from turnstiled.sim.vivenu import VivenuEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "vivenu": VivenuEmulator,
    "octopus": OctopusEmulator,
    "crowdmanager": CrowdManagerEmulator,
    "ticketing": TicketingEmulator,
    "chapterevents": ChapterEventsEmulator,
}


def start_emulator(name: str, **kwargs: Any) -> Emulator:
    """Start the emulator *name* (port 0 = any free port) and return it."""
    try:
        cls = EMULATORS[name]
    except KeyError:
        raise ValueError(f"unknown emulator {name!r} (known: {', '.join(EMULATORS)})") from None
    return cls(**kwargs).start()


__all__ = [
    "EMULATORS", "ChapterEventsEmulator", "CrowdManagerEmulator", "Emulator", "Fault",
    "HttpError", "OctopusEmulator", "TicketingEmulator", "VivenuEmulator", "start_emulator",
]
