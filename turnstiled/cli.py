"""``turnstilectl``: the technician's command line.

Every command honours ``--config`` (or ``$TURNSTILED_CONFIG``), ``--json``
(errors too are JSON then) and ``--version``. Reading commands open the
databases read-only; the technician commands (``cli_tech``) ask the
running daemon over its control socket. ``status`` is ``cli_status``, the
venue mesh's commands ``cli_mesh``; this module holds the rest and the
command line itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

from turnstiled import cli_mesh, cli_tech, figures, importer, tables
from turnstiled import config as config_mod
from turnstiled.backends import make_backends
from turnstiled.cache import Cache
from turnstiled.cli_common import emit, journal_readonly, positive_int
from turnstiled.cli_status import cmd_status
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.errors import ConfigError, ControlError, ImportFileError
from turnstiled.online import OnlineChecker
from turnstiled.pipeline import ScanPipeline
from turnstiled.timeutil import iso


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
    with journal_readonly(cfg) as journal:
        rows = [] if journal is None else journal.recent(args.limit, barcode=args.barcode)
        conflicts = cli_mesh.conflicts_of(journal, [r["nonce"] for r in rows])
    data = [{**scan_json(r), "conflict": None if r["nonce"] not in conflicts else {
        "gate_id": conflicts[r["nonce"]]["gate_id"], "at": iso(conflicts[r["nonce"]]["at"])}}
        for r in rows]
    emit(args, data, scans_table(data) if data else "no scans journaled")
    return 0


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

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage  # of the (sub)command whose line it was


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", self.format_usage())


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
    s.add_argument("file", help="CSV with a header row (fields split by , ; or tab) or a "
                   "JSON list of objects; columns: README, Guest-list format")
    s.add_argument("--replace", action="store_true",
                   help="replace the whole local list instead of adding to it")
    s.add_argument("--allow-empty", action="store_true",
                   help="let --replace with a file of no tickets empty the local list")
    s.set_defaults(fn=cmd_import)
    s = sub.add_parser("lookup", parents=[common],
                       help="what the gate would decide for BARCODE now (nothing is journaled)")
    s.add_argument("barcode", help="the code as a scanner sends it (the same normaliser)")
    s.add_argument("--direction", choices=("in", "out"), default="in",
                   help="decide as an entry (in, the default) or an exit scanner")
    s.set_defaults(fn=cmd_lookup)
    s = sub.add_parser("scans", parents=[common], help="the newest journaled scans")
    s.add_argument("--limit", type=positive_int, default=20,
                   help="how many, newest first (default 20, at least 1)")
    s.add_argument("--barcode", help="only the scans of this barcode (exact)")
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
        return _fail("--json" in argv, str(exc), usage=exc.usage)
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
