"""Prometheus metrics: an HTTP endpoint and/or node_exporter's textfile collector.

Events are counted where they happen, after the relay has moved:
:meth:`Metrics.observe` is called with each decided scan's outcome (scans by
result, reason, scanner and direction; scan-to-relay latency; journal
write failures). Everything else is state, read at scrape time by
collectors (never mirrored in counters): the daemon's live figures
(:meth:`turnstiled.daemon.Daemon.status`), the cloud process's last report
(upload failures by kind), and the databases through
:func:`turnstiled.figures.stored` on read-only connections of its own, never
the scan thread's. A collector that raises yields nothing for that scrape;
the others still answer.

No multiprocess mode: the cloud child owns no registry; its figures reach
the daemon over the pipe it already reports on. Metric names are an
interface (README.md, ``monitoring/``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from turnstiled import figures, rules
from turnstiled.config import Config
from turnstiled.drain import FAILURE_KINDS
from turnstiled.pipeline import Outcome
from turnstiled.settings import MetricsSettings, parse_listen

logger = logging.getLogger(__name__)

TEXTFILE_NAME = "turnstiled.prom"
# Scan-to-relay seconds: a cached decision takes about a millisecond, an
# online check up to its deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5)
RETRY_LISTEN_S = 30.0
STOP_TIMEOUT_S = 1.0

Live = Callable[[], dict[str, Any]]


class _Guarded(Collector):
    """One group of scrape-time metrics; if reading them raises, it yields nothing."""

    def __init__(self, name: str, read: Callable[[], Iterable[Metric]]) -> None:
        self.name = name
        self._read = read
        self._failing = False

    def describe(self) -> list[Metric]:
        return []  # never read the databases at registration

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._read())
        except Exception:
            if not self._failing:
                logger.warning("metrics: %s cannot be read; left out of scrapes until it can",
                               self.name, exc_info=True)
            self._failing = True
            return
        if self._failing:
            logger.info("metrics: %s readable again", self.name)
            self._failing = False
        yield from metrics


def _gauge(name: str, doc: str, value: float | None = None,
           labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    if labels:
        return GaugeMetricFamily(name, doc, labels=list(labels))
    return GaugeMetricFamily(name, doc, value=0.0 if value is None else value)


class Metrics:
    """The gate's metrics registry, its HTTP server and its textfile writer."""

    def __init__(self, cfg: Config | Callable[[], Config], live: Live,
                 cloud: Live | None = None) -> None:
        # The daemon passes its configuration as a callable: a reload (SIGHUP)
        # may bring new scanners, sources or a new gate id; ``[metrics]`` itself
        # is read once, here (the endpoint and the textfile outlive reloads).
        self._config = cfg if callable(cfg) else lambda: cfg
        cfg = self._config()
        self.settings: MetricsSettings = cfg.metrics
        self._live = live
        self._cloud = cloud
        self.started = time.time()
        # No *_created series: they double every counter's series and no
        # dashboard or alert of ours reads them (process-wide; this is the daemon).
        disable_created_metrics()
        self.registry = CollectorRegistry()  # turnstiled_* only: the textfile's
        self.http_registry = CollectorRegistry()  # the same, plus process_*
        self.scans = Counter("turnstiled_scans", "Decided scans.",
                             ("result", "reason", "scanner", "direction"), registry=None)
        self.latency = Histogram("turnstiled_scan_to_relay_seconds",
                                 "From the scanner's frame to the gate acting on it.",
                                 buckets=LATENCY_BUCKETS, registry=None)
        self.journal_failures = Counter("turnstiled_journal_write_failures",
                                        "Scans the journal could not record.", registry=None)
        collectors: list[Collector] = [
            self.scans, self.latency, self.journal_failures,
            _Guarded("daemon state", self._live_metrics),
            _Guarded("cloud process report", self._cloud_metrics),
            _Guarded("databases", self._stored_metrics),
        ]
        for c in collectors:
            self.registry.register(c)
            self.http_registry.register(c)
        ProcessCollector(registry=self.http_registry)
        for sc in cfg.scanner:  # every series of a configured scanner starts at 0
            for reason in (rules.GRANTED, rules.EXIT, *rules.DENY_REASONS):
                self.scans.labels("granted" if reason in (rules.GRANTED, rules.EXIT)
                                  else "denied", reason, sc.name, sc.direction)
        self.server: Any = None
        self.server_thread: threading.Thread | None = None
        self.listening: str | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- events (the decision thread, after the relay has moved) -----------
    def observe(self, outcome: Outcome) -> None:
        """Count one decided scan; called after the gate has acted on it."""
        d = outcome.evaluation.decision
        self.scans.labels("granted" if d.granted else "denied", d.reason, outcome.scanner,
                          outcome.evaluation.direction).inc()
        if outcome.latency_s is not None:
            self.latency.observe(outcome.latency_s)
        if not outcome.scan_id:
            self.journal_failures.inc()

    # -- scrape-time state -------------------------------------------------
    def _live_metrics(self) -> Iterator[Metric]:
        st = self._live()
        info = GaugeMetricFamily("turnstiled_build_info", "The running version; always 1.",
                                 labels=["version", "gate"])
        info.add_metric([figures.version(), self._config().gate.id], 1.0)
        yield info
        yield _gauge("turnstiled_start_time_seconds", "When the daemon started (Unix time).",
                     self.started)
        gate = st["gate"]
        yield _gauge("turnstiled_relay_unlocked", "1 while the relay leaves the arm free.",
                     float(gate["relay"] != "locked"))
        yield _gauge("turnstiled_hold_active", "1 while a technician's hold keeps the arm free.",
                     float("technician" in gate.get("holds", ())))
        yield _gauge("turnstiled_fire_alarm_active", "1 while the fire-alarm input is active.",
                     float(bool(gate["fire_alarm"])))
        yield _gauge("turnstiled_emergency_active", "1 while an emergency hold is on.",
                     float(bool(gate.get("emergency"))))
        conn = _gauge("turnstiled_scanner_connected", "1 while the scanner's device is open.",
                      labels=("scanner",))
        for s in st["scanners"]:
            conn.add_metric([s["name"]], float(bool(s["connected"])))
        yield conn
        yield _gauge("turnstiled_scan_queue_frames", "Frames read but not yet decided.",
                     float(st.get("queue", 0)))
        alarm = _gauge("turnstiled_alarm", "1 for each alarm a technician must look at.",
                       labels=("alarm",))
        for what in st.get("alarms", {}):
            alarm.add_metric([what], 1.0)
        yield alarm
        stale = _gauge("turnstiled_loop_stale", "1 for a loop that has stopped progressing.",
                       labels=("loop",))
        for loop in st.get("stale_loops", []):
            stale.add_metric([loop], 1.0)
        yield stale
        mesh = st.get("mesh")
        if mesh:
            yield _gauge("turnstiled_mesh_connected", "1 while the venue broker is connected.",
                         float(bool(mesh.get("connected"))))
            yield _gauge("turnstiled_mesh_peers", "Peer gates of the venue seen online.",
                         float(mesh.get("peers") or 0))
            yield _gauge("turnstiled_mesh_unacknowledged",
                         "Decisions published but not yet acknowledged by the broker.",
                         float(mesh.get("unacknowledged") or 0))

    def _cloud_metrics(self) -> Iterator[Metric]:
        if self._cloud is None:
            return
        drains = self._cloud().get("drains", {})
        failures = CounterMetricFamily(
            "turnstiled_upload_failures", "Failed uploads of journaled scans, by kind "
            "(since the cloud process started).", labels=["source", "kind"])
        sent = CounterMetricFamily("turnstiled_uploaded_scans",
                                   "Scans the cloud took (since the cloud process started).",
                                   labels=["source"])
        for name, d in sorted(drains.items()):
            kinds = d.get("failures", {})
            for kind in FAILURE_KINDS:
                failures.add_metric([name, kind], float(kinds.get(kind, 0)))
            sent.add_metric([name], float(d.get("sent", 0)))
        yield failures
        yield sent

    def _stored_metrics(self) -> Iterator[Metric]:
        now = time.time()
        cfg = self._config()
        figs = figures.stored(cfg, now, counts=False)
        tickets = _gauge("turnstiled_tickets", "Tickets in the cache.", labels=("source",))
        age = _gauge("turnstiled_sync_age_seconds",
                     "Since the source's last successful sync (+Inf: never).", labels=("source",))
        ok = _gauge("turnstiled_sync_last_ok",
                    "1 if the source's last sync attempt succeeded.", labels=("source",))
        for s in figs["sources"]:
            tickets.add_metric([s["source"]], float(s["tickets"]))
            last = s.get("last_sync")
            age.add_metric([s["source"]], math.inf if last is None else max(0.0, now - last))
            ok.add_metric([s["source"]], float(last is not None and not s.get("last_error")))
        yield tickets
        yield age
        yield ok
        backlog = _gauge("turnstiled_upload_backlog",
                         "Journaled scans the cloud has not confirmed yet.", labels=("source",))
        oldest = _gauge("turnstiled_upload_oldest_pending_age_seconds",
                        "Age of the oldest scan waiting for upload (0: none).",
                        labels=("source",))
        waiting = {src: b for src, b in figs["backlog"].items() if src}
        for src in sorted(set(waiting) | set(cfg.sources)):
            b = waiting.get(src)
            backlog.add_metric([src], float(b["pending"]) if b else 0.0)
            oldest.add_metric([src], max(0.0, now - b["oldest_at"]) if b else 0.0)
        yield backlog
        yield oldest
        last = figs["last_scan_at"]
        if last is not None:
            yield _gauge("turnstiled_last_scan_timestamp_seconds",
                         "When the gate last decided a scan (Unix time).", last)

    # -- exposition --------------------------------------------------------
    @property
    def textfile(self) -> Path | None:
        d = self.settings.textfile_dir
        return Path(d) / TEXTFILE_NAME if d else None

    def start(self) -> None:
        """Start listening and/or writing the textfile (whatever is configured)."""
        self._listen()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        if not self.settings.listen or self.server is not None:
            return
        host, port = parse_listen(self.settings.listen)
        try:
            self.server, self.server_thread = start_http_server(
                port, addr=host, registry=self.http_registry)
        except OSError as exc:
            if self.error is None:
                logger.error("metrics: cannot listen on %s (%s); retrying every %.0f s",
                             self.settings.listen, exc.strerror or exc, RETRY_LISTEN_S)
            self.error = f"cannot listen on {self.settings.listen}: {exc.strerror or exc}"
            return
        self.server_thread.name = "metrics-http"
        bound = self.server.server_address
        self.listening = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else \
            f"{bound[0]}:{bound[1]}"
        self.error = None
        logger.info("metrics: serving http://%s/metrics", self.listening)

    def write_textfile(self) -> None:
        """Write the textfile: a temporary file, then a rename (never half a file)."""
        path = self.textfile
        if path is None:
            return
        try:
            write_to_textfile(str(path), self.registry)
        except OSError as exc:
            if self.error is None:
                logger.error("metrics: cannot write %s: %s", path, exc.strerror or exc)
            self.error = f"cannot write {path}: {exc.strerror or exc}"
            return
        if self.error is not None and self.error.startswith("cannot write"):
            logger.info("metrics: writing %s again", path)
            self.error = None

    def _run(self) -> None:
        next_listen = time.monotonic() + RETRY_LISTEN_S
        while True:
            try:
                self.write_textfile()
                if self.server is None and time.monotonic() >= next_listen:
                    next_listen = time.monotonic() + RETRY_LISTEN_S
                    self._listen()
            except Exception:
                logger.exception("metrics: writer failed; trying again")
            if self._stop.wait(self.settings.textfile_interval_s):
                return

    def state(self) -> dict[str, Any]:
        """For ``turnstilectl status``: where the metrics are, and what is wrong."""
        return {"listen": self.listening, "textfile": None if self.textfile is None
                else str(self.textfile), "error": self.error}

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the writer and the HTTP server; bounded by *timeout* each."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.server is not None:
            server, self.server = self.server, None
            stopper = threading.Thread(target=server.shutdown, daemon=True)
            stopper.start()
            stopper.join(timeout)
            with contextlib.suppress(OSError):
                server.server_close()
            if self.server_thread is not None:
                self.server_thread.join(timeout)
            self.listening = None

