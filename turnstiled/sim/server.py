"""HTTP plumbing shared by the cloud emulators: routing, faults, records, admin.

Each emulator is an :class:`Emulator` subclass with a route table; it
serves on a ``ThreadingHTTPServer`` bound to 127.0.0.1. Every emulator
also answers ``/__admin/...``:

- ``GET /__admin/records[?kind=scan]``: what it received (scans,
  admissions, validations), in order;
- ``POST /__admin/faults`` ``{"route": "GLOB", "fault": "SPEC"}``; ``DELETE``
  clears them;
- ``POST /__admin/tickets`` ``{"action": "add"|"cancel"|"rezone", ...}``.

Fault SPEC: ``KIND[:ARG][xN|%P][@K]`` where KIND is ``500``, ``503``,
``429`` (ARG = Retry-After seconds, default 1), ``latency`` (ARG = ms),
``hang`` (no answer for ARG s, default 30), ``reset`` (connection closed
mid-body), ``truncate`` (half a JSON document), ``html200``, ``html502``,
``auth`` (answer as if the credentials were wrong). ``xN`` fires the N
next matching requests (default: every one), ``%P`` fires with
probability P percent from a seeded generator, ``@K`` lets the first K
matching requests through first (a failure in the middle of a sync). Routes are shell globs
over ``METHOD /path`` (``POST /api/accessusers/scans/*``) or just a path.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

FAULT_KINDS = ("500", "503", "429", "latency", "hang", "reset", "truncate", "html200",
               "html502", "auth")
_SPEC = re.compile(r"^(?P<kind>\d{3}|[a-z]+(?:\d{3})?)(?::(?P<arg>[0-9.]+))?"
                   r"(?:x(?P<n>\d+)|%(?P<p>[0-9.]+))?(?:@(?P<skip>\d+))?$")
HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        b"<body><h1>Bad Gateway</h1><p>upstream error</p></body></html>")


class HttpError(Exception):
    """Raised by a handler to answer with *status* and a JSON *body*."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Fault:
    """One injected misbehaviour on the routes matching ``route``."""

    route: str
    kind: str
    arg: float | None = None
    remaining: int | None = None  # None: every time
    probability: float | None = None
    skip: int = 0  # matching requests let through before the fault starts

    @classmethod
    def parse(cls, route: str, spec: str) -> Fault:
        m = _SPEC.match(spec.strip())
        if not m or m["kind"] not in FAULT_KINDS:
            raise ValueError(f"bad fault {spec!r}: KIND[:ARG][xN|%P][@K], KIND one of "
                             f"{', '.join(FAULT_KINDS)}")
        return cls(route, m["kind"], float(m["arg"]) if m["arg"] else None,
                   int(m["n"]) if m["n"] else None, float(m["p"]) / 100 if m["p"] else None,
                   int(m["skip"]) if m["skip"] else 0)

    def matches(self, method: str, path: str) -> bool:
        pattern = self.route if " " in self.route else f"* {self.route}"
        return fnmatch.fnmatchcase(f"{method} {path}", pattern)


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)


Route = tuple[str, re.Pattern[str], Callable[[Request], Any]]


class Emulator:
    """Base of the five emulators: routes, faults, records, admin, lifecycle."""

    name = ""

    def __init__(self, *, tickets: int = 100, seed: int = 1, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.records: list[dict[str, Any]] = []
        self.rng = random.Random(f"{self.name}:{seed}")
        self._fault_rng = random.Random(f"{self.name}:faults:{seed}")
        self.routes: list[Route] = []
        self.setup(tickets)
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    # -- to override -----------------------------------------------------
    def setup(self, tickets: int) -> None:
        """Generate state and register routes."""

    base_path = ""

    @property
    def credentials(self) -> dict[str, str]:
        return {}

    def admin_tickets(self, body: dict[str, Any]) -> Any:
        raise HttpError(400, {"error": "this emulator has no ticket admin"})

    # -- routes ------------------------------------------------------------
    def route(self, method: str, pattern: str, fn: Callable[[Request], Any]) -> None:
        """Register *fn* for *method* and a path *pattern* with ``{name}`` parts."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.routes.append((method, re.compile(f"^{regex}$"), fn))

    def record(self, kind: str, **data: Any) -> None:
        with self.lock:
            self.records.append({"kind": kind, "at": time.time(), **data})

    def received(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if kind is None or r["kind"] == kind]

    def add_fault(self, route: str, spec: str) -> Fault:
        fault = Fault.parse(route, spec)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if not f.matches(method, path):
                    continue
                if f.skip > 0:
                    f.skip -= 1
                    continue
                if f.probability is not None and self._fault_rng.random() >= f.probability:
                    continue
                if f.remaining is not None:
                    if f.remaining <= 0:
                        continue
                    f.remaining -= 1
                return f
        return None

    # -- lifecycle ---------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,),
                                        name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Emulator:
        return self

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

            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("%s: %s", emu.name, fmt % args)

            def do_GET(self) -> None:
                emu._serve(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        req = Request(h.command, path, query, {k.lower(): v for k, v in h.headers.items()},
                      body, raw)
        if path.startswith("/__admin/"):
            self._answer(h, *self._admin(req))
            return
        fault = self._take_fault(h.command, path)
        if fault is not None and self._inject(h, fault):
            return
        try:
            status, payload, headers = self._dispatch(req, auth_fault=bool(
                fault and fault.kind == "auth"))
        except HttpError as exc:
            status, payload, headers = exc.status, exc.body, exc.headers
        except Exception:
            logger.exception("%s: handler failed", self.name)
            status, payload, headers = 500, {"message": "emulator error"}, {}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if fault is not None and fault.kind == "truncate":
            self._answer(h, status, data[: max(1, len(data) // 2)], headers,
                         length=len(data[: max(1, len(data) // 2)]))
            return
        self._answer(h, status, data, headers)

    def _dispatch(self, req: Request, auth_fault: bool) -> tuple[int, Any, dict[str, str]]:
        known_path = False
        for method, regex, fn in self.routes:
            m = regex.match(req.path)
            if not m:
                continue
            known_path = True
            if method != req.method:
                continue
            req.params = m.groupdict()
            if auth_fault:
                req.headers = {k: v for k, v in req.headers.items()
                               if k not in ("authorization", "token", "x-api-key")}
                req.query.pop("password", None)
                if isinstance(req.body, dict) and "password" in req.body:
                    req.body = {**req.body, "password": "wrong"}
            result = fn(req)
            if isinstance(result, tuple):
                if len(result) == 3:
                    return result
                return result[0], result[1], {}
            return 200, result, {}
        if known_path:
            raise HttpError(405, {"message": f"method {req.method} not allowed"})
        return self.not_found(req)

    def not_found(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        return 404, {"message": f"The requested endpoint {req.path} does not exist on this "
                                "server."}, {}

    def _inject(self, h: BaseHTTPRequestHandler, f: Fault) -> bool:
        """Answer with the fault; False when the request goes on (latency, truncate, auth)."""
        kind = f.kind
        if kind == "latency":
            time.sleep((f.arg or 200) / 1000)
            return False
        if kind in ("truncate", "auth"):
            return False
        if kind == "hang":
            time.sleep(f.arg or 30)
            h.close_connection = True
            return True
        if kind == "reset":
            body = json.dumps({"docs": [{"_id": "x" * 40}] * 50, "total": 50}).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 3])
            h.wfile.flush()
            with_linger_reset(h.connection)
            h.close_connection = True
            return True
        if kind in ("html200", "html502"):
            self._answer(h, 200 if kind == "html200" else 502, HTML, {},
                         ctype="text/html; charset=utf-8")
            return True
        status = int(kind)
        headers = {"Retry-After": str(int(f.arg if f.arg is not None else 1))} \
            if kind == "429" else {}
        self._answer(h, status, json.dumps(self.error_body(status)).encode(), headers)
        return True

    def error_body(self, status: int) -> Any:
        """The vendor's error body for an injected *status*."""
        return {"message": f"HTTP {status}"}

    def _answer(self, h: BaseHTTPRequestHandler, status: int, data: Any,
                headers: dict[str, str] | None = None, *, length: int | None = None,
                ctype: str = "application/json") -> None:
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data) if length is None else length))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _admin(self, req: Request) -> tuple[int, Any]:
        what = req.path[len("/__admin/"):].strip("/")
        body = req.body if isinstance(req.body, dict) else {}
        try:
            if what == "records" and req.method == "GET":
                return 200, self.received(req.query.get("kind"))
            if what == "faults" and req.method == "POST":
                f = self.add_fault(str(body.get("route", "*")), str(body.get("fault", "")))
                return 200, {"route": f.route, "kind": f.kind}
            if what == "faults" and req.method == "DELETE":
                self.clear_faults()
                return 200, {"cleared": True}
            if what == "faults" and req.method == "GET":
                return 200, [f.__dict__ for f in self.faults]
            if what == "tickets" and req.method == "POST":
                return 200, self.admin_tickets(body)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except HttpError as exc:
            return exc.status, exc.body
        return 404, {"error": f"no admin endpoint {req.method} {what}"}


def with_linger_reset(conn: socket.socket) -> None:
    """Close *conn* with an RST instead of a FIN (connection reset by peer)."""
    import struct
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
