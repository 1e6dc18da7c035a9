"""What ``turnstilectl`` may ask of a running gate: the control socket's commands.

Technician commands are journaled first (the operator is the login name of
the client's uid, from the socket's peer credentials), then the relay
moves. Each handler reads the daemon's parts when it runs: a reload may
have replaced the gate, the cloud process or the scanners since.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from turnstiled.control import Handler
from turnstiled.timeutil import iso

if TYPE_CHECKING:
    from turnstiled.daemon import Daemon


def commands(daemon: Daemon) -> dict[str, Handler]:
    """The control socket's command table of *daemon*."""
    t = Technician(daemon)
    return {
        "status": lambda _req: daemon.status(), "open": t.open,
        "hold": t.hold, "release": t.release,
        "fleet": lambda _req: {"fleet": daemon.mesh.fleet() if daemon.mesh else None},
        "emergency": t.emergency, "test": t.test,
        "sync": lambda req: {"sources": daemon.cloud.request_sync(bool(req.get("full")))
                             if daemon.cloud else []},
    }


class Technician:
    """The commands that move the arm or test the gate, each journaled first."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _journal(self, req: dict[str, Any], kind: str, detail: str = "") -> str:
        who = str(req.get("operator") or "unknown")[:64]
        self.daemon.journal.log_event(kind, f"{detail} by {who}".strip())
        return who

    def open(self, req: dict[str, Any]) -> dict[str, Any]:
        self._journal(req, "manual_open")
        gate = self.daemon.gate
        gate.grant()
        return {"gate": gate.state()}

    def hold(self, req: dict[str, Any]) -> dict[str, Any]:
        self._journal(req, "hold_open")
        gate = self.daemon.gate
        gate.hold_open(True)
        return {"gate": gate.state()}

    def release(self, req: dict[str, Any]) -> dict[str, Any]:
        self._journal(req, "release")
        gate = self.daemon.gate
        gate.hold_open(False)
        return {"gate": gate.state()}

    def emergency(self, req: dict[str, Any]) -> dict[str, Any]:
        on = req.get("state")
        if on not in ("on", "off"):
            raise ValueError("emergency needs 'on' or 'off'")
        self._journal(req, "emergency", on)
        gate = self.daemon.gate
        gate.set_emergency(on == "on")
        return {"gate": gate.state()}

    def test(self, req: dict[str, Any]) -> dict[str, Any]:
        d = self.daemon
        if d.gate.holds():
            raise ValueError(f"test refused: arm held free ({', '.join(d.gate.holds())})")
        self._journal(req, "test")
        steps = d.gate.self_test()
        return {"steps": steps, "gate": d.gate.state(),
                "scanners": [{"name": s.name, "connected": s.connected,
                              "last_frame_at": iso(_wall(d.last_frame.get(s.name)))}
                             for s in d.scanners]}


def _wall(mono: float | None) -> float | None:
    """The wall time of a monotonic reading (None stays None)."""
    return None if mono is None else time.time() - (time.monotonic() - mono)
