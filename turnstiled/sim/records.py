"""What reached "the cloud": every scan, admission and validation an emulator received.

``emu.records.all("scan")`` lists them in order (each a dict with ``kind``,
``at`` and the vendor's fields: vivenu ``scan`` and ``online_scan``,
TickeTing ``admission`` and ``token_exchange``, chapter-event ``validation``,
``reservation`` and ``payment``, Octopus ``ticket_created``);
``count("scan", barcode=...)`` proves how many times something arrived.
``requests()`` is the log of every request with its status and fault, so a
test can count a client's retries. The admin API serves both
(``GET /__admin/records``, ``GET /__admin/requests``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any


class Records:
    """What reached "the cloud": every scan, admission, validation, ... and every request."""

    def __init__(self, max_requests: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []
        self._requests: deque[dict[str, Any]] = deque(maxlen=max_requests)

    def add(self, kind: str, **data: Any) -> dict[str, Any]:
        item = {**data, "kind": kind, "at": time.time()}
        with self._lock:
            self._items.append(item)
        return item

    def all(self, kind: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """The records of *kind* (all kinds if None) whose fields equal *match*, in order."""
        with self._lock:
            items = list(self._items)
        return [r for r in items if (kind is None or r["kind"] == kind)
                and all(r.get(k) == v for k, v in match.items())]

    def count(self, kind: str | None = None, **match: Any) -> int:
        return len(self.all(kind, **match))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._requests.clear()

    def log_request(self, method: str, path: str, fault: str | None) -> dict[str, Any]:
        """Log a request as it arrives; the caller sets ``status`` once it is answered."""
        entry = {"method": method, "path": path, "status": None, "fault": fault,
                 "at": time.time()}
        with self._lock:
            self._requests.append(entry)
        return entry

    def requests(self, method: str | None = None, path: str | None = None
                 ) -> list[dict[str, Any]]:
        """Every request (admin ones excepted), oldest first; ``status`` None while it is
        being answered, or if it never was (``hang``)."""
        with self._lock:
            items = [dict(r) for r in self._requests]
        return [r for r in items if (method is None or r["method"] == method)
                and (path is None or r["path"] == path)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.all())
