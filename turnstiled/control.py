"""The daemon's local control socket, and the client ``turnstilectl`` uses.

One JSON object per line each way over a Unix stream socket (mode 0660):
``{"cmd": "status"}`` -> ``{"ok": true, ...}``. Commands are given by the
daemon as a name -> handler mapping; unknown commands get ``ok: false``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnstiled.errors import ControlError

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serves the daemon's commands on a Unix socket in a background thread."""

    def __init__(self, path: str | Path, handlers: dict[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers = handlers
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        handlers = self.handlers

        class _Req(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65536)
                try:
                    req = json.loads(line)
                    fn = handlers.get(req.get("cmd", ""))
                    if fn is None:
                        reply = {"ok": False, "error": f"unknown command {req.get('cmd')!r}"}
                    else:
                        reply = {"ok": True, **fn(req)}
                except Exception as exc:
                    logger.warning("control command failed: %s", exc)
                    logger.debug("control command failed", exc_info=True)
                    reply = {"ok": False, "error": str(exc)}
                self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")

        server = socketserver.ThreadingUnixStreamServer(str(self.path), _Req)
        server.daemon_threads = True
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
