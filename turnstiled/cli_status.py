"""``turnstilectl status``: the daemon, sources, backlog and mesh of one gate at a glance.

The daemon's live figures come over the control socket; the stored ones
(sources, backlog, journal counts) are :func:`turnstiled.figures.read`
through read-only connections, so status answers whether the daemon runs
or not (exit 3 when it does not).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from turnstiled import cli_mesh, cli_tech, clock, figures, importer, tables
from turnstiled.cli_common import emit
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.errors import ControlError
from turnstiled.timeutil import ago, iso


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    now = time.time()
    try:
        daemon: dict[str, Any] | None = request(cfg.paths.control_socket, "status")
        daemon.pop("ok", None)
    except ControlError as exc:
        daemon = None
        daemon_error = str(exc)
    cache, journal = figures.open_readonly(cfg)
    try:
        figs = figures.read(cache, journal, now, counts=True)
        mesh = None if cfg.mesh is None else cli_mesh.mesh_status(cfg, daemon, journal, now)
    finally:
        for db in (cache, journal):
            if db is not None:
                db.close()
    admitting = (*cfg.sources, importer.SOURCE)
    # Unix times stay numbers here: iso_times turns them into ISO 8601 for --json.
    data = {
        "gate_id": cfg.gate.id, "config": cfg.path,
        "daemon": daemon or {"running": False, "error": daemon_error},
        "sources": [{**s, "admitting": s["source"] in admitting} for s in figs["sources"]],
        "journal": figs["journal"],
        "backlog": {src: {"pending": b["pending"], "oldest_at": b["oldest_at"],
                          "oldest_age_s": b["oldest_age_s"],
                          "orphaned": src not in cfg.sources}
                    for src, b in figs["backlog"].items()},
        "last_scan_at": figs["last_scan_at"],
        "alarms": (daemon or {}).get("alarms", {}),
        "online": online_health(cfg, daemon),
    }
    mesh_lines: list[str] = []
    if mesh is not None:
        data["mesh"], mesh_lines = mesh
    lines = [f"gate {cfg.gate.id}  ({cfg.path})"]
    if daemon:
        g = daemon["gate"]
        lines.append(f"daemon   running {daemon['uptime_s']}s  "
                     f"relay={cli_tech.relay_text(g)}"
                     f"{'  FIRE ALARM' if g['fire_alarm'] else ''}")
        dropped = daemon.get("frames_dropped") or {}
        if any(dropped.values()):
            lines.append("frames   dropped: " + ", ".join(f"{n} {why}"
                                                         for why, n in dropped.items()))
        for s in daemon["scanners"]:
            state = "connected" if s["connected"] else f"DISCONNECTED ({s['last_error']})"
            lines.append(f"scanner  {s['name']}: {state}")
        if daemon.get("clock"):
            c = daemon["clock"]
            lines.append(f"clock    {clock.describe(c['synchronised'])}"
                         + ("" if c["synchronised"] is not False else
                            f" (entry windows: {c['unsynced_policy']})"))
        if daemon["stale_loops"]:
            lines.append(f"ALARM    loops not progressing: {', '.join(daemon['stale_loops'])}")
        for what, alarm in daemon.get("alarms", {}).items():
            lines.append(f"ALARM    {what}: {alarm}")
        lines += _metrics_lines(daemon.get("metrics"))
    else:
        lines.append(f"daemon   not running ({daemon_error})")
    for s in data["sources"]:
        err = f"  ERROR {s['last_error']}" if s.get("last_error") else ""
        gone = "" if s["admitting"] else "  NOT CONFIGURED: its tickets do not admit"
        lines.append(f"source   {s['source']:<14} {s['tickets']:>9} tickets  "
                     f"synced {ago(s.get('last_sync'), now)}{err}{gone}")
    for name, h in data["online"].items():
        lines.append(f"source   {name:<14} {online_line(h, now)}")
    if not data["sources"] and not data["online"]:
        lines.append("source   none: the cache is empty (turnstilectl import FILE)")
    lines.append("journal  " + (", ".join(f"{k} {v}" for k, v in sorted(data["journal"].items()))
                                or "empty")
                 + (f"  (last scan {ago(figs['last_scan_at'], now)})"
                    if figs["last_scan_at"] is not None else ""))
    for src, b in sorted(data["backlog"].items()):
        lines.append(f"backlog  {src or '-':<14} {b['pending']:>9} to upload, oldest "
                     f"{ago(b['oldest_at'], now)}"
                     + ("  ORPHANED: source not configured; kept, sent if it returns"
                        if b["orphaned"] else ""))
    lines += mesh_lines
    emit(args, iso_times(data), tables.fold(lines, 9, tables.width()))
    return 0 if daemon else EXIT_NOT_RUNNING


# status's exit code while the daemon cannot be reached (LSB: "not running").
EXIT_NOT_RUNNING = 3
# Keys of Unix times that --json shows as ISO 8601 (besides every ``*_at``).
_TIME_KEYS = {"last_sync", "last_full_sync", "last_attempt", "last_full", "offline_since",
              "first_used", "started", "since"}


def iso_times(obj: Any, key: str = "") -> Any:
    """*obj* with every Unix time in it as ISO 8601 UTC, as README promises."""
    if isinstance(obj, dict):
        return {k: iso_times(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [iso_times(v, key) for v in obj]
    is_time = key.endswith("_at") or key in _TIME_KEYS
    if is_time and isinstance(obj, int | float) and not isinstance(obj, bool):
        return iso(obj)
    return obj


def online_health(cfg: Config, daemon: dict[str, Any] | None) -> dict[str, Any]:
    """Each online-check source's health as the daemon keeps it (None: no daemon)."""
    known = (daemon or {}).get("online", {})
    names = [n for n, st in cfg.sources.items() if getattr(st, "online_check", False)]
    return {n: known.get(n) for n in dict.fromkeys([*names, *known])}


def online_line(h: dict[str, Any] | None, now: float) -> str:
    if h is None:
        return "online check  (health unknown: the daemon is not running)"
    text = f"online check  last answer {ago(h.get('last_answer_at'), now)}"
    if h.get("alarm"):
        return f"{text}  ALARM {h['alarm']}: {h.get('last_error')}"
    if h.get("offline_since") is not None:
        return f"{text}  OFFLINE since {ago(h['offline_since'], now)}: {h.get('last_error')}"
    if h.get("last_error"):
        text += f"  (last error {ago(h.get('last_error_at'), now)}: {h['last_error']})"
    return text


def _metrics_lines(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    where = [f"http://{m['listen']}/metrics"] if m.get("listen") else []
    where += [m["textfile"]] if m.get("textfile") else []
    out = [f"metrics  {', '.join(where) or 'none'}"]
    if m.get("error"):
        out.append(f"WARN     metrics: {m['error']}")
    return out
