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
(target <= 1.2). Beside it, not compared: the CPU seconds of the floor
and of the drain (this process: the floor's httpx work, the drain's
with its read-ahead thread), what reading the rows and building their
bodies costs alone, and the journal's work alone (the same drain to a
cloud that takes every scan at once, no HTTP): the minimum the drain
adds to the floor.

Then the scan path beside a drain: a copy of the same full journal is
drained again, by another process (as the daemon's cloud process does),
while this one journals a scan every 2 ms (durable one-row commits, as
the gate does) and times each commit; the same commits with no drain
running, before and after, are the comparison. The drain's transactions
must stay short enough that the scan path barely notices.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from turnstiled.backends.base import Backend, Capabilities, UploadResult
from turnstiled.backends.vivenu import NAME, VivenuBackend, VivenuSettings
from turnstiled.drain import Drainer
from turnstiled.drain_event import to_upload
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision, Usage
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


class TakesAll(Backend):
    """A cloud that takes every scan at once, with no HTTP: the journal's work alone."""

    name = NAME
    capabilities = Capabilities(scan_upload=True)

    def upload(self, scans, prepared=None):
        return UploadResult(confirmed=[s.nonce for s in scans])


def vivenu(desc: dict) -> VivenuBackend:
    """The backend, its HTTPS client made (the floor's client is made before its timing
    too; the daemon's is made once, at its first sync or upload)."""
    backend = VivenuBackend(VivenuSettings(token=Secret(desc["credentials"]["token"]),
                                           base_url=desc["base_url"]))
    backend.http.open()
    return backend


def drain_all(path: Path, backend: Backend) -> Drainer:
    """The drainer as the daemon sets it up, run until it finds nothing left to claim."""
    drainer = Drainer(path, [backend], batch_delay_s=JournalSettings().upload_batch_delay_s)
    while drainer.drain_once("vivenu"):
        pass
    return drainer


def body_costs(journal: Journal) -> dict[str, tuple[float, float]]:
    """Seconds (wall, CPU) to read every pending row as the read-ahead does, and to build
    their upload bodies from them (to_upload, the JSON bytes)."""
    backend = VivenuBackend(VivenuSettings(token=Secret("x"), base_url="http://127.0.0.1:9/"))
    c0, t0 = time.process_time(), time.perf_counter()
    rows = journal.peek(NAME, 10_000_000)
    out = {"rows read as the read-ahead reads them": (time.perf_counter() - t0,
                                                      time.process_time() - c0)}
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(rows), 500):
        backend.prepare_upload([to_upload(r) for r in rows[i:i + 500]])
    out["their bodies built"] = time.perf_counter() - t0, time.process_time() - c0
    backend.close()
    return out


def scan_commits(journal: Journal, n: int = 0,
                 until: subprocess.Popen | None = None) -> list[float]:
    """Seconds of each durable scan commit, one every 2 ms: *n* of them, or until *until* ends."""
    out: list[float] = []
    while (until is None and len(out) < n) or (until is not None and until.poll() is None):
        at = time.time()
        scan = Scan(at, "bench", "s", "in", f"LOCAL{len(out):06d}", Decision(True, "granted"),
                    "local-bench", upload="local")
        t0 = time.perf_counter()
        journal.record(scan, Usage(1, 0, True, at, at))
        out.append(time.perf_counter() - t0)
        time.sleep(0.002)
    return out


def pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"p50 {xs[len(xs) // 2] * 1e3:.2f} ms p99 {xs[int(len(xs) * 0.99)] * 1e3:.2f} ms "
            f"max {xs[-1] * 1e3:.2f} ms ({len(xs)} commits)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scans", type=int, default=10_000)
    ap.add_argument("--drain-child", nargs=2, metavar=("JOURNAL", "DESC"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drain_child:
        drain_all(Path(args.drain_child[0]), vivenu(json.loads(args.drain_child[1])))
        return
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
            copy = Path(tmp) / "copy.db"  # the same full journal, for the scan-path run
            alone = Path(tmp) / "alone.db"  # and for the journal's work alone
            for c in (copy, alone):
                with sqlite3.connect(c) as dst:
                    journal.conn.backup(dst)
            parts = body_costs(journal)
            batches = batches_of(scans)
            c0 = time.process_time()
            floor = bare_posts(desc, batches)
            floor_cpu = time.process_time() - c0
            backend = vivenu(desc)
            c0, t0 = time.process_time(), time.perf_counter()
            drainer = drain_all(path, backend)
            dt = time.perf_counter() - t0
            cpu = time.process_time() - c0
            c0, t0 = time.process_time(), time.perf_counter()
            drain_all(alone, TakesAll()).close()
            parts["journal work alone (a cloud that takes all at once, no HTTP)"] = (
                time.perf_counter() - t0, time.process_time() - c0)
            if journal.backlog() or drainer.alarms():
                sys.exit(f"drain stopped early: {journal.counts()} {drainer.alarms()}")
            counts = journal.counts()
            floor = min(floor, bare_posts(desc, batches))
            on_record = len(httpx.get(f"{admin}/records", params={"kind": "scan"}).json())
            gate = Journal(copy)
            alone = scan_commits(gate, 300)
            child = subprocess.Popen([sys.executable, __file__, "--drain-child", str(copy),
                                      json.dumps(desc)])
            beside = scan_commits(gate, until=child)
            alone += scan_commits(gate, 300)
            if child.returncode or gate.backlog().get(NAME):
                sys.exit(f"the second drain failed: {gate.counts()}")
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"journal filled with {args.scans:,} scans in {fill:.2f} s "
          f"({args.scans / fill:,.0f} durable commits/s)")
    print(f"drain of {args.scans:,} scans to the vivenu emulator: {dt:.2f} s "
          f"({args.scans / dt:,.0f} scans/s, batches of 500; target <= 5 s); "
          f"journal {counts}, emulator recorded {on_record:,} (with the bare POSTs' twice)")
    print(f"floor: the same {len(batches)} requests POSTed bare: {floor:.2f} s "
          f"(this process's CPU {floor_cpu:.2f} s; the drain's {cpu:.2f} s, its read-ahead "
          f"thread's included; {os.cpu_count()} cores, the emulator on one)")
    for what, (wall, c) in parts.items():
        print(f"  {what}: {wall:.3f} s, CPU {c:.3f} s")
    print(f"scan-path journal commit, one every 2 ms, while another process drains "
          f"{args.scans:,} scans: {pcts(beside)}; with no drain: {pcts(alone)}")
    p99 = sorted(beside)[int(len(beside) * 0.99)], sorted(alone)[int(len(alone) * 0.99)]
    print(f"SUMMARY drain: {dt:.2f} s vs bare POSTs {floor:.2f} s, ratio x{dt / floor:.2f} "
          f"(target <= 1.2); {args.scans / dt:,.0f} scans/s; scan commit p99 "
          f"{p99[0] * 1e3:.2f} ms while draining vs {p99[1] * 1e3:.2f} ms alone")


if __name__ == "__main__":
    main()
