"""``turnstilectl doctor``: what a technician checks first, in one list.

Each check answers OK, WARN or FAIL with one line of detail. Nothing here
changes the gate: databases are opened read-only, devices are only looked
at, online sources are asked about a code no ticket has (an online check
never uses a ticket), and the daemon is asked for its status over the
control socket.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from turnstiled import clock
from turnstiled.backends import make_backends
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.errors import ControlError
from turnstiled.online import OnlineChecker

MIN_FREE_BYTES = 200 * 2**20
PROBE = "turnstiled-doctor-probe"  # no ticket has this code


@dataclass(frozen=True)
class Check:
    """One finding."""

    name: str
    level: str  # OK | WARN | FAIL
    detail: str


def _db(path: Path, name: str) -> Check:
    if not path.exists():
        return Check(name, "WARN", f"{path} does not exist yet")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check(name, "FAIL", f"{path}: {exc}")
    if result != "ok":
        return Check(name, "FAIL", f"{path}: integrity check says {result}")
    return Check(name, "OK" if mode == "wal" else "WARN", f"{path}: intact, journal_mode={mode}")


def _scanner_device(kind: str, where: str) -> tuple[str, str]:
    if kind == "serial":
        if "://" in where:
            return "OK", f"{where} (pyserial URL, not checked)"
        if not os.path.exists(where):
            return "FAIL", f"{where} does not exist (unplugged? udev rule?)"
        if not os.access(where, os.R_OK | os.W_OK):
            return "FAIL", f"{where} is not readable and writable by this user"
        return "OK", where
    if where.startswith("name:"):
        from turnstiled.scanners.hid import find_device
        try:
            return "OK", f"{where} -> {find_device(where)}"
        except (FileNotFoundError, OSError) as exc:
            return "FAIL", str(exc)
    if not os.path.exists(where):
        return "FAIL", f"{where} does not exist"
    return ("OK", where) if os.access(where, os.R_OK) else ("FAIL", f"{where} not readable")


def run(cfg: Config) -> list[Check]:
    """Every check, in the order a technician would go through them."""
    checks = [Check("config", "OK", f"{cfg.path} is valid")]
    data = Path(cfg.paths.data_dir)
    if data.is_dir() and os.access(data, os.W_OK):
        free = shutil.disk_usage(data).free
        level = "OK" if free >= MIN_FREE_BYTES else "WARN"
        checks.append(Check("disk", level, f"{free / 2**20:,.0f} MB free in {data}"))
    else:
        checks.append(Check("disk", "FAIL", f"{data} is missing or not writable"))
    synced = clock.synchronised()
    checks.append(Check("clock", "OK" if synced else "WARN",
                        f"wall clock {clock.describe(synced)}; while not synchronised, "
                        f"tickets with an entry window: {cfg.gate.unsynced_clock} "
                        "([gate] unsynced_clock)"))
    checks.append(_db(cfg.paths.journal_db, "journal"))
    checks.append(_db(cfg.paths.cache_db, "cache"))
    if not cfg.scanner:
        checks.append(Check("scanners", "WARN", "no [[scanner]] configured"))
    for sc in cfg.scanner:
        level, detail = _scanner_device(sc.type, sc.url if sc.type == "serial" else sc.device)
        checks.append(Check(f"scanner {sc.name}", level, f"{sc.type}: {detail}"))
    checks += _online_sources(cfg)
    try:
        status = request(cfg.paths.control_socket, "status")
    except ControlError as exc:
        checks.append(Check("daemon", "FAIL", str(exc)))
        return checks
    checks.append(Check("daemon", "OK", f"running for {status['uptime_s']} s, relay "
                        f"{status['gate']['relay']}"))
    for sc in status.get("scanners", []):
        if not sc["connected"]:
            checks.append(Check(f"scanner {sc['name']}", "FAIL",
                                f"daemon cannot read it: {sc['last_error']}"))
    for what, alarm in status.get("alarms", {}).items():
        checks.append(Check(what, "FAIL" if what != "fire_alarm" else "WARN", alarm))
    if status.get("stale_loops"):
        checks.append(Check("loops", "FAIL", "not progressing: "
                            + ", ".join(status["stale_loops"])))
    return checks


def _online_sources(cfg: Config) -> list[Check]:
    """Ask each online-check source once: a refused password shows before any scan."""
    out = []
    for backend in make_backends(cfg.sources):
        checker = OnlineChecker([backend])
        try:
            if not checker:
                continue
            checker.check(PROBE)
            h = checker.health[backend.name]
        finally:
            checker.close()
            backend.close()
        if h.alarm:
            out.append(Check(f"source {backend.name}", "FAIL", f"{h.alarm}: {h.last_error}"))
        elif h.last_answer_at is None:
            out.append(Check(f"source {backend.name}", "WARN", f"offline: {h.last_error}"))
        else:
            out.append(Check(f"source {backend.name}", "OK", "answers the online check"))
    return out
