"""Fault injection rules for the emulators: a compact syntax, route matching, seeded firing.

A rule is ``ROUTE=SPEC[,SPEC...]``.

ROUTE is a shell glob over ``METHOD /path`` (``POST /api/accessusers/scans/*``)
or over the path alone (``/api/accessusers/scans/*``, ``*``). A path glob
may be written in full or below the emulator's base path
(``/scans/*`` on vivenu means ``/api/accessusers/scans/*``).

SPEC is ``KIND[!][:ARG][xN][%P][@K]``:

=============  ===============================================================
KIND           effect
=============  ===============================================================
``500``        answer that status with the vendor's error body (any 400-599
``503``        works the same way, e.g. ``502``, ``504``, ``404``)
``429``        Too Many Requests with ``Retry-After: ARG`` (seconds, default 1)
``latency``    answer normally, ARG milliseconds late (default 200); it adds
               to whatever other fault fires on the same request
``hang``       read the request, never answer; close after ARG s (default 30)
``reset``      send headers and part of a body, then reset the connection (RST)
``stall``      apply the request, send headers and half the body, then stop
               sending for ARG s (default 30): a timeout mid-body
``truncate``   apply the request, answer with only the first half of the
               JSON body (Content-Length matches the cut body)
``html200``    an HTML error page with status 200 (a captive portal, a proxy)
``html502``    an HTML error page with status 502 (a load balancer)
``html404``    an HTML 404 page (a proxy or a wrong base URL): a refusal of
               the request as a whole, not of anything in it
``auth``       answer as if the credentials were wrong (the vendor's own
               401 answer; TickeTing answers a wrong key with 403)
=============  ===============================================================

Faults answer *instead of* the API: the request is not applied (no scan
recorded, no ticket used), except ``stall`` and ``truncate``, which cut the
real answer. A ``!`` after KIND applies the request first and then
misbehaves: ``hang!`` and ``reset!`` are the answer lost after the cloud
took the scan, ``503!`` a proxy error after the backend did its work.

``xN`` fires on the next N matching requests only (``x1``: one-shot; no
``xN``: every time). ``%P`` fires with probability P percent, drawn from a
generator seeded with the emulator's seed, so a run repeats exactly.
``@K`` lets the first K matching requests through before the fault
starts (a failure in the middle of a full sync). Faults are tried in the
order they were added: the first that fires answers, latencies add up.
On the command line and in ``start_all`` a rule may start with ``NAME:``
(``vivenu:/scans/*=503x3``) to reach one emulator only.

Examples: ``*=503x3``, ``GET /api/tickets=429:5x2``, ``/scans/*=reset%25``,
``*=latency:150,500x1@10``, ``POST /api/accessusers/scans/*=hang!:5x1``.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)

NAMED_KINDS = ("latency", "hang", "stall", "reset", "truncate", "html200", "html404", "html502",
               "auth")
DEFAULT_ARG = {"429": 1.0, "latency": 200.0, "hang": 30.0, "stall": 30.0}
_SPEC = re.compile(r"^(?P<kind>[a-z]+(?:200|404|502)?|\d{3})(?P<applied>!)?"
                   r"(?::(?P<arg>\d+(?:\.\d+)?))?"
                   r"(?:x(?P<n>\d+))?(?:%(?P<p>\d+(?:\.\d+)?))?(?:@(?P<skip>\d+))?$")


class FaultSpecError(ValueError):
    """A fault rule that does not follow ``ROUTE=KIND[!][:ARG][xN][%P][@K]``."""


@dataclass
class Fault:
    """One injected misbehaviour on the requests matching ``route``."""

    route: str
    kind: str
    arg: float | None = None
    times: int | None = None  # None: every matching request
    probability: float | None = None  # 0..1, None: always
    after: int = 0  # matching requests let through before the fault starts
    applied: bool = False  # the API applies the request before the fault strikes
    fired: int = 0

    @classmethod
    def parse(cls, route: str, spec: str) -> Fault:
        """The fault *spec* (``KIND[!][:ARG][xN][%P][@K]``) on *route*."""
        m = _SPEC.match(spec.strip())
        kind = m["kind"] if m else ""
        if not m or not (kind in NAMED_KINDS or (kind.isdigit() and 400 <= int(kind) <= 599)):
            raise FaultSpecError(
                f"bad fault {spec!r}: want KIND[!][:ARG][xN][%P][@K] with KIND a status "
                f"400-599 or one of {', '.join(NAMED_KINDS)}")
        if m["applied"] and kind in ("latency", "auth", "stall", "truncate"):
            raise FaultSpecError(f"bad fault {spec!r}: '!' makes no sense with {kind}")
        p = float(m["p"]) / 100 if m["p"] else None
        if p is not None and not 0 <= p <= 1:
            raise FaultSpecError(f"bad fault {spec!r}: probability must be 0..100 %")
        arg = float(m["arg"]) if m["arg"] else DEFAULT_ARG.get(kind)
        return cls(route.strip() or "*", kind, arg, int(m["n"]) if m["n"] else None, p,
                   int(m["skip"] or 0), bool(m["applied"]))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    @property
    def name(self) -> str:
        """The kind, with ``!`` when the request is applied first (``reset!``)."""
        return self.kind + ("!" if self.applied else "")

    @property
    def answers_after_api(self) -> bool:
        """Whether the API handles the request before this fault spoils the answer."""
        return self.applied or self.kind in ("stall", "truncate")

    @property
    def spec(self) -> str:
        """This fault written back in the compact syntax."""
        text = self.name
        if self.arg is not None and self.arg != DEFAULT_ARG.get(self.kind):
            text += f":{self.arg:g}"
        if self.times is not None:
            text += f"x{self.times}"
        if self.probability is not None:
            text += f"%{self.probability * 100:g}"
        return text + (f"@{self.after}" if self.after else "")

    def matches(self, method: str, path: str, base_path: str = "") -> bool:
        paths = [path]
        if base_path and path.startswith(base_path):
            paths.append(path[len(base_path):] or "/")
        pattern = self.route if " " in self.route else f"* {self.route}"
        return any(fnmatch.fnmatchcase(f"{method} {p}", pattern) for p in paths)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec, "exhausted": self.exhausted}


def parse_rule(rule: str) -> list[Fault]:
    """``ROUTE=SPEC[,SPEC...]`` as faults (a bare ``SPEC`` applies to every route)."""
    route, sep, specs = rule.rpartition("=")
    if not sep:
        route, specs = "*", rule
    faults = [Fault.parse(route, s) for s in specs.split(",") if s.strip()]
    if not faults:
        raise FaultSpecError(f"bad fault rule {rule!r}: no fault after '='")
    return faults


class FaultSet:
    """The faults of one emulator; thread-safe, with its own seeded generator."""

    def __init__(self, seed: str, base_path: str = "") -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._seed = seed
        self.base_path = base_path

    def add(self, route: str, spec: str | None = None) -> Fault:
        """Add a fault: ``add("GET /x/*", "500x2")`` or ``add("GET /x/*=500x2")``.

        With a rule of several comma-separated specs, the last one is returned.
        """
        faults = parse_rule(route) if spec is None else parse_rule(f"{route}={spec}")
        with self._lock:
            self._faults.extend(faults)
        logger.info("fault added: %s", ", ".join(f"{f.route}={f.spec}" for f in faults))
        return faults[-1]

    def clear(self, route: str | None = None) -> int:
        """Remove every fault (or those on exactly *route*); returns how many."""
        with self._lock:
            keep = [] if route is None else [f for f in self._faults if f.route != route]
            removed = len(self._faults) - len(keep)
            self._faults = keep
        return removed

    def reseed(self, seed: str | None = None) -> None:
        """Restart the probability generator (from *seed*, else the emulator's own)."""
        with self._lock:
            self._rng = random.Random(self._seed if seed is None else seed)

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def describe(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self]

    def take(self, method: str, path: str) -> tuple[float, Fault | None]:
        """Decide the faults of one request: (added latency in s, the fault that answers)."""
        delay, chosen = 0.0, None
        with self._lock:
            for f in self._faults:
                if f.exhausted or not f.matches(method, path, self.base_path):
                    continue
                if f.after > 0:  # counts every matching request, whichever fault answers it
                    f.after -= 1
                    continue
                if (chosen is not None and f.kind != "latency") or (
                        f.probability is not None and self._rng.random() >= f.probability):
                    continue
                f.fired += 1
                if f.kind == "latency":
                    delay += (f.arg or 0.0) / 1000
                else:
                    chosen = f
        return delay, chosen


def split_target(rule: str, names: Iterable[str]) -> tuple[str | None, str]:
    """``NAME:ROUTE=SPEC`` as (NAME, ``ROUTE=SPEC``); (None, rule) without a known NAME."""
    target, sep, rest = rule.partition(":")
    if sep and target in set(names):
        return target, rest
    return None, rule
