"""systemd integration: Type=notify readiness, status text and a guarded watchdog.

The watchdog is pinged only when every registered loop has reported
progress within its allowance: a stuck scan loop or drainer lets systemd
restart the daemon instead of being hidden by a blind ping.

A notification is one datagram to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket written ``@name``), what ``sd_notify(3)`` sends; sent here
with the socket module rather than systemd-python's ``systemd.daemon``,
whose import (libsystemd, libgcrypt) cost 0.8 MB of the daemon's RSS
(issue 14).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

logger = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send *state* to systemd; False when not run by systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
    except OSError:
        logger.debug("sd_notify failed", exc_info=True)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the configured WatchdogSec, or None when the watchdog is off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Heartbeats:
    """Progress marks of the daemon's loops; healthy when none is stale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: dict[str, tuple[float, float]] = {}

    def register(self, name: str, allowance_s: float) -> None:
        with self._lock:
            self._beats[name] = (time.monotonic(), allowance_s)

    def beat(self, name: str) -> None:
        with self._lock:
            _, allowance = self._beats[name]
            self._beats[name] = (time.monotonic(), allowance)

    def stale(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [n for n, (t, a) in self._beats.items() if now - t > a]
