"""``turnstiled-demo``: the gate on this machine with no hardware and no cloud.

Mock GPIO pins (gpiozero ``MockFactory``), a simulated serial scanner (a
pseudo-terminal whose path is printed: anything written to it is read by
the real serial reader), the built-in vivenu emulator as the ticket cloud
(synced, and receiving the gate's scans), a local staff list beside it,
and a live view of the relay, lights, buzzer and the last decisions.
Barcodes typed at the prompt are written into the pty, so they take
exactly the path a scanner's would.
With stdin not a terminal, each input line is scanned and each decision
printed as a line (handy in scripts).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from turnstiled import config as config_mod
from turnstiled import importer
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.pipeline import Outcome
from turnstiled.sim import start_emulator
from turnstiled.sim.vivenu import VivenuEmulator

PANEL_LINES = 28
DEMO_CONFIG = """# Written by turnstiled-demo; try: turnstilectl --config THIS_FILE status
[gate]
id = "demo-gate"
zones = ["GA"]
debounce_s = 1.0

[paths]
data_dir = "{data_dir}"
control_socket = "{data_dir}/control.sock"

[log]
level = "warning"

[sources.vivenu]
token = "{token}"
base_url = "{vivenu_url}"
sync_interval_s = 5.0

[[scanner]]
name = "demo-serial"
type = "serial"
url = "{pty}"
terminator = "CR"
"""


def demo_tickets(path: Path) -> list[tuple[str, str]]:
    """Write the demo guest list; returns (barcode, what it shows)."""
    now = datetime.now(UTC)
    iso = lambda d: (now + d).isoformat(timespec="seconds")  # noqa: E731
    rows = [
        ("DEMO-0001", "valid, single entry", "GA", "", "", "valid", "single"),
        ("DEMO-0002", "valid, re-entry after exit", "GA", "", "", "valid", "reentry"),
        ("DEMO-0003", "staff, unlimited", "GA;VIP", "", "", "valid", "unlimited"),
        ("DEMO-0004", "cancelled (invalid)", "GA", "", "", "invalid", "single"),
        ("DEMO-0005", "wrong zone (backstage)", "BACKSTAGE", "", "", "valid", "single"),
        ("DEMO-0006", "expired yesterday", "GA", iso(timedelta(days=-2)),
         iso(timedelta(days=-1)), "valid", "single"),
        ("DEMO-0007", "valid from tomorrow", "GA", iso(timedelta(days=1)),
         iso(timedelta(days=2)), "valid", "single"),
        ("DEMO-0008", "three entries", "GA", "", "", "valid", "3"),
    ]
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(importer.COLUMNS)
        out.writerows((b, n, "demo", z, vf, vu, s, e) for b, n, z, vf, vu, s, e in rows)
    return [(r[0], r[1]) for r in rows]


def vivenu_legend(emu: VivenuEmulator) -> list[tuple[str, str]]:
    """A few of the emulator's tickets worth trying, with what they show."""
    docs = list(emu.tickets.values())
    pick = [("valid, zone GA", lambda d: d["status"] == "VALID" and d["entry"] == ["GA"]),
            ("valid, GA + VIP", lambda d: d["status"] == "VALID" and "VIP" in d["entry"]),
            ("crew only: wrong zone",
             lambda d: d["status"] == "VALID" and d["entry"] == ["BACKSTAGE"]),
            ("vivenu INVALID", lambda d: d["status"] == "INVALID")]
    out = []
    for what, test in pick:
        doc = next((d for d in docs if test(d)), None)
        if doc is not None:
            out.append((doc["barcode"], f"vivenu: {what}"))
    return out


def wait_synced(cfg: config_mod.Config, source: str, timeout: float = 30.0) -> bool:
    """Wait for the first full sync of *source* (the demo's tickets come from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cache = Cache(cfg.paths.cache_db, readonly=True)
        except (FileNotFoundError, OSError):
            time.sleep(0.1)
            continue
        try:
            if any(s["source"] == source and s.get("last_full_sync") for s in cache.sources()):
                return True
        finally:
            cache.close()
        time.sleep(0.1)
    return False


class View:
    """Renders the gate's state: a live panel on a terminal, lines otherwise."""

    def __init__(self, daemon: Daemon, pty_path: str, legend: list[tuple[str, str]],
                 live: bool) -> None:
        self.daemon = daemon
        self.pty_path = pty_path
        self.cfg_path = daemon.cfg.path
        self.legend = legend
        self.live = live
        self.emulator: VivenuEmulator | None = None
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.decided = 0

    def wait_decided(self, count: int, timeout: float) -> int:
        """Wait until *count* decisions were made (a debounced repeat makes none)."""
        with self.lock:
            self.lock.wait_for(lambda: self.decided >= count, timeout)
            return self.decided

    def outcome(self, o: Outcome) -> None:
        with self.lock:
            self.decided += 1
            self.lock.notify_all()
        if not self.live:
            d = o.evaluation.decision
            print(f"{'GRANT' if d.granted else 'DENY '} {o.evaluation.barcode}  "
                  f"{d.reason}: {d.detail}", flush=True)

    def synced(self) -> str:
        try:
            cache = Cache(self.daemon.cfg.paths.cache_db, readonly=True)
        except (FileNotFoundError, OSError):
            return "not synced yet"
        try:
            row = next((r for r in cache.sources() if r["source"] == "vivenu"), None)
        finally:
            cache.close()
        if row is None or not row.get("last_sync"):
            return "not synced yet"
        err = f", ERROR {row['last_error'][:40]}" if row.get("last_error") else ""
        return f"{row['tickets']} tickets, synced {int(time.time() - row['last_sync'])}s ago{err}"

    def panel(self) -> list[str]:
        g = self.daemon.gate.state()
        lamp = lambda on, name: f"[{name.upper()}]" if on else f" {name} "  # noqa: E731
        half = (len(self.legend) + 1) // 2
        legend = [f"  {b:<12} {d:<31} " + (f"{b2} {d2}" if k + half < len(self.legend) else "")
                  for k, ((b, d), (b2, d2)) in enumerate(
                      zip(self.legend[:half], [*self.legend[half:], ("", "")], strict=False))]
        lines = [
            "turnstiled demo - mock GPIO pins, simulated serial scanner, vivenu emulator "
            "+ local list",
            f"scanner pty: {self.pty_path}  (printf 'DEMO-0001\\r' > {self.pty_path})",
            f"technician:  turnstilectl --config {self.cfg_path} status|scans|open",
            "",
            f"  RELAY {g['relay'].upper():<9} {lamp(g['green'], 'green')} "
            f"{lamp(g['red'], 'red')} {lamp(g['buzzer'], 'buzzer')}"
            f"{'  FIRE ALARM' if g['fire_alarm'] else ''}",
            "",
            f"  vivenu: {self.synced()}   scans uploaded to vivenu: "
            f"{len(self.emulator.received('scan')) if self.emulator else 0}",
            "",
            "tickets to try (the gate admits zone GA):",
            *legend,
            "last decisions:",
        ]
        for o in list(self.daemon.recent)[:PANEL_LINES - len(lines) - 2]:
            d = o.evaluation.decision
            lines.append(f"  #{o.scan_id:<5} {'GRANT' if d.granted else 'DENY ':5} "
                         f"{o.evaluation.barcode[:24]:<24} {d.reason}: {d.detail}")
        return lines

    def run(self) -> None:
        out = sys.stdout
        rows = shutil.get_terminal_size().lines
        out.write("\033[2J" + f"\033[{PANEL_LINES + 1};{rows}r" + f"\033[{rows};1H")
        out.flush()
        while not self.stop.wait(0.1):
            with self.lock:
                buf = ["\0337"]
                for i, line in enumerate(self.panel()[:PANEL_LINES]):
                    buf.append(f"\033[{i + 1};1H\033[2K{line}")
                for i in range(len(self.panel()), PANEL_LINES):
                    buf.append(f"\033[{i + 1};1H\033[2K")
                buf.append(f"\033[{PANEL_LINES};1H\033[2K" + "-" * 60 + "\0338")
                out.write("".join(buf))
                out.flush()

    def restore(self) -> None:
        if self.live:
            sys.stdout.write("\033[r\n")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnstiled-demo", description=__doc__)
    parser.add_argument("--data-dir", help="keep the demo's databases here (default: temp)")
    parser.add_argument("--tickets", type=int, default=2000,
                        help="tickets in the vivenu emulator (default 2000)")
    args = parser.parse_args(argv)
    workdir = Path(args.data_dir or tempfile.mkdtemp(prefix="turnstiled-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    master, slave = os.openpty()
    pty_path = os.ttyname(slave)
    cfg_path = workdir / "turnstiled.toml"
    emulator = start_emulator("vivenu", tickets=args.tickets, seed=42)
    cfg_path.write_text(DEMO_CONFIG.format(data_dir=workdir, pty=pty_path,
                                           token=emulator.credentials["token"],
                                           vivenu_url=emulator.base_url))
    cfg = config_mod.load(str(cfg_path))
    legend = vivenu_legend(emulator) + demo_tickets(workdir / "demo-tickets.csv")
    cache = Cache(cfg.paths.cache_db)
    cache.replace_source("local", importer.read_file(workdir / "demo-tickets.csv"))
    cache.mark_sync("local", full=True, ok=True)
    cache.close()
    live = sys.stdin.isatty() and sys.stdout.isatty()
    daemon = Daemon(cfg, MockFactory())
    view = View(daemon, pty_path, legend, live)
    view.emulator = emulator
    daemon._on_outcome = view.outcome
    daemon.start()
    daemon.wait_scanners()
    wait_synced(cfg, "vivenu")
    print(f"turnstiled demo: data in {workdir}\nsimulated serial scanner: {pty_path}\n"
          f"in another terminal: turnstilectl --config {cfg_path} status | scans | open",
          flush=True)
    painter = threading.Thread(target=view.run, daemon=True) if live else None
    if painter is not None:
        painter.start()
    sent = 0
    lines = iter(lambda: input("barcode> ") + "\n", None) if live else sys.stdin
    try:
        for line in lines:
            code = line.strip()
            if code:
                os.write(master, code.encode() + b"\r")
                sent += 1
                if not live:
                    decided = view.wait_decided(sent, timeout=1.5)
                    if decided < sent:
                        print(f"----- {code}  repeat within the debounce window: ignored",
                              flush=True)
                    sent = decided
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        view.stop.set()
        if painter is not None:
            painter.join(1)
        view.restore()
        daemon.stop()
        emulator.stop()
        with contextlib.suppress(OSError):
            os.close(master)
            os.close(slave)
    return 0


if __name__ == "__main__":
    sys.exit(main())
