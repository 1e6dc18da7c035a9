"""Full sync of vivenu tickets: bare download vs sync into the cache, and memory.

Usage: ``scripts/bench sync [--tickets 100000]``

The vivenu emulator runs as its own process (``turnstiled-sim``), so the
figures are the client's alone. Prints:
- bare download: every 1,000-ticket page fetched over loopback and
  discarded (read, not parsed);
- full sync: the same pages through the vivenu backend and the syncer
  into an empty ``cache.db`` (parse, map, write, atomic swap), and the
  next full sync, which replaces that list;
- their ratio (target <= 1.3) and tickets/s (target >= 20,000);
- peak RSS of a process doing only the sync, at N/5, N and 3N tickets:
  streaming page by page, it must not grow with the ticket count;
- the size of ``cache.db`` and of its WAL after the sync;
- a CPU line, measured in the same run: what the download, the decoding
  and the build of the same rows from memory cost alone, and the least a
  sync can take on this machine (the download and the decoding are Python
  and hold the GIL one after the other; the barcode index and the durable
  commit can only start after the last page);
- last, one summary line with the ratio and tickets/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def start_sim(tickets: int, nice: bool = False) -> tuple[subprocess.Popen, dict]:
    """The vivenu emulator in its own process (*nice*: at the lowest priority), and its
    description."""
    proc = subprocess.Popen(["nice", "-n", "19"] * nice + [
                             sys.executable, "-m", "turnstiled.sim", "vivenu", "--port", "0",
                             "--tickets", str(tickets), "--json"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, json.loads(line)


def bare(desc: dict, parse: bool = False) -> tuple[float, int, float, float]:
    """Seconds, tickets, and the user and system CPU seconds of this process meanwhile."""
    import httpx
    c = httpx.Client(base_url=desc["base_url"] + "/",
                     headers={"token": desc["credentials"]["token"]})
    n = 0
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for ev in desc["credentials"]["event_ids"].split(","):
        skip = 0
        while True:
            body = c.get(f"tickets/v2/{ev}", params={"top": 1000, "skip": skip}).content
            got = len(json.loads(body)["docs"]) if parse else body.count(b'"barcode"')
            n += got
            skip += got
            if got < 1000:
                break
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    c.close()
    return dt, n, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def cpu_parts(desc: dict, proc: subprocess.Popen, workdir: str) -> dict:
    """What the sync's parts cost alone, in this process: CPU and wall seconds.

    The pages are fetched once into memory, then decoded and mapped as the
    sync does, then written into an empty ``cache.db`` from memory.
    """
    import httpx

    from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
    from turnstiled.backends.vivenu_tickets import decode_page, to_rows
    from turnstiled.cache import Cache
    from turnstiled.secret import Secret

    def emulator_cpu() -> float:
        with open(f"/proc/{proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    out: dict = {"download_user": 1e9}
    for _ in range(3):  # the download alone: the client's user CPU (Python, the GIL held)
        e0 = emulator_cpu()
        _, _, user, system = bare(desc)
        if user < out["download_user"]:
            out["download_user"], out["download_sys"] = user, system
            out["emulator"] = emulator_cpu() - e0
    b = VivenuBackend(VivenuSettings(token=Secret(desc["credentials"]["token"]),
                                     base_url=desc["base_url"]))
    device = b.refresh()
    c = httpx.Client(base_url=desc["base_url"] + "/",
                     headers={"token": desc["credentials"]["token"]})
    bodies = []
    for ev in b.events():
        skip = 0
        while True:
            body = c.get(f"tickets/v2/{ev}", params={"top": 1000, "skip": skip}).content
            bodies.append(body)
            got = body.count(b'"barcode"')
            skip += got
            if got < 1000:
                break
    c.close()
    b.close()
    t0 = time.process_time()
    pages = [to_rows(decode_page(body)["docs"], device) for body in bodies]
    out["decode"] = time.process_time() - t0
    del bodies
    last: list[float] = []

    def handed() -> object:
        yield from pages
        last.append(time.perf_counter())  # the last page handed to the writer

    cache = Cache(Path(workdir) / "cache.db")
    t0, c0 = time.perf_counter(), time.process_time()
    cache.replace_pages("vivenu", handed())
    out["build_wall"], out["build_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    out["tail"] = time.perf_counter() - last[0]
    cache.close()
    return out


def sync_child(desc: dict, workdir: str, resync: bool) -> None:
    from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
    from turnstiled.secret import Secret
    from turnstiled.sync import Syncer
    b = VivenuBackend(VivenuSettings(token=Secret(desc["credentials"]["token"]),
                                     base_url=desc["base_url"], sync_interval_s=10))
    syncer = Syncer(Path(workdir) / "cache.db", [b])
    t0 = time.perf_counter()
    result = syncer.sync("vivenu", full=True)
    dt = time.perf_counter() - t0
    assert result == "full", result
    with open("/proc/self/status") as fh:
        hwm = next(int(x.split()[1]) for x in fh if x.startswith("VmHWM"))
    db = Path(workdir) / "cache.db"
    wal = Path(f"{db}-wal")  # as the daemon's sync process, still open, leaves it
    out = {"seconds": dt, "peak_rss_mb": hwm / 1024, "db_mb": db.stat().st_size / 2**20,
           "wal_mb": wal.stat().st_size / 2**20 if wal.exists() else 0.0}
    if resync:  # the next full sync replaces a list as long as itself (the daemon's case)
        t0 = time.perf_counter()
        assert syncer.sync("vivenu", full=True) == "full"
        out["resync_seconds"] = time.perf_counter() - t0
        out["resync_db_mb"] = db.stat().st_size / 2**20
    print(json.dumps(out))
    syncer.close()


def run_sync(desc: dict, resync: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(desc), tmp,
                              "resync" if resync else "once"],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sync_child(json.loads(args.child[0]), args.child[1], args.child[2] == "resync")
        return
    sizes = (max(1000, args.tickets // 5), args.tickets, args.tickets * 3)
    rss = {}
    summary = ""
    for n in sizes:
        proc, desc = start_sim(n)
        try:
            bare(desc)  # warm up the emulator's caches and the loopback
            down = min(bare(desc)[0] for _ in range(3))
            parsed = min(bare(desc, parse=True)[0] for _ in range(3))
            syncs = [run_sync(desc, resync=n == args.tickets)
                     for _ in range(3 if n == args.tickets else 1)]
            if n == args.tickets:
                with tempfile.TemporaryDirectory() as tmp:
                    parts = cpu_parts(desc, proc, tmp)
        finally:
            proc.terminate()
            proc.wait(10)
        best = min(s["seconds"] for s in syncs)
        rss[n] = max(s["peak_rss_mb"] for s in syncs)
        if n == args.tickets:
            print(f"vivenu emulator, {n:,} tickets in 1,000-ticket pages over loopback:")
            print(f"  bare download (fetch and discard): {down:.3f} s")
            print(f"  fetch and json.loads only:         {parsed:.3f} s  (whole documents; the "
                  "sync decodes only the kept fields, by msgspec)")
            print(f"  full sync into cache.db:           {best:.3f} s")
            resync = min(s["resync_seconds"] for s in syncs)
            print(f"  next full sync, replacing the list: {resync:.3f} s  (ratio "
                  f"{resync / down:.2f}; cache.db {syncs[-1]['resync_db_mb']:.1f} MB: the old "
                  "list's pages are free for the next build)")
            print(f"  ratio sync/download: {best / down:.2f} (target <= 1.3)")
            print(f"  throughput: {n / best:,.0f} tickets/s (target >= 20,000)")
            gil = parts["download_user"] + parts["decode"]
            work = (parts["download_user"] + parts["download_sys"] + parts["emulator"]
                    + parts["decode"] + parts["build_cpu"])
            cores = os.cpu_count() or 1
            least = max(max(down, gil) + parts["tail"], work / cores)
            print(f"  CPU, same run: download alone {parts['download_user']:.3f} s user + "
                  f"{parts['download_sys']:.3f} s system (the emulator {parts['emulator']:.3f} s"
                  f" more); decoding and mapping alone {parts['decode']:.3f} s; the build of the "
                  f"same rows from memory {parts['build_cpu']:.3f} s CPU, {parts['build_wall']:.3f}"
                  f" s wall, of which {parts['tail']:.3f} s after its last page (barcode index, "
                  f"durable commit, WAL truncation)")
            print(f"  least a sync can take here: max(bare download, download + decoding in "
                  f"Python, which hold the GIL in turn: {gil:.3f} s) + the work after the last "
                  f"page, or all that CPU ({work:.3f} s) on {cores} cores, whichever is more: "
                  f"{least:.3f} s, ratio x{least / down:.2f}")
            summary = (f"SUMMARY sync: {n:,} tickets, sync {best:.3f} s vs bare download "
                       f"{down:.3f} s, ratio x{best / down:.2f} (target <= 1.3), "
                       f"{n / best:,.0f} tickets/s")
        print(f"  {n:,} tickets: cache.db {syncs[-1]['db_mb']:.1f} MB, "
              f"WAL kept after the sync {syncs[-1]['wal_mb']:.1f} MB", flush=True)
    from turnstiled.cache import BUILD_CACHE_KIB, BUILD_TEMP_CACHE_KIB
    print("  peak RSS of the syncing process: " + ", ".join(
        f"{rss[n]:.1f} MB at {n:,} tickets" for n in sizes)
        + f" (while a list is built SQLite holds {-BUILD_CACHE_KIB / 1000:g} MB of page cache"
        f" and {-BUILD_TEMP_CACHE_KIB / 1000:g} MB of temporary cache; pages are streamed)")
    print(summary + "; peak RSS " + "/".join(f"{rss[n]:.0f}" for n in sizes) + " MB at "
          + "/".join(f"{n // 1000}k" for n in sizes) + " tickets")


if __name__ == "__main__":
    main()
