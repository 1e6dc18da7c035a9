"""``turnstilectl``: the technician's command line.

Every command honours ``--config`` (or ``$TURNSTILED_CONFIG``), ``--json``
(errors too are JSON then) and ``--version``. Reading commands open the
databases read-only; the technician commands (``cli_tech``) ask the
running daemon over its control socket.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, NoReturn

from turnstiled import cli_mesh, cli_tech, clock, figures, importer, tables
from turnstiled import config as config_mod
from turnstiled.backends import make_backends
from turnstiled.cache import Cache
from turnstiled.cli_common import emit, positive_int
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.errors import ConfigError, ControlError, ImportFileError
from turnstiled.online import OnlineChecker
from turnstiled.pipeline import ScanPipeline
from turnstiled.timeutil import ago, iso


# -- commands --------------------------------------------------------------
def cmd_import(cfg: Config, args: argparse.Namespace) -> int:
    tickets = importer.read_file(args.file, cfg.gate.max_barcode_length)
    if args.replace and not tickets and not args.allow_empty:
        raise ImportFileError(args.file, None, "no tickets: --replace would empty the local "
                              "list (add --allow-empty if that is what you want)")
    cache = Cache(cfg.paths.cache_db)
    try:
        if args.replace:
            n = cache.replace_source(importer.SOURCE, tickets)
        else:
            n = cache.upsert(tickets)
        # "idle" also clears the re-import alarm of a rebuilt cache (datafiles.py).
        cache.mark_sync(importer.SOURCE, full=args.replace, ok=True, state="idle")
    finally:
        cache.close()
    mode = "replaced the local list with" if args.replace else "imported"
    emit(args, {"imported": n, "source": importer.SOURCE, "replace": args.replace,
                 "file": args.file}, f"{mode} {n} ticket(s) from {args.file}")
    return 0


def _argv_bytes(text: str) -> bytes:
    """An argument's bytes as typed (bytes that are not UTF-8 included).

    Python keeps such bytes as surrogates in ``sys.argv``; the barcode is
    then read the way the gate reads a scanner's bytes (the normaliser
    falls back to Latin-1), never a traceback.
    """
    return os.fsencode(text)


def cmd_lookup(cfg: Config, args: argparse.Namespace) -> int:
    cache, journal = figures.open_readonly(cfg)
    if cache is None:
        cache = Cache(":memory:")
    # Online sources are asked as a scan asks them: nothing is used upstream.
    backends = make_backends(cfg.sources)
    online = OnlineChecker(backends)
    try:
        ev = ScanPipeline(cfg, cache, journal, online=online).evaluate(
            _argv_bytes(args.barcode), args.direction)
        alarms = online.alarms()
    finally:
        online.close()
        for b in backends:
            b.close()
        cache.close()
        if journal is not None:
            journal.close()
    t, u, d = ev.ticket, ev.usage, ev.decision
    data = {
        "barcode": ev.barcode, "granted": d.granted, "reason": d.reason, "detail": d.detail,
        "direction": ev.direction,
        "ticket": None if t is None else {
            "source": t.source, "event": t.event, "status": t.status, "zones": list(t.zones),
            "valid_from": iso(t.valid_from), "valid_until": iso(t.valid_until),
            "entries": t.entries, "name": t.name, "ticket_id": t.ticket_id},
        "usage": {"entries": u.entries, "exits": u.exits, "inside": u.inside,
                  "first_used": iso(u.first_used)},
        "online": None if ev.online is None else {
            "times_used": ev.online.times_used, "note": ev.online.note},
        "alarms": alarms,
    }
    verdict = "GRANT" if d.granted else "DENY"
    lines = [f"{verdict}  {d.reason}: {d.detail}", f"barcode  {ev.barcode}"]
    if t is not None:
        lines += [f"ticket   {t.source} event={t.event or '-'} status={t.status} "
                  f"zones={','.join(t.zones) or '-'} entries={t.entries}",
                  f"window   {iso(t.valid_from) or '-'} .. {iso(t.valid_until) or '-'}",
                  f"usage    {u.entries} entries, {u.exits} exits, "
                  f"{'inside' if u.inside else 'outside'}"]
    lines += [f"ALARM    {what}: {alarm}" for what, alarm in alarms.items()]
    emit(args, data, "\n".join(lines))
    return 0 if d.granted else 1


def scan_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "nonce": row["nonce"], "at": iso(row["at"]),
        "gate_id": row["gate_id"], "scanner": row["scanner"], "direction": row["direction"],
        "barcode": row["barcode"], "granted": bool(row["granted"]), "reason": row["reason"],
        "detail": row["detail"], "source": row["source"], "event": row["event"],
        "passed": None if row["passed"] is None else bool(row["passed"]),
        "outcome": row.get("outcome"),
        "upload": row["upload"], "upload_note": row["upload_note"],
        "resent": bool(row.get("resent")),
    }


SCAN_COLUMNS = (
    tables.Column("ID", ">"), tables.Column("TIME (UTC)"),
    tables.Column("SCANNER", shrink=5), tables.Column("DIR"), tables.Column("RESULT"),
    tables.Column("REASON", shrink=8), tables.Column("OUTCOME", shrink=6, hide_empty=True),
    tables.Column("UPLOAD", shrink=6), tables.Column("BARCODE", shrink=11, middle=True),
)


def scans_table(data: list[dict[str, Any]]) -> str:
    """``scans`` for a person: short times, refusals and conflicts under their row."""
    rows, notes = [], []
    for s in data:
        at = s["at"] or ""
        rows.append([str(s["id"]), f"{at[5:10]} {at[11:19]}", s["scanner"], s["direction"],
                     "GRANT" if s["granted"] else "DENY", s["reason"],
                     s.get("outcome") or "-", s["upload"], s["barcode"]])
        note = []
        if s["upload"] == "rejected" and s.get("upload_note"):
            note.append(f"upload rejected: {s['upload_note']}")
        if s.get("conflict"):
            note.append(f"CONFLICT: also admitted at {s['conflict']['gate_id']} "
                        f"{s['conflict']['at']}")
        notes.append("; ".join(note) or None)
    return tables.render(SCAN_COLUMNS, rows, notes, tables.width())


def cmd_scans(cfg: Config, args: argparse.Namespace) -> int:
    _, journal = figures.open_readonly(cfg)
    rows = [] if journal is None else journal.recent(args.limit, barcode=args.barcode)
    conflicts = cli_mesh.conflicts_of(journal, [r["nonce"] for r in rows])
    data = [{**scan_json(r), "conflict": None if r["nonce"] not in conflicts else {
        "gate_id": conflicts[r["nonce"]]["gate_id"], "at": iso(conflicts[r["nonce"]]["at"])}}
        for r in rows]
    emit(args, data, scans_table(data) if data else "no scans journaled")
    return 0


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    now = time.time()
    cache, journal = figures.open_readonly(cfg)
    figs = figures.read(cache, journal, now, counts=True)
    sources, backlog = figs["sources"], figs["backlog"]
    counts = figs["journal"]
    try:
        daemon: dict[str, Any] | None = request(cfg.paths.control_socket, "status")
        daemon.pop("ok", None)
    except ControlError as exc:
        daemon = None
        daemon_error = str(exc)
    data = {
        "gate_id": cfg.gate.id, "config": cfg.path,
        "daemon": daemon or {"running": False, "error": daemon_error},
        "sources": [{**s, "admitting": s["source"] in (*cfg.sources, importer.SOURCE)}
                    for s in sources],
        "journal": counts,
        "backlog": {src: {"pending": b["pending"], "oldest_at": iso(b["oldest_at"]),
                          "oldest_age_s": b["oldest_age_s"],
                          "orphaned": src not in cfg.sources}
                    for src, b in backlog.items()},
        "last_scan_at": iso(figs["last_scan_at"]),
        "alarms": (daemon or {}).get("alarms", {}),
        "online": online_health(cfg, daemon),
    }
    mesh_lines: list[str] = []
    if cfg.mesh is not None:
        data["mesh"], mesh_lines = cli_mesh.mesh_status(cfg, daemon, journal, now)
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
    for s in sources:
        err = f"  ERROR {s['last_error']}" if s.get("last_error") else ""
        gone = "" if s["source"] in (*cfg.sources, importer.SOURCE) else \
            "  NOT CONFIGURED: its tickets do not admit"
        lines.append(f"source   {s['source']:<14} {s['tickets']:>9} tickets  "
                     f"synced {ago(s.get('last_sync'), now)}{err}{gone}")
    for name, h in data["online"].items():
        lines.append(f"source   {name:<14} {online_line(h, now)}")
    if not sources and not data["online"]:
        lines.append("source   none: the cache is empty (turnstilectl import FILE)")
    lines.append("journal  " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                or "empty"))
    for src, b in sorted(backlog.items()):
        lines.append(f"backlog  {src or '-':<14} {b['pending']:>9} to upload, oldest "
                     f"{ago(b['oldest_at'], now)}"
                     + ("  ORPHANED: source not configured; kept, sent if it returns"
                        if src not in cfg.sources else ""))
    lines += mesh_lines
    for db in (cache, journal):
        if db is not None:
            db.close()
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


def cmd_sync(cfg: Config, args: argparse.Namespace) -> int:
    reply = request(cfg.paths.control_socket, "sync", full=args.full)
    reply.pop("ok", None)
    names = ", ".join(reply["sources"]) or "none (no [sources.*] configured)"
    emit(args, reply, f"{'full ' if args.full else ''}sync requested: {names}")
    return 0


def cmd_doctor(cfg: Config, args: argparse.Namespace) -> int:
    from turnstiled import doctor
    checks = doctor.run(cfg)
    data = [{"check": c.name, "level": c.level, "detail": c.detail} for c in checks]
    text = tables.fold([f"{c.level:<4}  {c.name:<18} {c.detail}" for c in checks], 25,
                       tables.width())
    emit(args, data, text)
    return 1 if any(c.level == "FAIL" for c in checks) else 0


class UsageError(Exception):
    """A command line turnstilectl cannot parse (shown as JSON with ``--json``)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's own (absent) flag must not reset the global one.
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"TOML file (default ${config_mod.ENV_VAR} or "
                        f"{config_mod.DEFAULT_PATH})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    common.add_argument("--version", action="version",
                        version=f"turnstilectl {figures.version()}")
    p = _Parser(prog="turnstilectl", parents=[common],
                description="technician's tool for a turnstiled gate")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("import", parents=[common], help="load a CSV or JSON guest list")
    s.add_argument("file")
    s.add_argument("--replace", action="store_true",
                   help="replace the whole local list instead of adding to it")
    s.add_argument("--allow-empty", action="store_true",
                   help="let --replace with a file of no tickets empty the local list")
    s.set_defaults(fn=cmd_import)
    s = sub.add_parser("lookup", parents=[common],
                       help="what the gate would decide for BARCODE now (nothing is journaled)")
    s.add_argument("barcode")
    s.add_argument("--direction", choices=("in", "out"), default="in")
    s.set_defaults(fn=cmd_lookup)
    s = sub.add_parser("scans", parents=[common], help="the newest journaled scans")
    s.add_argument("--limit", type=positive_int, default=20)
    s.add_argument("--barcode")
    s.set_defaults(fn=cmd_scans)
    s = sub.add_parser("status", parents=[common], help="daemon, sources and journal at a glance")
    s.set_defaults(fn=cmd_status)
    s = sub.add_parser("occupancy", parents=[common],
                       help="people inside per zone, over every gate of the venue (mesh)")
    s.set_defaults(fn=cli_mesh.cmd_occupancy)
    s = sub.add_parser("fleet", parents=[common],
                       help="every gate of the venue: online/offline, when last seen (mesh)")
    s.set_defaults(fn=cli_mesh.cmd_fleet)
    s = sub.add_parser("sync", parents=[common], help="ask the daemon to sync every source now")
    s.add_argument("--full", action="store_true", help="a full sync, not a delta")
    s.set_defaults(fn=cmd_sync)
    s = sub.add_parser("doctor", parents=[common],
                       help="check config, disk, databases, scanners and the daemon")
    s.set_defaults(fn=cmd_doctor)
    cli_tech.add_parsers(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail("--json" in argv, str(exc), usage=parser.format_usage())
    args.json = getattr(args, "json", False)
    try:
        cfg = config_mod.load(getattr(args, "config", None))
        return int(args.fn(cfg, args))
    except (ConfigError, ImportFileError, ControlError) as exc:
        return _fail(args.json, f"turnstilectl: {exc}")


def _fail(as_json: bool, message: str, usage: str = "") -> int:
    """One error line on stderr, or one JSON object on stdout with ``--json``; exit 2."""
    if as_json:
        print(json.dumps({"ok": False, "error": message}))
    else:
        print(f"{usage}{message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
