"""Faithful emulators of the five ticket clouds, for tests, the demo, benchmarks and bench tests.

    from turnstiled.sim import start_emulator

    with start_emulator("vivenu", port=0, tickets=1000, seed=1) as emu:
        emu.base_url          # http://127.0.0.1:PORT/api/accessusers
        emu.credentials       # {"token": ..., "event_ids": "id1,id2,id3"}
        emu.state.cancel(barcode); emu.state.add(3)   # bumps updatedAt
        emu.faults.add("POST /api/accessusers/scans/*=503x2")
        emu.records.all("scan")                        # what reached the cloud

One module per cloud (:mod:`~turnstiled.sim.vivenu`, ``octopus``,
``crowdmanager``, ``ticketing``, ``chapterevents``); their common base in
:mod:`~turnstiled.sim.server`, requests and responses on the wire in
:mod:`~turnstiled.sim.wire`, the admin API in :mod:`~turnstiled.sim.admin`,
the fault syntax in :mod:`~turnstiled.sim.faults` and what a fault does to
the answer in :mod:`~turnstiled.sim.misbehave`, ticket changes in
:mod:`~turnstiled.sim.state`, deterministic data in
:mod:`~turnstiled.sim.seed`. ``turnstiled-sim`` runs them from the command
line; ``python -m turnstiled.sim.bench`` times the vivenu emulator.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from turnstiled.sim.chapterevents import ChapterEventsEmulator
from turnstiled.sim.crowdmanager import CrowdManagerEmulator
from turnstiled.sim.faults import Fault, FaultSet, FaultSpecError, split_target
from turnstiled.sim.octopus import OctopusEmulator
from turnstiled.sim.records import Records
from turnstiled.sim.server import Emulator
from turnstiled.sim.state import TicketState
from turnstiled.sim.ticketing import TicketingEmulator
from turnstiled.sim.vivenu import VivenuEmulator
from turnstiled.sim.wire import HttpError

EMULATORS: dict[str, type[Emulator[Any]]] = {
    "vivenu": VivenuEmulator,
    "octopus": OctopusEmulator,
    "crowdmanager": CrowdManagerEmulator,
    "ticketing": TicketingEmulator,
    "chapterevents": ChapterEventsEmulator,
}


def start_emulator(name: str, *, port: int = 0, tickets: int = 100, seed: int = 1,
                   host: str = "127.0.0.1", now: float | None = None,
                   faults: Iterable[str] = (), **options: Any) -> Emulator[Any]:
    """Start the emulator *name* on *port* (0: any free port) and return it, serving.

    *faults* are rules ``ROUTE=SPEC`` (see :mod:`turnstiled.sim.faults`); *now*
    fixes the time the seeded tickets are placed around (default: the start);
    *options* go to the emulator class (e.g. ``strings="always"`` for
    CrowdManager, ``sync_interval=60`` for vivenu).
    """
    try:
        cls = EMULATORS[name]
    except KeyError:
        raise ValueError(f"unknown emulator {name!r} (known: {', '.join(EMULATORS)})") from None
    return cls(port=port, tickets=tickets, seed=seed, host=host, now=now, faults=faults,
               **options).start()


def start_all(*, port_base: int = 0, tickets: int = 100, seed: int = 1,
              host: str = "127.0.0.1", now: float | None = None, faults: Iterable[str] = (),
              options: dict[str, dict[str, Any]] | None = None) -> list[Emulator[Any]]:
    """All five emulators on ports *port_base*, *port_base* + 1, ... (0: any free ports).

    A fault rule may start with ``NAME:`` to apply to one emulator only.
    """
    rules = [split_target(r, EMULATORS) for r in faults]
    running: list[Emulator[Any]] = []
    try:
        for i, name in enumerate(EMULATORS):
            mine = [rule for target, rule in rules if target in (None, name)]
            running.append(start_emulator(
                name, port=port_base + i if port_base else 0, tickets=tickets, seed=seed,
                host=host, now=now, faults=mine, **(options or {}).get(name, {})))
    except BaseException:
        for emu in running:
            emu.stop()
        raise
    return running


__all__ = [
    "EMULATORS", "ChapterEventsEmulator", "CrowdManagerEmulator", "Emulator", "Fault",
    "FaultSet", "FaultSpecError", "HttpError", "OctopusEmulator", "Records", "TicketState",
    "TicketingEmulator", "VivenuEmulator", "start_all", "start_emulator",
]
