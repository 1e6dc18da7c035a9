"""Memory of the whole gate (the daemon and its cloud process) during full syncs.

Usage: ``scripts/bench memory [--tickets 1000000] [--sizes 20000,100000,300000]
[--sample-ms 20]``

For each ticket count (the sizes, then ``--tickets``), in a fresh data
directory:

1. the vivenu emulator with that many tickets, in its own process at the
   lowest priority (it stands in for a remote server);
2. the real daemon, ``python -m turnstiled.daemon``, with gpiozero mock
   pins and a serial scanner on a real pty; a scan every 50 ms (unknown
   barcodes: each is looked up in the cache and journaled) so the scan
   path works while the cloud process syncs;
3. two full syncs: the first one the daemon starts by itself into the
   empty cache, then one more asked for over the control socket
   (``turnstilectl sync --full``), which replaces the whole list again;
4. meanwhile, every ``--sample-ms``, the RSS (``VmRSS``) and the PSS
   (``Pss`` in ``/proc/PID/smaps_rollup``: a page shared by N processes
   counts 1/N in each, so the PSS of the gate's processes adds up to what
   they spend together) of the daemon and of every process below it (the
   cloud process; anything else that appears, e.g. multiprocessing's
   resource tracker, is shown and counted in the gate's sums);
5. at the end each process's own kernel-kept peak (``VmHWM``).

Printed per size: each process's peak RSS and PSS, and the whole gate's
peak = the largest sum of simultaneous samples. The last line is the
summary; the figure compared to the target (<= 80 MB at 1,000,000 tickets,
issue 14) is the whole gate's peak RSS, the strict one: RSS counts the
pages both processes map from the same files (libpython, libcrypto, ...)
twice. Beside it: the PSS, and the peak RSS with the resident pages of the
files both map counted once (from ``/proc/PID/smaps`` at the end), which is
what the gate spends of a Pi's RAM; PSS on this machine also splits those
pages with every other Python process running here, so it flatters.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import write_config
from bench_sync import start_sim

from turnstiled import control

TARGET_MB = 80.0


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def file_rss_kb(pid: int) -> dict[str, int]:
    """Resident kB of each file *pid* maps (the Python binary, shared libraries, ...)."""
    out: dict[str, int] = {}
    path = None
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            head = line.split(maxsplit=6)
            if "-" in head[0] and len(head) >= 5:  # a mapping's first line
                path = head[5].strip() if len(head) > 5 and head[5].startswith("/") else None
            elif path is not None and line.startswith("Rss:"):
                out[path] = out.get(path, 0) + int(line.split()[1])
    return out


def shared_files_kb(pids: list[int]) -> int:
    """The resident pages of files several of *pids* map, counted once less per extra mapper.

    After exec nothing anonymous is shared between the daemon and its child;
    what both hold resident from one file (the same library) is in RAM once.
    Unlike PSS this does not depend on how many other processes on this
    machine map the same libraries.
    """
    maps = []
    for pid in pids:
        try:
            maps.append(file_rss_kb(pid))
        except OSError:
            continue
    total = 0
    for path in set().union(*maps) if maps else ():
        held = sorted(m[path] for m in maps if path in m)
        total += sum(held[:-1])  # every mapper but the one holding most: counted again
    return total


def tree(pid: int) -> list[int]:
    """*pid* and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "turnstiled.daemon" in text:
        return "daemon"
    return "cloud process" if "turnstiled" in text or "multiprocessing" in text else text[:60]


class Sampler(threading.Thread):
    """Samples the daemon's process tree until stopped."""

    def __init__(self, root: int, every_s: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.root, self.every_s = root, every_s
        self.stop = threading.Event()
        self.peak: dict[int, dict[str, float]] = {}  # pid -> rss/pss/hwm (kB), name
        self.gate_rss = self.gate_pss = 0
        self.samples = 0

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        rss_sum = pss_sum = 0
        for pid in tree(self.root):
            try:
                rss, pss = _status_kb(pid, "VmRSS"), _pss_kb(pid)
                hwm = _status_kb(pid, "VmHWM")
            except OSError:
                continue  # it just ended
            p = self.peak.setdefault(pid, {"rss": 0, "pss": 0, "hwm": 0, "name": _name(pid)})
            p["rss"], p["pss"] = max(p["rss"], rss), max(p["pss"], pss)
            p["hwm"] = max(p["hwm"], hwm)
            rss_sum += rss
            pss_sum += pss
        self.gate_rss, self.gate_pss = max(self.gate_rss, rss_sum), max(self.gate_pss, pss_sum)
        self.samples += 1


def last_full(db: Path) -> float | None:
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT last_full_sync FROM sources WHERE source = 'vivenu'"
                               ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def wait_full(db: Path, after: float | None, daemon: subprocess.Popen, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = last_full(db)
        if t is not None and (after is None or t > after):
            return t
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon ended (exit {daemon.returncode})")
        time.sleep(0.2)
    raise SystemExit(f"no full sync within {timeout:.0f} s")


def scanning(master: int, stop: threading.Event) -> None:
    rng = random.Random(5)
    while not stop.wait(0.05):
        try:
            os.write(master, f"NOPE{rng.randrange(10**9):09d}\r".encode())
        except OSError:  # the run ended (or failed) and closed the pty
            return


def measure(n: int, every_s: float) -> dict:
    sim, desc = start_sim(n, nice=True)
    master, slave = os.openpty()
    daemon = None
    try:
        with tempfile.TemporaryDirectory(prefix="turnstiled-mem-") as tmp:
            workdir = Path(tmp)
            cfg = write_config(workdir, os.ttyname(slave), {**desc, "full_every": 86400.0})
            env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
            daemon = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon",
                                       "--config", str(cfg)], env=env)
            sampler = Sampler(daemon.pid, every_s)
            sampler.start()
            stop = threading.Event()
            scans = threading.Thread(target=scanning, args=(master, stop), daemon=True)
            scans.start()
            timeout = 300 + n / 500  # generous: the machine may be busy
            t0 = time.perf_counter()
            first = wait_full(workdir / "cache.db", None, daemon, timeout)
            t1 = time.perf_counter()
            control.request(workdir / "control.sock", "sync", full=True)
            wait_full(workdir / "cache.db", first, daemon, timeout)
            t2 = time.perf_counter()
            stop.set()
            sampler.stop.set()
            sampler.join()
            sampler.sample()  # the kernel's VmHWM of each, now
            shared = shared_files_kb(tree(daemon.pid))
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
            return {"tickets": n, "syncs_s": (t1 - t0, t2 - t1), "samples": sampler.samples,
                    "procs": list(sampler.peak.values()),
                    "gate_rss_kb": sampler.gate_rss, "gate_pss_kb": sampler.gate_pss,
                    "shared_kb": shared}
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        os.close(master)
        os.close(slave)
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:  # a million tickets take it a while to let go
            sim.kill()
            sim.wait(10)


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="20000,100000,300000",
                    help="smaller ticket counts measured first, to show flatness ('' for none)")
    ap.add_argument("--sample-ms", type=float, default=20.0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + [args.tickets]
    results = []
    for n in sizes:
        r = measure(n, args.sample_ms / 1000)
        results.append(r)
        print(f"{n:,} tickets: full syncs {r['syncs_s'][0]:.1f} s and {r['syncs_s'][1]:.1f} s, "
              f"{r['samples']} samples")
        for p in sorted(r["procs"], key=lambda p: -p["hwm"]):
            print(f"  {p['name']:<34} peak RSS {mb(p['hwm'])} MB (sampled {mb(p['rss'])}), "
                  f"peak PSS {mb(p['pss'])} MB")
        print(f"  whole gate (sum of simultaneous samples): peak RSS {mb(r['gate_rss_kb'])} MB, "
              f"peak PSS {mb(r['gate_pss_kb'])} MB; sum of the peaks "
              f"{mb(sum(p['hwm'] for p in r['procs']))} MB RSS; peak RSS with the files both "
              f"map counted once {mb(r['gate_rss_kb'] - r['shared_kb'])} MB "
              f"({mb(r['shared_kb'])} MB of libraries counted twice)", flush=True)
    last = results[-1]
    by = {p["name"]: p for p in last["procs"]}
    daemon, cloud = by.get("daemon", {}), by.get("cloud process", {})
    others = [p for p in last["procs"] if p["name"] not in ("daemon", "cloud process")]
    gate, gate_pss = last["gate_rss_kb"] / 1024, last["gate_pss_kb"] / 1024
    print("SUMMARY memory: {:,} tickets, daemon peak RSS {} MB (PSS {}), cloud process peak RSS "
          "{} MB (PSS {}){}; whole gate peak RSS {:.1f} MB (PSS {:.1f} MB) (target <= {:.0f} MB, "
          "compared: RSS) -> {} (by PSS: {}; RSS with shared files once {:.1f} MB); "
          "gate RSS at {}: {} MB".format(
              last["tickets"], mb(daemon.get("hwm", 0)), mb(daemon.get("pss", 0)),
              mb(cloud.get("hwm", 0)), mb(cloud.get("pss", 0)),
              "".join(f", {p['name']} {mb(p['hwm'])} MB" for p in others),
              gate, gate_pss, TARGET_MB,
              "met" if gate <= TARGET_MB else "NOT met",
              "met" if gate_pss <= TARGET_MB else "NOT met",
              (last["gate_rss_kb"] - last["shared_kb"]) / 1024,
              "/".join(f"{r['tickets'] // 1000}k" for r in results),
              "/".join(f"{r['gate_rss_kb'] / 1024:.0f}" for r in results)))


if __name__ == "__main__":
    main()
