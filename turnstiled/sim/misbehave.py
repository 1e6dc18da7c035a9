"""How an injected fault answers on the wire (its syntax and firing: :mod:`~turnstiled.sim.faults`).

:func:`misbehave` answers one request the way the fault that fired says:
a status with the vendor's error body, an HTML page, silence, a cut or a
reset connection. *answer* is the API's own answer when the request was
applied first (``stall``, ``truncate`` and every ``KIND!``).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from turnstiled.sim import wire
from turnstiled.sim.faults import Fault

if TYPE_CHECKING:
    from turnstiled.sim.server import Emulator

HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
        b"<h1>Bad Gateway</h1><p>The upstream server is not responding.</p></body></html>")
HTML404 = (b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
           b"<h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
           b"</body></html>")
FILLER = json.dumps({"data": [{"id": "x" * 24, "name": "y" * 40}] * 40}).encode()


def misbehave(emu: Emulator, h: BaseHTTPRequestHandler, f: Fault,
              answer: tuple[int, bytes, dict[str, str]] | None) -> int | None:
    """Answer as fault *f* says (*answer*: the API's, if it ran); the status sent."""
    kind = f.kind
    if kind == "hang":
        emu.pause(f.arg or 0)
        h.close_connection = True
        return None
    if kind in ("html200", "html404", "html502"):
        status = int(kind[4:])
        wire.write(h, status, HTML404 if status == 404 else HTML, date=emu.cloud_time(),
                   ctype="text/html; charset=utf-8")
        return status
    if kind.isdigit():
        headers = {"Retry-After": f"{f.arg or 0:g}"} if kind == "429" else {}
        wire.write(h, int(kind), json.dumps(emu.error_body(int(kind))).encode(), headers,
                   date=emu.cloud_time())
        return int(kind)
    status, data, headers = answer or (200, FILLER, {})
    cut = data[: max(1, len(data) // 2)]
    if kind == "truncate":
        wire.write(h, status, cut, headers, date=emu.cloud_time())
        return status
    h.close_connection = True
    wire.write(h, status, data, headers, date=emu.cloud_time(),
               body=cut if kind == "stall" else data[:len(data) // 3])
    if kind == "stall":
        emu.pause(f.arg or 0)
    else:
        wire.reset(h.connection)
    return status
