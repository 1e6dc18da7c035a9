"""Request parsing and response writing for the emulators' HTTP handlers.

:func:`read` turns what a ``BaseHTTPRequestHandler`` received into a
:class:`Request`; :func:`write` sends the status line, headers and body in
one write (or only a part of the body, for the faults that cut it);
:func:`reset` closes a connection with an RST. A route handler answers a
refusal by raising :class:`HttpError`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

REASONS = {200: "OK", 201: "Created", 301: "Moved Permanently", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           412: "Precondition Failed", 415: "Unsupported Media Type",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}


class HttpError(Exception):
    """Raised by a handler to answer with *status* and a JSON *body*."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: Any
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)


def read(h: BaseHTTPRequestHandler) -> Request:
    split = urlsplit(h.path)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    length = int(h.headers.get("Content-Length") or 0)
    raw = h.rfile.read(length) if length > 0 else b""
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    return Request(h.command, split.path, query,
                   {k.lower(): v for k, v in h.headers.items()}, body, raw)


def write(h: BaseHTTPRequestHandler, status: int, data: bytes,
          headers: dict[str, str] | None = None, *, date: float,
          ctype: str = "application/json", body: bytes | None = None) -> None:
    """Status line, headers and body in one write (*body*: send only this part).

    *date* is the cloud's time for the ``Date`` header. A ``Content-Type`` in
    *headers* replaces *ctype*.
    """
    extra = dict(headers or {})
    ctype = extra.pop("Content-Type", ctype)
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            f"Server: {h.server_version}",
            f"Date: {formatdate(date, usegmt=True)}",
            f"Content-Type: {ctype}", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in extra.items()]
    if h.close_connection:
        head.append("Connection: close")
    h.log_request(status, len(data))
    try:
        h.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
                      + (data if body is None else body))
        h.wfile.flush()
    except OSError:
        h.close_connection = True


def reset(conn: socket.socket) -> None:
    """Close *conn* with an RST instead of a FIN (connection reset by peer)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
