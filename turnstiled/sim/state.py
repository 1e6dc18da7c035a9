"""The tickets behind an emulator, read and changed through one small interface.

``emu.state.tickets`` lists them as the vendor shows them; ``add``,
``cancel``, ``rezone`` and ``update`` change them the way a box office
would, and every change moves the ticket's modification time (vivenu
``updatedAt``, CrowdManager ``last_update``, TickeTing's
``modified_since`` clock, Octopus ``updated``) past every earlier one, so a
delta sync finds it. Each emulator subclasses :class:`TicketState`.
"""

from __future__ import annotations

import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from typing import Any, ClassVar


class TicketState(ABC):
    """An emulator's tickets: the vendor's key, zone and cancel semantics on top."""

    key_field: ClassVar[str] = "id"  # the vendor's name of the ticket key
    zone_field: ClassVar[str] = "zone"  # the vendor's name of a zone (admin API alias)
    int_keys: ClassVar[bool] = False
    add_options: ClassVar[tuple[str, ...]] = ()  # keyword arguments of add() over HTTP

    def __init__(self, lock: threading.RLock, now: float) -> None:
        self.lock = lock
        self.now = now  # the emulator's start (seeded tickets are older)
        self._last_change = now
        self.clock: Callable[[], float] = time.time  # the cloud's clock (the emulator sets it)

    # -- for subclasses ----------------------------------------------------
    @abstractmethod
    def rows(self) -> Collection[dict[str, Any]]:
        """Every ticket (the internal rows), in a stable order."""

    @abstractmethod
    def row(self, key: Any) -> dict[str, Any]:
        """The internal row of *key*; KeyError if there is none."""

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        """*row* as the vendor's API shows it (a copy)."""
        return {k: v for k, v in row.items() if not k.startswith("_")}

    @abstractmethod
    def create(self, n: int, **options: Any) -> list[dict[str, Any]]:
        """Make *n* new tickets now (under the lock); returns their rows."""

    def apply(self, row: dict[str, Any], changes: dict[str, Any], stamp: float) -> None:
        """Apply *changes* to *row* and set its modification time to *stamp*."""
        row.update(changes)

    @abstractmethod
    def cancel_changes(self, row: dict[str, Any]) -> dict[str, Any]:
        """The changes that cancel *row* in this vendor's terms."""

    @abstractmethod
    def zone_changes(self, row: dict[str, Any], zone: Any) -> dict[str, Any]:
        """The changes that move *row* to *zone* in this vendor's terms."""

    def first_listed(self, n: int, scope: Any = None) -> list[Any]:
        """Keys of the *n* tickets the vendor's list (of *scope*, e.g. an event) shows first:
        those a client paging forward has read already. Default: the order of ``rows``."""
        return [r[self.key_field] for r in itertools.islice(self.rows(), n)]

    def extra_admin(self, action: str, key: Any, body: dict[str, Any]) -> Any:
        raise ValueError(f"action must be list, get, add, cancel, rezone or update, "
                         f"not {action!r}")

    # -- the API -------------------------------------------------------------
    def stamp(self) -> float:
        """A modification time now, strictly after every earlier one (ms steps)."""
        with self.lock:
            t = round(max(self.clock(), self._last_change + 0.001), 3)
            self._last_change = t
            return t

    def key(self, key: Any) -> Any:
        return int(key) if self.int_keys else str(key)

    @property
    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket as the vendor shows it."""
        with self.lock:
            return [self.public(r) for r in self.rows()]

    def get(self, key: Any) -> dict[str, Any]:
        with self.lock:
            return self.public(self.row(self.key(key)))

    def add(self, n: int = 1, **options: Any) -> list[dict[str, Any]]:
        """*n* new tickets, created now."""
        with self.lock:
            return [self.public(r) for r in self.create(n, **options)]

    def update(self, key: Any, **changes: Any) -> dict[str, Any]:
        """Change fields of a ticket (as the vendor names them) and bump its time."""
        with self.lock:
            row = self.row(self.key(key))
            unknown = set(changes) - set(self.public(row))
            if unknown:
                raise ValueError(f"no such field: {', '.join(sorted(unknown))}")
            self.apply(row, changes, self.stamp())
            return self.public(row)

    def touch(self, key: Any) -> dict[str, Any]:
        """An edit that changes nothing but the ticket's modification time."""
        with self.lock:
            row = self.row(self.key(key))
            self.apply(row, {}, self.stamp())
            return self.public(row)

    def cancel(self, key: Any) -> dict[str, Any]:
        """The ticket cancelled / invalidated the vendor's way."""
        with self.lock:
            row = self.row(self.key(key))
            self.apply(row, self.cancel_changes(row), self.stamp())
            return self.public(row)

    def rezone(self, key: Any, zone: Any) -> dict[str, Any]:
        """The ticket moved to another zone (entry list, sector, section, ...)."""
        with self.lock:
            row = self.row(self.key(key))
            self.apply(row, self.zone_changes(row, zone), self.stamp())
            return self.public(row)

    def __len__(self) -> int:
        with self.lock:
            return len(self.rows())

    def __contains__(self, key: object) -> bool:
        try:
            self.get(key)
        except (KeyError, ValueError):
            return False
        return True

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.tickets)

    def admin(self, body: dict[str, Any]) -> Any:
        """``POST /__admin/tickets``: ``{"action": ..., "key"|<vendor key>: ..., ...}``."""
        action = str(body.get("action", "list"))
        key = body.get("key", body.get(self.key_field))
        if action == "list":
            offset, limit = int(body.get("offset", 0)), int(body.get("limit", 100))
            with self.lock:
                rows = list(self.rows())[offset:offset + limit]
                return [self.public(r) for r in rows]
        if action == "add":
            opts = {k: body[k] for k in self.add_options if k in body}
            return self.add(int(body.get("count", 1)), **opts)
        if action not in ("get", "cancel", "rezone", "update"):
            return self.extra_admin(action, key, body)
        if key is None:
            raise ValueError(f"{action} needs a key ({self.key_field!r} or 'key')")
        if action == "get":
            return self.get(key)
        if action == "cancel":
            return self.cancel(key)
        if action == "rezone":
            return self.rezone(key, body.get("zone", body.get(self.zone_field)))
        changes = body.get("changes")
        if not isinstance(changes, dict):
            raise ValueError("update needs 'changes': {field: value}")
        return self.update(key, **changes)
