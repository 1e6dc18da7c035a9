"""The admin API every emulator answers on its own port (no auth, never faulted).

- ``GET /__admin``: name, base URL, credentials, ticket count;
- ``GET /__admin/records[?kind=scan&barcode=...]``: what it received
  (scans, admissions, validations, ...), in order; ``DELETE`` forgets them;
- ``GET /__admin/requests``: every request with its status and fault;
- ``GET /__admin/faults``; ``POST /__admin/faults`` with ``{"rule":
  "ROUTE=SPEC"}`` or ``{"route": ..., "fault": SPEC}``; ``DELETE`` clears
  (``?route=`` only that route's). Syntax: :mod:`turnstiled.sim.faults`;
- ``GET /__admin/tickets[?offset=&limit=]``, ``GET /__admin/tickets/KEY``;
  ``POST /__admin/tickets`` with ``{"action": "add", "count": N}``,
  ``{"action": "cancel", "key": K}``, ``{"action": "rezone", "key": K,
  "zone": Z}``, ``{"action": "update", "key": K, "changes": {...}}`` or
  ``{"action": "list", "limit": N}``. Every change bumps the ticket's
  modification time (updatedAt, last_update, ...), so delta syncs see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turnstiled.sim.wire import HttpError, Request

if TYPE_CHECKING:
    from turnstiled.sim.server import Emulator

PREFIX = "/__admin"


def is_admin(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def answer(emu: Emulator, req: Request) -> tuple[int, Any]:
    """The status and JSON body of the admin request *req* to *emu*."""
    what = req.path.removeprefix(PREFIX).strip("/")
    body = req.body if isinstance(req.body, dict) else {}
    q = req.query
    try:
        match (req.method, what.split("/", 1)[0]):
            case ("GET", ""):
                return 200, {**emu.describe(), "tickets": len(emu.state),
                             "records": len(emu.records), "faults": len(emu.faults)}
            case ("GET", "records"):
                kind = q.pop("kind", None)
                return 200, [r for r in emu.records.all(kind)
                             if all(str(r.get(k)) == v for k, v in q.items())]
            case ("DELETE", "records"):
                emu.records.clear()
                return 200, {"cleared": True}
            case ("GET", "requests"):
                return 200, emu.records.requests(q.get("method"), q.get("path"))
            case ("GET", "faults"):
                return 200, emu.faults.describe()
            case ("POST", "faults"):
                rule = body.get("rule")
                f = emu.faults.add(str(rule)) if rule else emu.faults.add(
                    str(body.get("route", "*")), str(body.get("fault", "")))
                return 200, f.describe()
            case ("DELETE", "faults"):
                return 200, {"cleared": emu.faults.clear(q.get("route"))}
            case ("GET", "tickets") if "/" in what:
                return 200, emu.state.get(what.split("/", 1)[1])
            case ("GET", "tickets"):
                return 200, emu.state.admin({"action": "list", **q})
            case ("POST", "tickets"):
                return 200, emu.state.admin(body)
    except KeyError as exc:
        return 404, {"error": f"no such ticket: {exc}"}
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    except HttpError as exc:
        return exc.status, exc.body
    return 404, {"error": f"no admin endpoint {req.method} {PREFIX}/{what}"}
