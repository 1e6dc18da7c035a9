"""The daemon: one running gate, wiring scanners -> pipeline -> journal -> gate.

Threads: one per scanner (reading frames), one decision worker (it
decides scans strictly one after another and journals the fire-alarm
events gpiozero reports), the control socket (its commands, in
:mod:`turnstiled.technician`, journal on the same journal connection,
before the relay moves), and the main thread (:mod:`turnstiled.service`),
which waits for signals and pings the watchdog while the worker shows
progress.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gpiozero.pins import Factory

from turnstiled import datafiles, preflight, sdnotify
from turnstiled import reload as reload_mod
from turnstiled.backends import make_backends
from turnstiled.cache import Cache
from turnstiled.cloud import CloudProcess
from turnstiled.config import Config
from turnstiled.control import ControlServer
from turnstiled.figures import gate_figures, version
from turnstiled.gate import Gate
from turnstiled.intake import Frame, Intake
from turnstiled.journal import Journal
from turnstiled.online import OnlineChecker
from turnstiled.pipeline import Outcome, ScanPipeline
from turnstiled.settings import HardwareSettings, ScannerSettings
from turnstiled.technician import commands

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
CLOUD_ALLOWANCE_S = 120.0  # a request times out long before this
_STOP = object()
IDLE_FLUSH_S = 0.5  # an idle decision worker writes the gate's outcomes this soon


@dataclass(frozen=True, slots=True)
class _Event:
    """A gate event for the decision worker to journal (fire alarm)."""

    kind: str
    detail: str
    at: float


class Scanner(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self, timeout: float = 1.0) -> None: ...
    @property
    def connected(self) -> bool: ...
    @property
    def last_error(self) -> str | None: ...


def make_scanner(sc: ScannerSettings, on_frame: Callable[[bytes, float], None],
                 max_barcode_length: int = 128) -> Scanner:
    """The scanner reader a ``[[scanner]]`` table describes."""
    if sc.type == "serial":
        from turnstiled.scanners.decode import frame_cap
        from turnstiled.scanners.serial import SerialScanner
        return SerialScanner(sc.name, sc.url, on_frame, baudrate=sc.baudrate,
                             bytesize=sc.bytesize, parity=sc.parity, stopbits=sc.stopbits,
                             terminator=sc.terminator, idle_gap=sc.idle_gap_s,
                             max_frame=frame_cap(max_barcode_length))
    from turnstiled.scanners.hid import HidScanner
    return HidScanner(sc.name, sc.device, on_frame, layout=sc.layout, grab=sc.grab)


class Daemon:
    """One running gate."""

    def __init__(self, cfg: Config, pin_factory: Factory | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None) -> None:
        self.cfg = cfg
        self._started_mono = time.monotonic()  # uptime survives steps of the wall clock
        self.heartbeats = sdnotify.Heartbeats()
        self.queue = Intake(cfg.gate.max_frame_age_s)
        self._on_outcome = on_outcome
        self.stopping = threading.Event()
        self.cache = Cache(cfg.paths.cache_db)
        self.journal = Journal(cfg.paths.journal_db)
        last = self.journal.last_event("emergency")
        emergency = last is not None and last["detail"].startswith("on")
        if emergency:
            logger.warning("emergency hold still on (%s): arm held free", last["detail"])
        self.pin_factory = pin_factory
        self.clock_alarm: str | None = None  # a recent step of the wall clock
        self.gate = self.new_gate(cfg.hardware, emergency=emergency)
        self.backends = make_backends(cfg.sources)
        self.online = OnlineChecker(self.backends)
        # Sync and drain run in a child process (see cloud.py); the backends
        # here serve the online check and tell which scans get uploaded.
        self.cloud = CloudProcess(cfg) if self.backends else None
        self.pipeline = ScanPipeline(cfg, self.cache, self.journal, self.gate,
                                     on_outcome=self._outcome, online=self.online,
                                     uploaders={b.name: b for b in self.backends})
        self.last_frame: dict[str, float] = {}  # scanner -> monotonic read time (``test``)
        self.scanners: list[Scanner] = [self.new_scanner(sc) for sc in cfg.scanner]
        self.last_scan_at: float | None = None
        self.mesh = None
        if cfg.mesh is not None:
            from turnstiled.mesh import MeshClient  # paho only where a mesh is configured
            self.mesh = MeshClient(cfg, self.figures, journal=self.journal)
            self.pipeline.mesh_link = self.mesh
        self.metrics = None
        if cfg.metrics.listen or cfg.metrics.textfile_dir:
            from turnstiled.metrics import Metrics  # prometheus_client only where asked
            # Callables, not objects: a reload may replace the config and the cloud.
            self.metrics = Metrics(lambda: self.cfg, self.status, self._cloud_report)
        self.control = ControlServer(cfg.paths.control_socket, commands(self))
        self._worker = threading.Thread(target=self._work, name="decide", daemon=True)

    def new_gate(self, hw: HardwareSettings, emergency: bool = False) -> Gate:
        return Gate(hw, self.pin_factory, on_fire_alarm=self._fire_alarm, emergency=emergency)

    def new_scanner(self, sc: ScannerSettings) -> Scanner:
        return make_scanner(sc, self._frame_sink(sc), self.cfg.gate.max_barcode_length)

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        # Background work (sync, drain) is Python too: let a waiting scan take
        # the interpreter within half a millisecond, not the default 5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.journal.log_event("start", f"gate {self.cfg.gate.id}")
        self.journal.start_checkpoints()  # after the relay, never inside a scan's commit
        settled = self.journal.settle_unfinished()
        if settled:
            logger.warning("%d granted scan(s) had no gate outcome (the last run ended "
                           "between journal and relay): settled as unknown, usage kept",
                           settled)
            self.journal.log_event("settled", f"{settled} grant(s) with unknown outcome")
        # The worker beats at least every second; waiting for the arm to turn
        # (passage_timeout_s) is progress too, not a hang.
        self.heartbeats.register("decide", 5.0 + self.cfg.hardware.passage_timeout_s)
        self._worker.start()
        if self.mesh is not None:
            self.mesh.start()
        if self.cloud is not None:
            self.cloud.start()
        for s in self.scanners:
            s.start()
        self.control.start()
        if self.metrics is not None:
            self.metrics.start()
        for line in preflight.warnings(self.cfg):
            logger.warning("%s", line)
        logger.info("gate %s ready with %d scanner(s)", self.cfg.gate.id, len(self.scanners))

    def wait_scanners(self, timeout: float = 3.0) -> bool:
        """Wait until every scanner has its device open (demo, tests, bench)."""
        deadline = time.monotonic() + timeout
        while not all(s.connected for s in self.scanners):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Lock the gate and stop every thread; bounded (well under 2 s)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.gate.idle()
        stoppers = [threading.Thread(target=s.stop, kwargs={"timeout": 1.0}, daemon=True)
                    for s in self.scanners]
        if self.metrics is not None:
            stoppers.append(threading.Thread(target=self.metrics.stop, daemon=True))
        for t in stoppers:
            t.start()
        self.control.stop()
        if self.cloud is not None:
            self.cloud.stop(1.0)
        self.queue.put_event(_STOP)
        for t in stoppers:
            t.join(1.2)
        self._worker.join(1.0)
        if self._worker.is_alive():
            logger.error("decision worker did not stop in time")
        if self.mesh is not None:
            self.mesh.stop(1.0)
        self.gate.close()
        self.online.close()
        for b in self.backends:
            b.close()
        self.journal.log_event("stop", "")
        self.journal.close()
        self.cache.close()

    # -- the scan path ---------------------------------------------------
    def _frame_sink(self, sc: ScannerSettings) -> Callable[[bytes, float], None]:
        def sink(raw: bytes, t_read: float) -> None:
            self.last_frame[sc.name] = t_read
            self.queue.put_frame(Frame(raw, sc.name, sc.direction, t_read))
        return sink

    def submit(self, raw: bytes, scanner: str = "manual", direction: str = "in") -> None:
        """Queue a frame as if *scanner* had read it (demo keyboard, tests)."""
        self.queue.put_frame(Frame(raw, scanner, direction, time.monotonic()))

    def _work(self) -> None:
        """The decision loop: it never dies on an error, and leaves the arm safe."""
        while True:
            try:
                if self._work_next():
                    return
            except Exception:
                # Whatever failed (journal, gate, a thread that could not start),
                # the arm goes back to idle and the loop goes on.
                logger.exception("decision worker: item could not be processed; gate idle")
                self.gate.fail_safe()

    def _work_next(self) -> bool:
        """Take and process one item; True when told to stop."""
        item = self.queue.get(timeout=IDLE_FLUSH_S)
        try:
            if item is None or item is _STOP:
                self._flush_outcomes()
                return item is _STOP
            if self.stopping.is_set() and not isinstance(item, _Event):
                return False  # frames still queued at a stop are not decided
            self._work_one(item)
            return False
        finally:
            # After the item, not before it: a scan's relay does not wait for
            # the mark (the allowance covers one item, passage wait included).
            self.heartbeats.beat("decide")

    def _flush_outcomes(self) -> None:
        try:
            self.journal.flush_outcomes()
        except Exception as exc:  # the next scan's transaction tries again
            logger.warning("cannot journal the gate's outcomes yet: %s", exc)
        self.journal.checkpoint_if_due()

    def uptime_s(self) -> float:
        return time.monotonic() - self._started_mono

    def journal_event(self, kind: str, detail: str) -> None:
        """Have the decision worker journal a gate event (the one writer)."""
        self.queue.put_event(_Event(kind, detail, time.time()))

    @property
    def clock_synced(self) -> bool | None:
        """Whether the wall clock is synchronised (None: not known); service.Rounds
        asks every minute, and the pipeline's rules read it."""
        return self.pipeline.clock_synced

    @clock_synced.setter
    def clock_synced(self, state: bool | None) -> None:
        self.pipeline.clock_synced = state

    def state_word(self) -> str:
        """The first word of the STATUS= line: ALARM ..., online, offline or local."""
        alarms = self.alarms()
        if alarms:
            return "ALARM " + ", ".join(sorted(alarms))
        if self.cloud is None:
            return "local"
        report = self.cloud.status()
        failing = any(s.get("failures") for s in report.get("sources", {}).values()) or any(
            d.get("last_error") for d in report.get("drains", {}).values())
        return "offline" if failing else "online"

    def reload(self, new: Config, timeout: float = 30.0) -> set[str]:
        """Put *new* in force between two decisions (SIGHUP); raises ReloadRefused."""
        job = reload_mod.Job(new)
        self.queue.put_event(job)
        return job.wait(timeout)

    def _work_one(self, item: Any) -> None:
        if isinstance(item, reload_mod.Job):
            with self.queue.paused():  # frames read during a reload are not stale for it
                item.run(self)
            return
        if isinstance(item, _Event):
            self.journal.log_event(item.kind, item.detail, at=item.at)
            return
        self.pipeline.handle(item.raw, item.scanner, item.direction, item.t_read)

    def _outcome(self, outcome: Outcome) -> None:
        # Called after the relay moved: only now may the mesh hear of it.
        self.last_scan_at = time.time()
        if self.metrics is not None:
            try:
                self.metrics.observe(outcome)
            except Exception:  # metrics may die; the decision thread must not
                logger.exception("metrics: cannot count a scan")
        if self.mesh is not None:
            self.mesh.notify()
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _fire_alarm(self, active: bool, at: float) -> None:
        # gpiozero's callback thread: the relay has already moved (gate.py);
        # the decision worker journals the event, the one writer of scans.
        self.queue.put_event(_Event("fire_alarm", "active" if active else "cleared", at))

    # -- what the gate reports -------------------------------------------
    def status(self) -> dict[str, Any]:
        """The live figures of this daemon (``turnstilectl status``, metrics, heartbeat).

        The stored ones (sources, backlog, last scan) are
        :func:`turnstiled.figures.stored`.
        """
        return {
            "gate_id": self.cfg.gate.id,
            "version": version(),
            "uptime_s": round(self.uptime_s(), 1),
            "gate": self.gate.state(),
            "scanners": [{"name": s.name, "connected": s.connected,
                          "last_error": s.last_error} for s in self.scanners],
            "stale_loops": self.stale_loops(),
            "alarms": self.alarms(),
            "online": self.online.status(),
            "queue": self.queue.qsize(),
            "frames_dropped": {**self.queue.dropped,
                               "unreadable": self.pipeline.unreadable_dropped},
            "mesh": self.mesh.state() if self.mesh is not None else None,
            "metrics": self.metrics.state() if self.metrics is not None else None,
            "clock": {"synchronised": self.clock_synced,
                      "unsynced_policy": self.cfg.gate.unsynced_clock},
        }

    def figures(self, cache: Cache | None, journal: Journal | None) -> dict[str, Any]:
        """This gate's figures (heartbeat, status, metrics), read through the caller's
        own database connections."""
        # The wall time that lies the (monotonic) uptime ago, after any clock step.
        started = time.time() - self.uptime_s()
        return gate_figures(self.cfg.gate.id, cache, journal, started=started,
                            scanners=self.scanners, last_scan_at=self.last_scan_at)

    def _cloud_report(self) -> dict[str, Any]:
        """The cloud process's last report (empty without sources)."""
        return self.cloud.status() if self.cloud is not None else {}

    def stale_loops(self) -> list[str]:
        """Loops that have not progressed recently (the watchdog waits for them)."""
        stale = self.heartbeats.stale()
        if self.cloud is not None:
            stale += self.cloud.stale(CLOUD_ALLOWANCE_S)
        return stale

    def alarms(self) -> dict[str, str]:
        """Everything a technician must look at now."""
        out = self.cloud.alarms() if self.cloud is not None else {}
        out.update(self.online.alarms())
        if self.pipeline.journal_alarm:
            out["journal"] = self.pipeline.journal_alarm
        if self.pipeline.decision_alarm:
            out["decision"] = self.pipeline.decision_alarm
        if self.pipeline.gate_alarm:
            out["gate"] = self.pipeline.gate_alarm
        if self.gate.fire_alarm:
            out["fire_alarm"] = "active: arm held free"
        if self.gate.emergency:
            out["emergency"] = "on: arm held free (turnstilectl emergency off)"
        if self.clock_alarm:
            out["clock"] = self.clock_alarm
        cache = datafiles.cache_alarm(self.cfg.paths.cache_db)
        if cache:
            out["cache"] = cache
        mesh_alarm = self.mesh.alarm() if self.mesh is not None else None
        if mesh_alarm:
            out["mesh"] = mesh_alarm
        return out


if __name__ == "__main__":  # python -m turnstiled.daemon: the entry of earlier releases
    from turnstiled.service import main
    sys.exit(main())
