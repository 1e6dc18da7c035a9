"""Drain of 10,000 journaled scans to the vivenu emulator (target <= 5 s).

Usage: ``scripts/bench drain [--scans 10000]``

The emulator runs in its own process. The journal is filled through
:class:`turnstiled.journal.Journal` (durable commits, as at the gate);
then the drainer uploads everything in its default batches and the time
from the first claim to the last confirmation is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.drain import Drainer
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision
from turnstiled.secret import Secret


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scans", type=int, default=10_000)
    args = ap.parse_args()
    sim = subprocess.Popen([sys.executable, "-m", "turnstiled.sim", "vivenu", "--port", "0",
                            "--tickets", "5000", "--json"], stdout=subprocess.PIPE, text=True)
    desc = json.loads(sim.stdout.readline())
    admin = desc["base_url"].replace("/api/accessusers", "/__admin")
    try:
        tickets = httpx.post(f"{admin}/tickets", json={"action": "list", "limit": 5000}).json()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "journal.db"
            journal = Journal(path)
            t0 = time.perf_counter()
            for i in range(args.scans):
                t = tickets[i % len(tickets)]
                journal.record(Scan(1_790_000_000.0 + i * 0.25, "bench", "s", "in",
                                    t["barcode"], Decision(i % 7 != 0, "granted"), "vivenu",
                                    t["eventId"], t["_id"]))
            fill = time.perf_counter() - t0
            backend = VivenuBackend(VivenuSettings(token=Secret(desc["credentials"]["token"]),
                                                   base_url=desc["base_url"]))
            drainer = Drainer(path, [backend])
            t0 = time.perf_counter()
            while journal.backlog():
                drainer.drain_once("vivenu")
            dt = time.perf_counter() - t0
            counts = journal.counts()
        on_record = len(httpx.get(f"{admin}/records", params={"kind": "scan"}).json())
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"journal filled with {args.scans:,} scans in {fill:.2f} s "
          f"({args.scans / fill:,.0f} durable commits/s)")
    print(f"drain of {args.scans:,} scans to the vivenu emulator: {dt:.2f} s "
          f"({args.scans / dt:,.0f} scans/s, batches of 500; target <= 5 s); "
          f"journal {counts}, emulator recorded {on_record:,}")


if __name__ == "__main__":
    main()
