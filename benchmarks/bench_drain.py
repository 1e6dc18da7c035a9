"""Drain of 10,000 journaled scans to the vivenu emulator, against bare POSTs.

Usage: ``scripts/bench drain [--scans 10000]``

The emulator runs in its own process. The journal is filled through
:class:`turnstiled.journal.Journal` (durable commits, as at the gate);
then the drainer, set up as the daemon sets it up (default batches and
``upload_batch_delay_s``), uploads everything; the time from the first
claim until the drain finds nothing left to claim is printed (target
<= 5 s).
The floor, in the same run against the same emulator: the same scans in
the same batches (500, one request per event) POSTed bare with httpx,
bodies built beforehand, measured before and after the drain (the best
of the two). The last line is the summary with the ratio drain/bare
(target <= 1.2).
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

from turnstiled.backends.vivenu import NAME, VivenuBackend, VivenuSettings
from turnstiled.drain import Drainer
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision
from turnstiled.secret import Secret
from turnstiled.settings import JournalSettings


def bare_posts(desc: dict, batches: list[tuple[str, list[dict]]]) -> float:
    """Seconds to POST *batches* (event, body) one after the other, nothing else."""
    c = httpx.Client(base_url=desc["base_url"] + "/",
                     headers={"token": desc["credentials"]["token"]})
    t0 = time.perf_counter()
    for event, body in batches:
        c.post(f"scans/{event}", json=body).raise_for_status()
    dt = time.perf_counter() - t0
    c.close()
    return dt


def batches_of(scans: list[Scan], size: int = 500) -> list[tuple[str, list[dict]]]:
    """The drain's requests for *scans*: *size* per batch, one request per event."""
    from turnstiled.timeutil import iso
    out = []
    for i in range(0, len(scans), size):
        by_event: dict[str, list[dict]] = {}
        for s in scans[i:i + size]:
            by_event.setdefault(s.event, []).append(
                {"ticketId": s.ticket_id, "barcode": s.barcode, "scanned_at": iso(s.at),
                 "type": "OK" if s.decision.granted else "FAIL", "direction": "IN"})
        out.extend(by_event.items())
    return out


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
            scans = []
            for i in range(args.scans):
                t = tickets[i % len(tickets)]
                scans.append(Scan(1_790_000_000.0 + i * 0.25, "bench", "s", "in",
                                  t["barcode"], Decision(i % 7 != 0, "granted"), NAME,
                                  t["eventId"], t["_id"]))
                journal.record(scans[-1])
            fill = time.perf_counter() - t0
            batches = batches_of(scans)
            floor = bare_posts(desc, batches)
            backend = VivenuBackend(VivenuSettings(token=Secret(desc["credentials"]["token"]),
                                                   base_url=desc["base_url"]))
            drainer = Drainer(path, [backend],
                              batch_delay_s=JournalSettings().upload_batch_delay_s)
            t0 = time.perf_counter()
            while drainer.drain_once("vivenu"):
                pass
            dt = time.perf_counter() - t0
            if journal.backlog() or drainer.alarms():
                sys.exit(f"drain stopped early: {journal.counts()} {drainer.alarms()}")
            counts = journal.counts()
            floor = min(floor, bare_posts(desc, batches))
        on_record = len(httpx.get(f"{admin}/records", params={"kind": "scan"}).json())
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"journal filled with {args.scans:,} scans in {fill:.2f} s "
          f"({args.scans / fill:,.0f} durable commits/s)")
    print(f"drain of {args.scans:,} scans to the vivenu emulator: {dt:.2f} s "
          f"({args.scans / dt:,.0f} scans/s, batches of 500; target <= 5 s); "
          f"journal {counts}, emulator recorded {on_record:,} (with the bare POSTs' twice)")
    print(f"floor: the same {len(batches)} requests POSTed bare: {floor:.2f} s")
    print(f"SUMMARY drain: {dt:.2f} s vs bare POSTs {floor:.2f} s, ratio x{dt / floor:.2f} "
          f"(target <= 1.2); {args.scans / dt:,.0f} scans/s")


if __name__ == "__main__":
    main()
