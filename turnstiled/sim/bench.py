"""Time the vivenu emulator serving every ticket page by page over loopback.

    python -m turnstiled.sim.bench [--tickets 100000] [--page 1000] [--in-process]

Starts the vivenu emulator with 100,000 tickets (by default in its own
process, ``turnstiled-sim vivenu --json``, as a cloud would be), then
downloads ``tickets/v2/{eventId}`` of every event with httpx, advancing
``skip`` by ``--page``, parses each page and checks that every ticket came
exactly once. Prints the seconds taken and tickets per second. This is the
yardstick of the sync benchmark: the emulator must never be its bottleneck.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any


def download(base_url: str, token: str, events: list[str], page: int) -> tuple[int, int, float]:
    """Every ticket of *events*: (tickets, pages, seconds)."""
    import httpx

    seen: set[str] = set()
    pages = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=base_url + "/", headers={"token": token}, timeout=30) as c:
        for event in events:
            skip = 0
            while True:
                r = c.get(f"tickets/v2/{event}", params={"top": page, "skip": skip})
                r.raise_for_status()
                body = r.json()
                pages += 1
                seen.update(d["_id"] for d in body["docs"])
                skip += len(body["docs"])
                if not body["docs"] or skip >= body["total"]:
                    break
    dt = time.perf_counter() - t0
    return len(seen), pages, dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m turnstiled.sim.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--page", type=int, default=1000, help="top: tickets per page (1..1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--in-process", action="store_true",
                    help="run the emulator in this process (it then shares the GIL)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    proc: subprocess.Popen[str] | None = None
    emu: Any = None
    if args.in_process:
        from turnstiled.sim import start_emulator
        emu = start_emulator("vivenu", tickets=args.tickets, seed=args.seed)
        desc = emu.describe()
    else:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "turnstiled.sim", "vivenu", "--port", "0", "--tickets",
             str(args.tickets), "--seed", str(args.seed), "--json"],
            stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        desc = json.loads(proc.stdout.readline())
    seeding = time.perf_counter() - t0
    try:
        creds = desc["credentials"]
        n, pages, dt = download(desc["base_url"], creds["token"],
                                creds["event_ids"].split(","), args.page)
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    where = "in this process" if args.in_process else "in its own process"
    print(f"vivenu emulator {where}: {n:,} tickets in {pages} pages of up to {args.page:,} "
          f"over loopback (parsed): {dt:.2f} s, {n / dt:,.0f} tickets/s "
          f"(start and seeding took {seeding:.2f} s)")
    if n != args.tickets:
        print(f"expected {args.tickets:,} distinct tickets, got {n:,}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
