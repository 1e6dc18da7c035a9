"""``turnstilectl`` technician commands: open, hold, release, emergency, test, events.

The commands that move the gate ask the running daemon, which journals
each one (under the login name of the caller's uid) before the relay
moves. ``events`` reads the journal's technician and alarm events.
"""

from __future__ import annotations

import argparse
from typing import Any

from turnstiled.cli_common import emit, journal_readonly, positive_int
from turnstiled.config import Config
from turnstiled.control import request
from turnstiled.timeutil import iso

# Events a technician looks for; start/stop are shown with --all.
TECHNICIAN_EVENTS = ("manual_open", "hold_open", "release", "emergency", "test",
                     "fire_alarm", "settled", "clock_step")


def relay_text(gate: dict[str, Any]) -> str:
    """The relay as a technician reads it: a hold says it is a hold, and why."""
    holds = gate.get("holds") or []
    if holds:
        return f"held free ({', '.join(holds)})"
    return str(gate.get("relay"))


def control(cmd: str) -> Any:
    def run(cfg: Config, args: argparse.Namespace) -> int:
        reply = request(cfg.paths.control_socket, cmd)
        reply.pop("ok", None)
        emit(args, reply, f"{cmd}: relay {relay_text(reply['gate'])}")
        return 0
    return run


def cmd_emergency(cfg: Config, args: argparse.Namespace) -> int:
    reply = request(cfg.paths.control_socket, "emergency", state=args.state)
    reply.pop("ok", None)
    emit(args, reply, f"emergency {args.state}: relay {relay_text(reply['gate'])}")
    return 0


def cmd_test(cfg: Config, args: argparse.Namespace) -> int:
    reply = request(cfg.paths.control_socket, "test", timeout=15.0)
    reply.pop("ok", None)
    lines = [f"cycled   {', '.join(reply['steps'])}; relay {relay_text(reply['gate'])}"]
    for s in reply["scanners"]:
        state = "connected" if s["connected"] else "DISCONNECTED"
        lines.append(f"scanner  {s['name']}: {state}, last frame {s['last_frame_at'] or 'never'}")
    if not reply["scanners"]:
        lines.append("scanner  none configured")
    emit(args, reply, "\n".join(lines))
    return 0


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "at": iso(row["at"]), "kind": row["kind"], "detail": row["detail"]}


def cmd_events(cfg: Config, args: argparse.Namespace) -> int:
    with journal_readonly(cfg) as journal:
        kinds = None if args.all else TECHNICIAN_EVENTS
        rows = [] if journal is None else journal.events(args.limit, kinds=kinds)
    data = [event_json(r) for r in rows]
    lines = [f"{'ID':>6}  {'TIME (UTC)':<24} {'EVENT':<12} DETAIL"]
    lines += [f"{e['id']:>6}  {e['at']:<24} {e['kind']:<12} {e['detail']}" for e in data]
    emit(args, data, "\n".join(lines) if data else "no events journaled")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The technician commands, on *sub* (the subcommand parsers of turnstilectl)."""
    for name, helptext in (("open", "pulse the relay once (journaled)"),
                           ("hold", "hold the arm free until 'release' (journaled)"),
                           ("release", "end a hold (journaled)")):
        s = sub.add_parser(name, parents=[common], help=helptext)
        s.set_defaults(fn=control(name))
    s = sub.add_parser("emergency", parents=[common],
                       help="hold the arm free like the fire input, until 'emergency off'")
    s.add_argument("state", choices=("on", "off"),
                   help="on: hold the arm free (journaled, survives a restart); off: end it")
    s.set_defaults(fn=cmd_emergency)
    s = sub.add_parser("test", parents=[common],
                       help="cycle green, red, buzzer and relay; show each scanner's last frame")
    s.set_defaults(fn=cmd_test)
    s = sub.add_parser("events", parents=[common],
                       help="journaled technician and alarm events, newest first")
    s.add_argument("--limit", type=positive_int, default=20,
                   help="how many, newest first (default 20, at least 1)")
    s.add_argument("--all", action="store_true", help="also start and stop")
    s.set_defaults(fn=cmd_events)
