"""HTTP plumbing shared by the cloud emulators: routing, faults on the wire, records, admin.

Each emulator is an :class:`Emulator` subclass with a route table and a
:class:`TicketState`; it serves on a ``ThreadingHTTPServer``. Besides the
vendor's API, every emulator answers an admin API on the same port (no
auth, never faulted):

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

Two constructor options make the cloud behave like a real one at a venue:
``clock_offset`` (seconds) sets the cloud's clock that far from the gate's
(``Date`` headers, modification times and seeded data all follow it), and
``edits_per_page`` edits that many tickets (the oldest in the list being
paged: already read by a client paging forward) after every page a ticket
list serves, the way a box office keeps working while a gate pages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from turnstiled.sim import seed as seeding
from turnstiled.sim.faults import Fault, FaultSet
from turnstiled.sim.records import Records
from turnstiled.sim.state import TicketState

logger = logging.getLogger(__name__)

HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
        b"<h1>Bad Gateway</h1><p>The upstream server is not responding.</p></body></html>")
HTML404 = (b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
           b"<h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
           b"</body></html>")
REASONS = {200: "OK", 201: "Created", 301: "Moved Permanently", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           412: "Precondition Failed", 415: "Unsupported Media Type",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}
WRONG = "wrong-credential"
FILLER = json.dumps({"data": [{"id": "x" * 24, "name": "y" * 40}] * 40}).encode()


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


class Emulator(ABC):
    """Base of the five emulators: routes, faults, records, admin API, lifecycle."""

    name = ""
    base_path = ""

    def __init__(self, *, tickets: int = 100, seed: int = 1, host: str = "127.0.0.1",
                 port: int = 0, now: float | None = None, faults: Iterable[str] = (),
                 clock_offset: float = 0.0, edits_per_page: int = 0) -> None:
        self.seed = seed
        self.clock_offset = float(clock_offset)
        self.edits_per_page = int(edits_per_page)
        self.now = float(int(self.cloud_time())) if now is None else float(now)
        self.lock = threading.RLock()
        self.rng = seeding.rng(self.name, seed)
        self.faults = FaultSet(f"{self.name}:faults:{seed}", self.base_path)
        self.records = Records()
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Request], Any]]] = []
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self.state: TicketState = self.setup(tickets)
        self.state.clock = self.cloud_time
        for rule in faults:
            self.faults.add(rule)
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    # -- to override -----------------------------------------------------
    @abstractmethod
    def setup(self, tickets: int) -> TicketState:
        """Generate the state (deterministically from ``self.rng``), register routes."""

    @property
    def credentials(self) -> dict[str, str]:
        return {}

    def error_body(self, status: int) -> Any:
        """The vendor's error body for an injected *status*."""
        return {"message": REASONS.get(status, f"HTTP {status}")}

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        return 404, {"message": f"The requested endpoint {req.path} does not exist on this "
                                "server."}, {}

    def method_not_allowed(self, req: Request, methods: list[str]
                           ) -> tuple[int, Any, dict[str, str]]:
        """A known path asked with another method: 405 with ``Allow``."""
        return 405, self.error_body(405), {"Allow": ", ".join(methods)}

    def spoil_credentials(self, req: Request) -> None:
        """Make *req*'s credentials wrong (the ``auth`` fault)."""
        for name in ("token", "x-api-key"):
            if name in req.headers:
                req.headers[name] = WRONG
        auth = req.headers.get("authorization")
        if auth is not None:
            req.headers["authorization"] = auth.split(" ", 1)[0] + " " + WRONG

    def cloud_time(self) -> float:
        """The cloud's time now: the gate's clock plus ``clock_offset``."""
        return time.time() + self.clock_offset

    def pause(self, seconds: float) -> None:
        """Wait *seconds*, or less if the emulator stops (a held request is let go at once)."""
        self._stopping.wait(seconds)

    def churn(self, scope: Any = None) -> None:
        """Edit the ``edits_per_page`` tickets listed first (of *scope*); call after a page."""
        n = self.edits_per_page
        if n <= 0:
            return
        with self.lock:
            for key in self.state.first_listed(n, scope):
                self.state.touch(key)

    # -- the Python API (the shorthands serve callers older than .state/.faults) --
    def route(self, method: str, pattern: str, fn: Callable[[Request], Any]) -> None:
        """Register *fn* for *method* and a path *pattern* with ``{name}`` parts."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.routes.append((method, re.compile(f"^{regex}$"), fn))

    def record(self, kind: str, **data: Any) -> dict[str, Any]:
        return self.records.add(kind, **data)

    def received(self, kind: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Shorthand for ``records.all(kind, **match)``."""
        return self.records.all(kind, **match)

    def add_fault(self, route: str, spec: str | None = None) -> Fault:
        """Shorthand for ``faults.add(route, spec)``."""
        return self.faults.add(route, spec)

    def clear_faults(self) -> None:
        self.faults.clear()

    def add_tickets(self, n: int = 1, **options: Any) -> list[dict[str, Any]]:
        return self.state.add(n, **options)

    def cancel(self, key: Any) -> dict[str, Any]:
        return self.state.cancel(key)

    def rezone(self, key: Any, zone: Any) -> dict[str, Any]:
        return self.state.rezone(key, zone)

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        """What ``POST /__admin/tickets`` does with *body*."""
        return self.state.admin(body)

    # -- lifecycle -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else socket.gethostname()  # noqa: S104
        return f"http://{host}:{self.port}{self.base_path}"

    @property
    def admin_url(self) -> str:
        return self.base_url.removesuffix(self.base_path) + "/__admin"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,),
                                            name=f"sim-{self.name}", daemon=True)
            self._thread.start()
            logger.info("%s emulator on %s", self.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection; hung requests are let go at once."""
        self._stopping.set()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()
        with self.lock:
            open_now = list(self._connections)
        for conn in open_now:  # a kept-alive client must not be served after the stop
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "base_url": self.base_url, "credentials": self.credentials}

    # -- HTTP --------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = f"turnstiled-sim-{emu.name}"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with emu.lock:
                    emu._connections.add(self.connection)

            def finish(self) -> None:
                with emu.lock:
                    emu._connections.discard(self.connection)
                super().finish()

            def log_message(self, fmt: str, *args: Any) -> None:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("%s: %s", emu.name, fmt % args)

            def do_GET(self) -> None:
                emu._serve(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        return Handler

    def _read(self, h: BaseHTTPRequestHandler) -> Request:
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

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        req = self._read(h)
        if req.path == "/__admin" or req.path.startswith("/__admin/"):
            status, body = self._admin(req)
            self._write(h, status, json.dumps(body).encode())
            return
        delay, fault = self.faults.take(req.method, req.path)
        if delay:
            self.pause(delay)
        label = fault.name if fault is not None else None
        logged = self.records.log_request(req.method, req.path, label)
        if fault is not None and fault.kind == "auth":
            self.spoil_credentials(req)
            fault = None
        answer = None
        if fault is None or fault.answers_after_api:
            answer = self._dispatch(req)
        if fault is None:
            logged["status"] = answer[0]  # type: ignore[index]
            self._write(h, *answer)  # type: ignore[misc]
            return
        logged["status"] = self._misbehave(h, fault, answer)

    def _dispatch(self, req: Request) -> tuple[int, bytes, dict[str, str]]:
        try:
            status, payload, headers = self._route(req)
        except HttpError as exc:
            status, payload, headers = exc.status, exc.body, exc.headers
        except Exception:
            logger.exception("%s: handler failed on %s %s", self.name, req.method, req.path)
            status, payload, headers = 500, self.error_body(500), {}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, data, headers

    def _route(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        methods: list[str] = []  # of the routes whose path matches
        for method, regex, fn in self.routes:
            m = regex.match(req.path)
            if not m:
                continue
            methods.append(method)
            if method != req.method:
                continue
            req.params = {k: unquote(v) for k, v in m.groupdict().items()}
            result = fn(req)
            if isinstance(result, tuple):
                return result if len(result) == 3 else (result[0], result[1], {})
            return 200, result, {}
        if methods:
            return self.method_not_allowed(req, methods)
        return self.not_found(req)

    def _misbehave(self, h: BaseHTTPRequestHandler, f: Fault,
                   answer: tuple[int, bytes, dict[str, str]] | None) -> int | None:
        """Answer as fault *f* says (*answer*: the API's, if it ran); the status sent."""
        kind = f.kind
        if kind == "hang":
            self.pause(f.arg or 0)
            h.close_connection = True
            return None
        if kind in ("html200", "html404", "html502"):
            status = int(kind[4:])
            self._write(h, status, HTML404 if status == 404 else HTML,
                        ctype="text/html; charset=utf-8")
            return status
        if kind.isdigit():
            headers = {"Retry-After": f"{f.arg or 0:g}"} if kind == "429" else {}
            self._write(h, int(kind), json.dumps(self.error_body(int(kind))).encode(), headers)
            return int(kind)
        status, data, headers = answer or (200, FILLER, {})
        cut = data[: max(1, len(data) // 2)]
        if kind == "truncate":
            self._write(h, status, cut, headers)
            return status
        h.close_connection = True
        self._write(h, status, data, headers, body=cut if kind == "stall" else data[:len(
            data) // 3])
        if kind == "stall":
            self.pause(f.arg or 0)
        else:
            reset(h.connection)
        return status

    def _write(self, h: BaseHTTPRequestHandler, status: int, data: bytes,
               headers: dict[str, str] | None = None, *, ctype: str = "application/json",
               body: bytes | None = None) -> None:
        """Status line, headers and body in one write (*body*: send only this part).

        A ``Content-Type`` in *headers* replaces *ctype*.
        """
        extra = dict(headers or {})
        ctype = extra.pop("Content-Type", ctype)
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                f"Server: {h.server_version}",
                f"Date: {formatdate(self.cloud_time(), usegmt=True)}",
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

    def _admin(self, req: Request) -> tuple[int, Any]:
        what = req.path.removeprefix("/__admin").strip("/")
        body = req.body if isinstance(req.body, dict) else {}
        q = req.query
        try:
            match (req.method, what.split("/", 1)[0]):
                case ("GET", ""):
                    return 200, {**self.describe(), "tickets": len(self.state),
                                 "records": len(self.records), "faults": len(self.faults)}
                case ("GET", "records"):
                    kind = q.pop("kind", None)
                    return 200, [r for r in self.records.all(kind)
                                 if all(str(r.get(k)) == v for k, v in q.items())]
                case ("DELETE", "records"):
                    self.records.clear()
                    return 200, {"cleared": True}
                case ("GET", "requests"):
                    return 200, self.records.requests(q.get("method"), q.get("path"))
                case ("GET", "faults"):
                    return 200, self.faults.describe()
                case ("POST", "faults"):
                    rule = body.get("rule")
                    f = self.faults.add(str(rule)) if rule else self.faults.add(
                        str(body.get("route", "*")), str(body.get("fault", "")))
                    return 200, f.describe()
                case ("DELETE", "faults"):
                    return 200, {"cleared": self.faults.clear(q.get("route"))}
                case ("GET", "tickets") if "/" in what:
                    return 200, self.state.get(what.split("/", 1)[1])
                case ("GET", "tickets"):
                    return 200, self.state.admin({"action": "list", **q})
                case ("POST", "tickets"):
                    return 200, self.state.admin(body)
        except KeyError as exc:
            return 404, {"error": f"no such ticket: {exc}"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}
        except HttpError as exc:
            return exc.status, exc.body
        return 404, {"error": f"no admin endpoint {req.method} /__admin/{what}"}


def reset(conn: socket.socket) -> None:
    """Close *conn* with an RST instead of a FIN (connection reset by peer)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
