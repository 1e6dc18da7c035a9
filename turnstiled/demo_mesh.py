"""``scripts/demo --gates N``: N lanes of one venue sharing a local mosquitto.

Starts mosquitto on a free loopback port and N gates (mock pins, no
scanner hardware, the same guest list) joined by the venue mesh. Type
``LANE BARCODE`` (``b MESH-0001``), or ``LANE out BARCODE`` for an exit
scan: the lane decides, and the line shows when every other lane has
merged the decision, so a ticket admitted at one lane is refused at the
next. ``stop`` / ``start`` stop and restart the broker (a partition:
both lanes decide alone; the double admission shows as a conflict once
the broker is back). With stdin not a terminal, each line is one command.
Ctrl-D, Ctrl-C, SIGTERM or a closed terminal (SIGHUP) ends it: the lanes and
the broker stop, and the temporary directory is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from turnstiled import config as config_mod
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal
from turnstiled.pipeline import Outcome
from turnstiled.rules import Ticket
from turnstiled.sim.broker import Broker

VENUE = "demo-venue"
TICKETS = [
    ("MESH-0001", "single entry", "single"),
    ("MESH-0002", "re-entry (after an exit scan)", "reentry"),
    ("MESH-0003", "two entries", "2"),
    ("MESH-0004", "single entry", "single"),
]
CONFIG = """# Written by scripts/demo --gates; try: turnstilectl --config THIS_FILE fleet
[gate]
id = "{gate}"
debounce_s = 0.0
[hardware]
relay_pulse_s = 0.3
[paths]
data_dir = "{data}"
control_socket = "{data}/control.sock"
[log]
level = "warning"
[mesh]
broker = "{broker}"
venue = "{venue}"
heartbeat_interval_s = 2.0
reconnect_min_s = 1
reconnect_max_s = 2
"""


class Lane:
    def __init__(self, name: str, workdir: Path, broker: Broker) -> None:
        data = workdir / name
        data.mkdir(parents=True, exist_ok=True)
        self.cfg_path = data / "turnstiled.toml"
        self.cfg_path.write_text(CONFIG.format(gate=name, data=data, broker=broker.url,
                                               venue=VENUE))
        cfg = config_mod.load(str(self.cfg_path))
        cache = Cache(cfg.paths.cache_db)
        cache.replace_source("local", [Ticket("local", b, entries=e) for b, _, e in TICKETS])
        cache.mark_sync("local", full=True, ok=True)
        cache.close()
        self.name = name
        self.pins = MockFactory()
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.daemon = Daemon(cfg, self.pins, on_outcome=self.outcomes.put)

    def knows(self, nonce: str) -> bool:
        j = Journal(self.daemon.cfg.paths.journal_db, readonly=True)
        try:
            return j.conn.execute("SELECT 1 FROM mesh_events WHERE nonce = ?",
                                  (nonce,)).fetchone() is not None
        finally:
            j.close()


def _scan(lanes: dict[str, Lane], words: list[str]) -> str:
    lane = lanes.get(words[0].lower())
    if lane is None or len(words) not in (2, 3) or (len(words) == 3 and words[1] != "out"):
        return f"usage: LANE [out] BARCODE   (lanes: {', '.join(lanes)})"
    direction = "out" if len(words) == 3 else "in"
    lane.daemon.submit(words[-1].encode(), f"lane-{lane.name}", direction)
    try:
        o = lane.outcomes.get(timeout=10)
    except queue.Empty:
        return f"lane {lane.name}: ignored (a repeat within the debounce window)"
    d = o.evaluation.decision
    line = (f"lane {lane.name} {direction:<3} {o.evaluation.barcode:<10} "
            f"{'GRANT' if d.granted else 'DENY '} {d.reason}: {d.detail}")
    if not d.granted:
        return line
    j = Journal(lane.daemon.cfg.paths.journal_db, readonly=True)
    try:
        nonce = j.conn.execute("SELECT nonce FROM scans WHERE id = ?",
                               (o.scan_id,)).fetchone()[0]
    finally:
        j.close()
    others = [x for x in lanes.values() if x is not lane]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 and not all(x.knows(nonce) for x in others):
        time.sleep(0.01)
    heard = [x.name for x in others if x.knows(nonce)]
    if len(heard) == len(others):
        return f"{line}   (all lanes know after {1000 * (time.monotonic() - t0):.0f} ms)"
    return f"{line}   (known at: {', '.join(heard) or 'no other lane yet: mesh down?'})"


def _status(lanes: dict[str, Lane]) -> list[str]:
    out = []
    for lane in lanes.values():
        m = lane.daemon.mesh.state() if lane.daemon.mesh else {}
        relay = lane.daemon.gate.state()["relay"]
        conflicts = "; ".join(f"{c['with_gate']}+{c['gate_id']}" for c in m.get("conflicts", []))
        out.append(f"  lane {lane.name}: relay {relay:<8} mesh "
                   f"{'connected' if m.get('connected') else 'DOWN':<9} "
                   f"{m.get('peers', 0)} peers" + (f"  CONFLICTS {conflicts}" if conflicts else ""))
    return out


def _wait_connected(lanes: dict[str, Lane], timeout: float) -> None:
    """Wait until every lane is connected to the broker (at most *timeout* seconds)."""
    deadline = time.monotonic() + timeout
    while (time.monotonic() < deadline
           and not all(x.daemon.mesh.state()["connected"] for x in lanes.values())):
        time.sleep(0.05)


_stopping = threading.Event()


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP end the demo like Ctrl-C, once (a closed terminal sends
    several signals): mosquitto would otherwise outlive it, a SIGHUP only reloads it."""
    if not _stopping.is_set():
        _stopping.set()
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/demo --gates N", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gates", type=int, default=3, help="lanes (2-26, default 3)")
    ap.add_argument("--data-dir", help="keep the demo's files here (default: temp)")
    args = ap.parse_args(argv)
    if not 2 <= args.gates <= 26:
        ap.error("--gates must be 2..26")
    temporary = args.data_dir is None
    workdir = Path(args.data_dir or tempfile.mkdtemp(prefix="turnstiled-demo-mesh-"))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    broker = Broker(workdir / "mosquitto")
    lanes: dict[str, Lane] = {}
    # a technician's shell has no venv on PATH: name the one this demo runs from
    ctl = shutil.which("turnstilectl") or "turnstilectl"
    try:
        broker.start()
        for c in string.ascii_lowercase[:args.gates]:
            lanes[c] = Lane(c, workdir, broker)
            lanes[c].daemon.start()
        _wait_connected(lanes, 30)
        live = sys.stdin.isatty()
        print(f"venue mesh demo: mosquitto on {broker.url}, lanes {', '.join(lanes)}; files in "
              f"{workdir}\ntickets: " + ", ".join(f"{b} ({w})" for b, w, _ in TICKETS) +
              "\ntype 'a MESH-0001', then 'b MESH-0001'; 'b out MESH-0002' scans at an exit; "
              "'stop'/'start' the broker; 'status'; Ctrl-D ends\n"
              f"technician: {ctl} --config {lanes['a'].cfg_path} fleet|occupancy|status",
              flush=True)
        lines = iter(lambda: input("lane barcode> ") + "\n", None) if live else sys.stdin
        for raw in lines:
            words = raw.split()
            if not words:
                continue
            if words == ["stop"]:
                broker.stop()
                print("broker stopped: every lane decides alone", flush=True)
            elif words == ["start"]:
                broker.start()
                _wait_connected(lanes, 15)
                time.sleep(0.5)  # the lanes' outboxes go out; peers merge them
                print("broker started: lanes reconnected and caught up", flush=True)
            elif words == ["status"]:
                print("\n".join(_status(lanes)), flush=True)
            else:
                print(_scan(lanes, words), flush=True)
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        _stopping.set()
        signal.signal(signal.SIGINT, _interrupt)  # a second Ctrl-C must not cut the clean-up
        for lane in lanes.values():
            lane.daemon.stop()
            with contextlib.suppress(Exception):
                lane.pins.close()
        broker.stop()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
