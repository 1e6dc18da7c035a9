"""``turnstiled-sim``: run the cloud emulators for a bench test, the demo or a benchmark.

    turnstiled-sim all --port-base 8100 --tickets 5000
    turnstiled-sim vivenu --port 8100 --tickets 100000 --seed 7
    turnstiled-sim all --fault 'vivenu:POST /api/accessusers/scans/*=503x3'
    turnstiled-sim crowdmanager --fault '*=latency:300,429:5%10' --strings always

Prints one line per emulator: its name, base URL and credentials (``--json``:
one JSON object per line with ``name``, ``base_url``, ``credentials``), then
serves until SIGINT or SIGTERM. Port 0 picks free ports.

Faults (``--fault``, repeatable): ``[NAME:]ROUTE=SPEC[,SPEC...]``; NAME picks
one emulator (default: all). ROUTE is a glob over ``METHOD /path`` or
``/path`` (full, or below the base path). SPEC is ``KIND[!][:ARG][xN][%P][@K]``:
KIND ``500``/``503``/any 400-599 status, ``429`` (ARG: Retry-After s),
``latency`` (ARG ms), ``hang`` (no answer for ARG s), ``reset`` (RST
mid-body), ``stall`` (half the body, then silence for ARG s), ``truncate``
(half the JSON), ``html200``, ``html404``, ``html502``, ``auth`` (credentials refused).
The request is not applied, except by ``stall`` and ``truncate``; ``!``
applies it first (``hang!``, ``reset!``: the cloud took it, the answer is
lost). ``xN``: the next N matching requests only (``x1`` one-shot, default
always); ``%P``: with probability P percent (seeded); ``@K``: after letting
K matching requests through. Several SPECs: comma-separated.

At run time each emulator takes faults, ticket changes and gives back
what it received on its own port under ``/__admin/`` (``records``,
``requests``, ``faults``, ``tickets``); see ``turnstiled.sim.admin``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from turnstiled.sim import EMULATORS, start_all, start_emulator
from turnstiled.sim.server import Emulator

logger = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="turnstiled-sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=[*EMULATORS, "all"], help="the emulator to run, or all")
    ap.add_argument("--port", type=int, default=0, help="port of a single emulator (0: free)")
    ap.add_argument("--port-base", type=int, default=8100,
                    help="with 'all': first of five consecutive ports (default 8100; "
                         "0: free ports)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (0.0.0.0 to reach it from a gate)")
    ap.add_argument("--tickets", type=int, default=1000, help="tickets to seed (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    ap.add_argument("--now", type=float, default=None,
                    help="Unix time the seeded data is placed around (default: the start)")
    ap.add_argument("--fault", action="append", default=[], metavar="[NAME:]ROUTE=SPEC",
                    help="inject a fault (repeatable), see above")
    ap.add_argument("--strings", choices=("alternate", "always", "never"), default="alternate",
                    help="CrowdManager: send count and page as strings (default: every "
                         "second answer)")
    ap.add_argument("--sync-interval", type=int, default=15,
                    help="vivenu: the device's ticketSyncInterval (5, 15, ... 900)")
    ap.add_argument("--chapterevents-prefix", default="", metavar="PATH",
                    help="chapter-event: the deployment's URL prefix (e.g. bittan/api)")
    ap.add_argument("--nonatomic-use", type=float, default=0.0, metavar="SECONDS",
                    help="chapter-event: read and save times_used this far apart, so "
                         "parallel uses of one code can all read 0 (as the real server)")
    ap.add_argument("--clock-offset", type=float, default=0.0, metavar="S",
                    help="run the clouds' clocks S seconds from this machine's (Date "
                         "headers, modification times)")
    ap.add_argument("--edits-per-page", type=int, default=0, metavar="N",
                    help="edit N tickets after every list page served (a box office at work)")
    ap.add_argument("--json", action="store_true", help="one JSON object per emulator line")
    ap.add_argument("--log-level", default="WARNING", help="e.g. INFO to see every fault added")
    return ap


def start(args: argparse.Namespace) -> list[Emulator]:
    options = {"crowdmanager": {"strings": args.strings},
               "vivenu": {"sync_interval": args.sync_interval},
               "chapterevents": {"prefix": args.chapterevents_prefix,
                                 "nonatomic_use_s": args.nonatomic_use}}
    common = {"tickets": args.tickets, "seed": args.seed, "host": args.host, "now": args.now}
    for name in EMULATORS:
        options.setdefault(name, {}).update(clock_offset=args.clock_offset,
                                            edits_per_page=args.edits_per_page)
    if args.which == "all":
        return start_all(port_base=args.port_base, faults=args.fault, options=options,
                         **common)
    from turnstiled.sim.faults import split_target
    rules = []
    for rule in args.fault:
        target, rest = split_target(rule, EMULATORS)
        if target not in (None, args.which):
            raise ValueError(f"fault {rule!r} is for {target}, not {args.which}")
        rules.append(rest)
    return [start_emulator(args.which, port=args.port, faults=rules,
                           **options.get(args.which, {}), **common)]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    before = {sig: signal.signal(sig, lambda *_: stop.set())
              for sig in (signal.SIGTERM, signal.SIGINT)}
    running: list[Emulator] = []
    try:
        running = start(args)
        for emu in running:
            d = emu.describe()
            if args.json:
                print(json.dumps(d), flush=True)
            else:
                creds = " ".join(f"{k}={v}" for k, v in d["credentials"].items())
                print(f"{d['name']:<14} {d['base_url']:<44} {creds}", flush=True)
        while not stop.wait(0.5):
            pass
    except (OSError, ValueError) as exc:
        print(f"turnstiled-sim: {exc}", file=sys.stderr)
        return 2
    finally:
        for emu in running:
            emu.stop()
        for sig, handler in before.items():
            signal.signal(sig, handler)
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
