"""Cloud work in a process of its own: the syncer and the drainer.

Parsing pages of tickets and batches of scans is CPU work that, in the
scan process, would compete with the scan path for the interpreter; in a
child process it competes only for a core, at a lower priority. The child
talks to the daemon over a pipe: every half second it reports each
source's sync state, each drain's counts and alarms, and whether its
loops progressed; the daemon sends it ``sync`` requests and ``stop``.
The child dies with the daemon (PR_SET_PDEATHSIG), so a killed daemon
never leaves a drainer behind to race its successor.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from turnstiled import logs
from turnstiled.backends import make_backends
from turnstiled.config import Config
from turnstiled.drain import Drainer
from turnstiled.sync import Syncer

logger = logging.getLogger(__name__)

REPORT_S = 0.5
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def _die_with_parent() -> None:
    """Be killed when the daemon dies; show as ``turnstiled-sync`` in ps and top."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(PR_SET_NAME, b"turnstiled-sync")


def _child(cfg: Config, conn: Connection, parent: int) -> None:
    _die_with_parent()
    if os.getppid() != parent:  # the daemon died before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    logs.setup(cfg.log)
    backends = make_backends(cfg.sources)
    progress = {"sync": time.monotonic(), "drain": time.monotonic()}
    syncer = Syncer(cfg.paths.cache_db, backends,
                    on_progress=lambda: progress.__setitem__("sync", time.monotonic()))
    j = cfg.journal
    drainer = Drainer(cfg.paths.journal_db, backends, batch_delay_s=j.upload_batch_delay_s,
                      retry=(j.upload_retry_min_s, j.upload_retry_max_s),
                      retention_s=j.retention_days * 86400,
                      on_progress=lambda: progress.__setitem__("drain", time.monotonic()))
    if syncer.sources:
        syncer.start()
    if drainer.states:
        drainer.start()
    try:
        while True:
            if conn.poll(REPORT_S):
                msg = conn.recv()
                if msg[0] == "stop":
                    break
                if msg[0] == "sync":
                    syncer.request(bool(msg[1]))
            conn.send({
                "progress": {k: time.monotonic() - v for k, v in progress.items()},
                "sources": {n: {"last_full": st.last_full, "alarm": st.alarm,
                                "failures": st.failures} for n, st in syncer.sources.items()},
                "drains": {n: {"sent": st.sent, "alarm": st.alarm, "last_error": st.last_error,
                               "failures": dict(st.failures_by_kind)}
                           for n, st in drainer.states.items()},
            })
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the daemon is gone
    finally:
        syncer.stop(1.0)
        drainer.stop(1.0)
        for b in backends:
            b.close()


class CloudProcess:
    """The daemon's handle on the child that syncs and drains."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.report: dict[str, Any] = {"sources": {}, "drains": {}, "progress": {}}
        self.reported_at = time.monotonic()
        self._lock = threading.Lock()
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds GPIO threads
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(self.cfg, theirs, os.getpid()),
                                 name="turnstiled-cloud", daemon=True)
        self._proc.start()
        theirs.close()
        self._conn = ours
        self.reported_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, name="cloud-reports", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                report = conn.recv()
            except (EOFError, OSError):
                if not self._stopping:
                    logger.error("cloud worker process ended; restarting it")
                    time.sleep(1.0)
                    if not self._stopping:
                        self.start()
                return
            with self._lock:
                self.report = report
                self.reported_at = time.monotonic()

    def request_sync(self, full: bool = False) -> list[str]:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("sync", full))
        return list(self.status().get("sources", {}))

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.report)

    def stale(self, allowance: float) -> list[str]:
        """Loops of the child that have not progressed within *allowance* seconds."""
        with self._lock:
            if time.monotonic() - self.reported_at > allowance:
                return ["cloud"]
            return [f"cloud:{k}" for k, age in self.report.get("progress", {}).items()
                    if age > allowance]

    def alarms(self) -> dict[str, str]:
        report = self.status()
        out = {f"sync:{n}": s["alarm"] for n, s in report.get("sources", {}).items()
               if s.get("alarm")}
        out.update({f"drain:{n}": d["alarm"] for n, d in report.get("drains", {}).items()
                    if d.get("alarm")})
        return out

    def stop(self, timeout: float = 1.5) -> None:
        self._stopping = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(1.0)
        if self._conn is not None:
            self._conn.close()
