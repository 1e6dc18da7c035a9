"""``turnstiled-sim``: run the cloud emulators for a bench test or the demo.

    turnstiled-sim all --port-base 8100 --tickets 5000
    turnstiled-sim vivenu --port 8100 --tickets 100000 --seed 7
    turnstiled-sim vivenu --fault 'POST /api/accessusers/scans/*=503x3'

Prints one line per emulator (name, base URL, credentials; ``--json``: one
JSON object per line) and runs until interrupted. Faults: ROUTE=SPEC, see
``turnstiled.sim.server`` (e.g. ``500``, ``429:5x2``, ``hang:30%10``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from turnstiled.sim import EMULATORS, start_emulator
from turnstiled.sim.server import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnstiled-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=[*EMULATORS, "all"])
    parser.add_argument("--port", type=int, default=0, help="port of a single emulator")
    parser.add_argument("--port-base", type=int, default=8100,
                        help="with 'all': first of five consecutive ports")
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault", action="append", default=[], metavar="[NAME:]ROUTE=SPEC",
                        help="inject a fault (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    names = list(EMULATORS) if args.which == "all" else [args.which]
    running: list[Emulator] = []
    try:
        for i, name in enumerate(names):
            port = args.port_base + i if args.which == "all" else args.port
            running.append(start_emulator(name, port=port, tickets=args.tickets,
                                          seed=args.seed))
        for spec in args.fault:
            target, sep, rest = spec.partition(":")
            if not (sep and target in EMULATORS):
                target, rest = "", spec
            route, _, fault = rest.rpartition("=")
            for emu in running:
                if not target or emu.name == target:
                    emu.add_fault(route, fault)
    except (OSError, ValueError) as exc:
        print(f"turnstiled-sim: {exc}", file=sys.stderr)
        for emu in running:
            emu.stop()
        return 2
    for emu in running:
        d = emu.describe()
        if args.json:
            print(json.dumps(d), flush=True)
        else:
            creds = " ".join(f"{k}={v}" for k, v in d["credentials"].items())
            print(f"{d['name']:<14} {d['base_url']:<40} {creds}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for emu in running:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
