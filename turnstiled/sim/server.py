"""The base of the cloud emulators: route table, dispatch, faults, records, lifecycle.

Each emulator is an :class:`Emulator` subclass with a route table and a
:class:`TicketState`; it serves on a ``ThreadingHTTPServer``. Each request
is read and answered by :mod:`~turnstiled.sim.wire`; one that a fault takes
is answered by :mod:`~turnstiled.sim.misbehave`; requests under
``/__admin`` go to the admin API (:mod:`~turnstiled.sim.admin`), on the
same port, never faulted.

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
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import unquote

from turnstiled.sim import admin, wire
from turnstiled.sim import seed as seeding
from turnstiled.sim.faults import Fault, FaultSet
from turnstiled.sim.misbehave import misbehave
from turnstiled.sim.records import Records
from turnstiled.sim.state import TicketState
from turnstiled.sim.wire import REASONS, HttpError, Request

logger = logging.getLogger(__name__)

WRONG = "wrong-credential"
S = TypeVar("S", bound=TicketState)


class Emulator(ABC, Generic[S]):
    """Base of the five emulators: routes, faults, records, admin API, lifecycle.

    *S* is the emulator's own :class:`TicketState` subclass (``self.state``).
    """

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
        self.state: S = self.setup(tickets)
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
    def setup(self, tickets: int) -> S:
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

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        req = wire.read(h)
        if admin.is_admin(req.path):
            status, body = admin.answer(self, req)
            wire.write(h, status, json.dumps(body).encode(), date=self.cloud_time())
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
            wire.write(h, *answer, date=self.cloud_time())  # type: ignore[misc]
            return
        logged["status"] = misbehave(self, h, fault, answer)

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
