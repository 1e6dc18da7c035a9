"""The daemon's local control socket, and the client ``turnstilectl`` uses.

One JSON object per line each way over a Unix stream socket (mode 0660):
``{"cmd": "status"}`` -> ``{"ok": true, ...}``. Commands are given by the
daemon as a name -> handler mapping; unknown commands get ``ok: false``.

At most ``MAX_CONNECTIONS`` clients are served at once (more get a
one-line refusal), a client that sends nothing for ``READ_TIMEOUT_S`` is
dropped, and a client that goes away is logged in one debug line. The
operator a command is journaled under is the login name of the client's
uid, from the socket's peer credentials (``SO_PEERCRED``), never from the
request's text: the server puts it in the request as ``operator``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnstiled.errors import ControlError

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
READ_TIMEOUT_S = 5.0
MAX_LINE = 65536

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serves the daemon's commands on a Unix socket in a background thread."""

    def __init__(self, path: str | Path, handlers: dict[str, Handler], *,
                 max_connections: int = MAX_CONNECTIONS,
                 read_timeout: float = READ_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.handlers = handlers
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        handlers = self.handlers
        slots = threading.BoundedSemaphore(self.max_connections)
        limit = self.max_connections

        class _Req(socketserver.StreamRequestHandler):
            timeout = self.read_timeout

            def handle(self) -> None:
                try:
                    line = self.rfile.readline(MAX_LINE)
                    if not line.endswith(b"\n"):
                        logger.debug("control client went away before a whole request")
                        return
                    reply = _answer(handlers, line, peer_operator(self.request))
                    self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")
                except OSError as exc:  # timeout, reset, broken pipe: the client's business
                    logger.debug("control client went away: %s", exc or type(exc).__name__)

        class _Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True
            last_refusal_log = 0.0

            def process_request(self, request: Any, client_address: Any) -> None:
                if not slots.acquire(blocking=False):
                    if time.monotonic() - self.last_refusal_log > 60:  # once a minute at most
                        self.last_refusal_log = time.monotonic()
                        logger.warning("control socket: %d clients already connected; "
                                       "refusing more", limit)
                    with contextlib.suppress(OSError):
                        request.sendall(b'{"ok": false, "error": "daemon busy: too many '
                                        b'control connections"}\n')
                    self.shutdown_request(request)
                    return
                try:
                    super().process_request(request, client_address)
                except Exception:
                    slots.release()
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    slots.release()

            def handle_error(self, request: Any, client_address: Any) -> None:
                logger.warning("control connection failed", exc_info=False)

        server = _Server(str(self.path), _Req)
        os.chmod(self.path, 0o660)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.2,),
                                        name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _answer(handlers: dict[str, Handler], line: bytes, operator: str) -> dict[str, Any]:
    try:
        req = json.loads(line)
    except ValueError:
        logger.warning("control request is not JSON; ignored")
        return {"ok": False, "error": "a request is one JSON object on one line"}
    if not isinstance(req, dict):
        return {"ok": False, "error": "a request is one JSON object on one line"}
    try:
        fn = handlers.get(req.get("cmd", ""))
        if fn is None:
            return {"ok": False, "error": f"unknown command {req.get('cmd')!r}"}
        return {"ok": True, **fn({**req, "operator": operator})}
    except Exception as exc:
        logger.warning("control command failed: %s", exc)
        logger.debug("control command failed", exc_info=True)
        return {"ok": False, "error": str(exc)}


def peer_operator(sock: socket.socket) -> str:
    """The login name of the process at the other end of *sock* (``uid N`` if none)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
    except OSError:
        return "unknown"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def request(path: str | Path, cmd: str, timeout: float = 3.0, **args: Any) -> dict[str, Any]:
    """Send one command to the running daemon; ControlError if it is not there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"daemon not reachable at {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except json.JSONDecodeError:
        raise ControlError(f"daemon at {path} sent a garbled reply") from None
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "command refused"))
    return reply
