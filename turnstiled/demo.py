"""``turnstiled-demo``: the gate on this machine with no hardware and no cloud.

Mock GPIO pins (gpiozero ``MockFactory``), two simulated serial scanners
(an entry and an exit, each a pseudo-terminal read by the real serial
reader), the built-in vivenu emulator as the ticket cloud (synced, and
receiving the gate's scans), a local list beside it, and a live view of
the relay, lights, buzzer and the last decisions.

A code typed at the prompt goes to the entry scanner, ``out CODE`` to the
exit. From another terminal, write a line to the named pipe ``in`` or
``out`` in the demo's directory (``echo DEMO-0001 > DIR/in``), and run
``DIR/turnstilectl status`` (the venv's turnstilectl with the demo's
config). Either way the code takes exactly the path a scanner's would.
With stdin not a terminal, each input line is scanned and each decision
printed as a line (handy in scripts). The temporary directory is removed
when the demo ends.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import select
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from turnstiled import config as config_mod
from turnstiled import demo_mesh, importer
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.demoview import View
from turnstiled.sim import start_emulator
from turnstiled.sim.vivenu import VivenuEmulator

DEMO_CONFIG = """# Written by turnstiled-demo; try: {data_dir}/turnstilectl status
[gate]
id = "demo-gate"
zones = ["GA"]
debounce_s = {debounce}

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
name = "entry"
type = "serial"
direction = "in"
url = "{pty_in}"
terminator = "CR"

[[scanner]]
name = "exit"
type = "serial"
direction = "out"
url = "{pty_out}"
terminator = "CR"
"""
CTL_WRAPPER = """#!/bin/sh
# turnstilectl for the running turnstiled demo (removed when the demo ends)
# -P: the caller's current directory is not put on sys.path, so a directory
# named turnstiled there (the checkout's parent, ~) does not shadow the package.
exec {python} -P -m turnstiled.cli --config {config} "$@"
"""


def demo_tickets(path: Path) -> list[tuple[str, str]]:
    """Write the demo guest list; returns (barcode, what it shows)."""
    now = datetime.now(UTC)
    iso = lambda d: (now + d).isoformat(timespec="seconds")  # noqa: E731
    rows = [
        ("DEMO-0001", "valid, single entry", "GA", "", "", "valid", "single"),
        ("DEMO-0002", "re-entry after an exit", "GA", "", "", "valid", "reentry"),
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
            ("crew: wrong zone",
             lambda d: d["status"] == "VALID" and d["entry"] == ["BACKSTAGE"]),
            ("INVALID", lambda d: d["status"] == "INVALID")]
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


class Feeder:
    """A named pipe a person can write to from any terminal; what arrives goes
    into a scanner's pty, each line ending as the scanner's CR."""

    def __init__(self, path: Path, master: int, stop: threading.Event) -> None:
        self.path = path
        self.master = master
        self.stop = stop
        os.mkfifo(path, 0o600)
        # Opened read-write, so the pipe never reports end-of-file between writers.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.thread = threading.Thread(target=self.run, name=f"feed-{path.name}", daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    data = os.read(self.fd, 4096)
                    os.write(self.master, frames(data))

    def close(self) -> None:
        self.thread.join(1)
        os.close(self.fd)


def frames(data: bytes) -> bytes:
    """Any line ending (LF from echo, CRLF, CR) as the scanner's CR terminator."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r")


def write_wrapper(workdir: Path, cfg_path: Path) -> Path:
    path = workdir / "turnstilectl"
    path.write_text(CTL_WRAPPER.format(python=shlex.quote(sys.executable),
                                       config=shlex.quote(str(cfg_path))))
    path.chmod(0o755)
    return path


def hints(workdir: Path) -> list[str]:
    return ["scan: type a code + Enter (entry), 'out CODE' (exit). In another terminal:",
            f"  echo DEMO-0001 > {workdir}/in    (the exit: .../out)",
            f"  {workdir}/turnstilectl status | scans | open"]


_stopping = threading.Event()


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP end the demo like Ctrl-C, once: a closed terminal sends
    several signals, and the clean-up must run to its end."""
    if not _stopping.is_set():
        _stopping.set()
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--gates" or a.startswith("--gates=") for a in argv):
        return demo_mesh.main(argv)
    parser = argparse.ArgumentParser(
        prog="turnstiled-demo", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--gates N [--data-dir DIR]: instead, N lanes of one venue sharing a\n"
               "local mosquitto (the venue mesh); --gates 3 --help for more.")
    parser.add_argument("--data-dir", help="keep the demo's databases here (default: a "
                        "temporary directory, removed at the end)")
    parser.add_argument("--tickets", type=int, default=2000,
                        help="tickets in the vivenu emulator (default 2000)")
    parser.add_argument("--debounce", type=float, default=1.0, metavar="SECONDS",
                        help="a code read again at the same scanner within this is ignored "
                        "(default 1)")
    args = parser.parse_args(argv)
    temporary = args.data_dir is None
    workdir = Path(args.data_dir or tempfile.mkdtemp(prefix="turnstiled-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("in", "out", "turnstilectl"):  # left by an earlier run with --data-dir
        with contextlib.suppress(FileNotFoundError):
            (workdir / name).unlink()
    # A closed terminal (SIGHUP) or kill (SIGTERM) still cleans up, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    stop = threading.Event()
    ptys = [os.openpty() for _ in range(2)]
    feeders: list[Feeder] = []
    emulator = daemon = view = painter = None
    live = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        emulator = start_emulator("vivenu", tickets=args.tickets, seed=42)
        cfg_path = workdir / "turnstiled.toml"
        cfg_path.write_text(DEMO_CONFIG.format(
            data_dir=workdir, debounce=args.debounce, pty_in=os.ttyname(ptys[0][1]),
            pty_out=os.ttyname(ptys[1][1]),
            token=emulator.credentials["token"], vivenu_url=emulator.base_url))
        cfg = config_mod.load(str(cfg_path))
        write_wrapper(workdir, cfg_path)
        legend = vivenu_legend(emulator) + demo_tickets(workdir / "demo-tickets.csv")
        cache = Cache(cfg.paths.cache_db)
        cache.replace_source("local", importer.read_file(workdir / "demo-tickets.csv"))
        cache.mark_sync("local", full=True, ok=True)
        cache.close()
        view = View(hints(workdir), legend, live, emulator)
        daemon = view.daemon = Daemon(cfg, MockFactory(), on_outcome=view.outcome)
        daemon.pipeline.on_repeat = view.repeat
        print(f"turnstiled demo: starting in {workdir} (vivenu emulator, "
              f"{args.tickets} tickets)...", flush=True)
        daemon.start()
        daemon.wait_scanners()
        wait_synced(cfg, "vivenu")
        feeders = [Feeder(workdir / "in", ptys[0][0], stop),
                   Feeder(workdir / "out", ptys[1][0], stop)]
        if live:
            painter = threading.Thread(target=view.run, name="demo-view", daemon=True)
            painter.start()
            view.painted.wait(5)
        else:
            print("\n".join(hints(workdir)), flush=True)
        scan(view, ptys, live)
    except (KeyboardInterrupt, OSError):
        pass
    finally:
        _stopping.set()
        signal.signal(signal.SIGINT, _interrupt)
        stop.set()
        if view is not None:
            view.stop.set()
            if painter is not None:
                painter.join(1)
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                view.restore()
        for f in feeders:
            f.close()
        if daemon is not None:
            daemon.stop()
        if emulator is not None:
            emulator.stop()
        for master, slave in ptys:
            with contextlib.suppress(OSError):
                os.close(master)
                os.close(slave)
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def scan(view: View, ptys: list[tuple[int, int]], live: bool) -> None:
    """Read codes from the prompt (or piped stdin) and write them into the scanners' ptys."""
    sent = 0
    lines = iter(lambda: input("scan> ") + "\n", None) if live else sys.stdin
    try:
        for line in lines:
            code = line.strip()
            master = ptys[0][0]
            if code.lower().startswith("out "):
                code, master = code[4:].strip(), ptys[1][0]
            if not code:
                continue
            os.write(master, code.encode() + b"\r")
            sent += 1
            # Piped: one line per scan, in order, so wait for this one's answer.
            if not live and view.wait_handled(sent, timeout=60) < sent:
                print(f"????? {code}  no decision within 60 s", flush=True)
                sent = view.handled
    except EOFError:
        pass


if __name__ == "__main__":
    sys.exit(main())
