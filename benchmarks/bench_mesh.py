"""Venue mesh: propagation across 40 gates, and what the mesh costs a scan.

Usage: ``scripts/bench mesh [--gates 40] [--events 200] [--rate 20] [--scans 600]``

One real mosquitto on a free loopback port (the tests' config), then:

1. Propagation. ``--gates`` - 1 listening gates (each a real
   :class:`turnstiled.mesh.MeshClient` with its own journal, as in a
   daemon; in ``--procs`` child processes, as they would be on their own
   Pis) and one publishing gate. The publisher journals ``--events``
   admissions at ``--rate`` per second (as the scan path does, then
   notifies its mesh); each listener stamps the moment its merge
   transaction has committed. Propagation = that moment - the publisher's
   commit returning, for every (event, listener) pair: p50/p99/max.
2. Scan-to-relay, mesh on vs off, in the same run and interleaved: two
   daemons with mock pins, one with ``[mesh]`` joined to the venue above
   (its admissions are published to, and merged by, every listener), one
   without. Each scan is submitted to a daemon's decision queue; the clock
   stops when its relay pin rises. The ratio on/off of p50 and p99 is the
   figure (target: no difference beyond noise). Then the broker is stopped
   and the same again for ``--scans``/2 scans: a dead broker must add
   nothing either.

Everything runs on this machine's cores, the listeners included: the
figures are an upper bound for a venue where each gate has its own Pi.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpiozero.pins.mock import MockFactory, MockPin

from turnstiled import config as config_mod
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal, Scan
from turnstiled.journal_peers import VenueEvent
from turnstiled.mesh import MeshClient
from turnstiled.rules import Decision, Ticket, Usage
from turnstiled.sim.broker import Broker

VENUE = "bench"


def gate_config(workdir: Path, gate: str, broker: Broker | None) -> config_mod.Config:
    raw: dict = {
        "gate": {"id": gate, "debounce_s": 0.0},
        "hardware": {"relay_pulse_s": 0.002},
        "paths": {"data_dir": str(workdir / gate), "control_socket": str(workdir / f"{gate}.sock")},
        "log": {"level": "warning"},
    }
    if broker is not None:
        raw["mesh"] = {"broker": broker.url, "venue": VENUE, "heartbeat_interval_s": 5.0}
    return config_mod.from_dict(raw, str(workdir / f"{gate}.toml"))


def q(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def wait_connected(clients: list[MeshClient], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(c.state()["connected"] for c in clients):
        if time.monotonic() > deadline:
            raise SystemExit("mesh clients did not connect")
        time.sleep(0.05)


def listeners_child(workdir: Path, url: str, names: list[str]) -> None:
    """In a child process: listening gates; on 'dump' print when each merged what."""
    merged: dict[str, dict[str, float]] = {}
    lock = threading.Lock()

    def stamp(gate: str):
        def on_merged(batch: list[VenueEvent]) -> None:
            t = time.time()
            with lock:
                for ev in batch:
                    merged.setdefault(ev.nonce, {}).setdefault(gate, t)
        return on_merged

    broker = Broker(workdir / "unused")
    broker.port = int(url.rsplit(":", 1)[1])
    clients = []
    for name in names:
        cfg = gate_config(workdir, name, broker)
        Journal(cfg.paths.journal_db).close()
        Cache(cfg.paths.cache_db).close()
        c = MeshClient(cfg, on_merged=stamp(name))
        c.start()
        clients.append(c)
    wait_connected(clients)
    print("ready", flush=True)
    sys.stdin.readline()
    with lock:
        print(json.dumps(merged), flush=True)
    for c in clients:
        c.stop()


def start_listeners(workdir: Path, broker: Broker, gates: int,
                    procs: int) -> list[subprocess.Popen]:
    names = [f"g{i:02d}" for i in range(1, gates)]
    children = []
    for k in range(procs):
        children.append(subprocess.Popen(
            [sys.executable, __file__, "--child", str(workdir), "--url", broker.url,
             "--names", ",".join(names[k::procs])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for c in children:
        if c.stdout.readline().strip() != "ready":
            raise SystemExit("a listener process failed")
    return children


def collect(children: list[subprocess.Popen]) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for c in children:
        c.stdin.write("dump\n")
        c.stdin.flush()
        for nonce, by_gate in json.loads(c.stdout.readline()).items():
            merged.setdefault(nonce, {}).update(by_gate)
        c.wait(30)
    return merged


def publish(workdir: Path, broker: Broker, events: int, rate: float) -> dict[str, float]:
    """The publishing gate: journal admissions as the scan path does, notify the mesh."""
    pub_cfg = gate_config(workdir, "g00", broker)
    Cache(pub_cfg.paths.cache_db).close()
    journal = Journal(pub_cfg.paths.journal_db)
    publisher = MeshClient(pub_cfg)
    publisher.start()
    wait_connected([publisher])
    committed: dict[str, float] = {}
    granted = Decision(True, "granted", "first entry")
    for k in range(events):
        now = time.time()
        sid = journal.record(Scan(now, "g00", "bench", "in", f"PROP-{k:06d}", granted, "local"),
                             Usage(1, 0, True, now))
        nonce = journal.conn.execute("SELECT nonce FROM scans WHERE id = ?", (sid,)).fetchone()[0]
        committed[nonce] = time.time()
        publisher.notify()
        time.sleep(1.0 / rate)
    deadline = time.monotonic() + 60
    while journal.mesh_backlog() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # the listeners merge what the broker has delivered
    publisher.stop()
    journal.close()
    return committed


def scan_to_relay(workdir: Path, broker: Broker, scans: int) -> dict[str, list[float]]:
    rises: dict[int, float] = {}
    events: dict[int, threading.Event] = {}

    class TimedPin(MockPin):
        def _change_state(self, value: bool) -> bool:
            changed = super()._change_state(value)
            if changed and value and self.info.name == "GPIO17":
                rises[id(self.factory)] = time.perf_counter()
                events[id(self.factory)].set()
            return changed

    tickets = [Ticket("local", f"LANE-{i:06d}") for i in range(scans + 100 + scans // 2)]
    daemons = {}
    for name, mesh in (("off", None), ("on", broker)):
        cfg = gate_config(workdir, f"lane-{name}", mesh)
        cache = Cache(cfg.paths.cache_db)
        cache.upsert(tickets)
        cache.close()
        factory = MockFactory(pin_class=TimedPin)
        events[id(factory)] = threading.Event()
        d = Daemon(cfg, factory, on_outcome=lambda _o: None)
        d.start()
        daemons[name] = (d, factory)
    wait_connected([daemons["on"][0].mesh])
    lat: dict[str, list[float]] = {"on": [], "off": [], "dead": [], "off2": []}
    dead_from = scans + 100
    for k in range(dead_from + scans // 2):
        if k == dead_from:
            broker.stop()  # the mesh lane keeps deciding; nothing of it may wait
            while daemons["on"][0].mesh.state()["connected"]:
                time.sleep(0.05)
        phase = ("on", "off") if k < dead_from else ("dead", "off2")
        for name in ((phase[0], phase[1]) if k % 2 else (phase[1], phase[0])):
            lane = "on" if name in ("on", "dead") else "off"
            d, factory = daemons[lane]
            ev = events[id(factory)]
            while d.gate.relay.is_active:
                time.sleep(0.0005)
            ev.clear()
            t0 = time.perf_counter()
            d.submit(f"LANE-{k:06d}".encode(), "bench", "in")
            if not ev.wait(10):
                raise SystemExit(f"relay of lane {lane} did not rise")
            if k >= 100:  # the first 100 warm caches and connections
                lat[name].append(rises[id(factory)] - t0)
        time.sleep(0.01)  # a lane's pace, with room for the mesh to publish
    broker.start()
    for d, factory in daemons.values():
        d.stop()
        factory.close()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gates", type=int, default=40)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="admissions per second")
    ap.add_argument("--scans", type=int, default=600, help="per lane, mesh on and off")
    ap.add_argument("--procs", type=int, default=2, help="processes the listeners run in")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--names", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        listeners_child(Path(args.child), args.url, args.names.split(","))
        return
    with tempfile.TemporaryDirectory(prefix="turnstiled-bench-mesh-") as tmp:
        workdir = Path(tmp)
        broker = Broker(workdir / "broker")
        broker.start()
        children: list[subprocess.Popen] = []
        try:
            children = start_listeners(workdir, broker, args.gates, args.procs)
            committed = publish(workdir, broker, args.events, args.rate)
            r = scan_to_relay(workdir, broker, args.scans)
            merged = collect(children)
            lat = [t - committed[n] for n in committed for t in merged.get(n, {}).values()]
            ms = [x * 1000 for x in lat]
            print(f"propagation, {args.gates} gates ({args.gates - 1} listening in "
                  f"{args.procs} processes), {args.events} admissions at {args.rate:g}/s: "
                  f"{len(lat)} of {len(committed) * (args.gates - 1)} (event, gate) pairs merged; "
                  f"commit -> every other gate's journal: p50 {q(ms, 0.5):.1f} ms, "
                  f"p99 {q(ms, 0.99):.1f} ms, max {max(ms):.1f} ms (target p99 <= 200 ms)")
            on, off = ([x * 1000 for x in r[k]] for k in ("on", "off"))
            print(f"scan-to-relay (submit -> relay pin), {len(on)} scans per lane, interleaved, "
                  f"{args.gates - 1} listening gates merging the mesh lane's admissions:")
            dead, off2 = ([x * 1000 for x in r[k]] for k in ("dead", "off2"))
            for name, v in (("mesh off", off), ("mesh on ", on), ("mesh off (2nd)", off2),
                            ("mesh on, broker dead", dead)):
                print(f"  {name}: p50 {q(v, 0.5):.3f} ms, p99 {q(v, 0.99):.3f} ms, "
                      f"mean {statistics.fmean(v):.3f} ms")
            print(f"  ratio on/off: p50 {q(on, 0.5) / q(off, 0.5):.2f}, "
                  f"p99 {q(on, 0.99) / q(off, 0.99):.2f}; broker dead/off: p50 "
                  f"{q(dead, 0.5) / q(off2, 0.5):.2f}, p99 {q(dead, 0.99) / q(off2, 0.99):.2f} "
                  "(target: ~1.0, within noise)")
        finally:
            for c in children:
                if c.poll() is None:
                    c.kill()
            broker.stop()


if __name__ == "__main__":
    main()
