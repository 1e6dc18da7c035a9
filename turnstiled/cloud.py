"""Cloud work in a process of its own: the syncer and the drainer.

Parsing pages of tickets and batches of scans is CPU work that, in the
scan process, would compete with the scan path for the interpreter; in a
child process it competes only for a core, at a lower priority. The child
talks to the daemon over a socket pair (:class:`Channel`): every half
second it reports each source's sync state, each drain's counts and
alarms, and whether its loops progressed; the daemon sends it ``sync``
requests and ``stop``. The child dies with the daemon (PR_SET_PDEATHSIG;
and it stops by itself when the socket closes), so a killed daemon never
leaves a drainer behind to race its successor.

The child is a fresh interpreter, ``python -m turnstiled.cloud``, started
with fork+exec like multiprocessing's "spawn" (so it holds none of the
daemon's threads, locks or GPIO handles), but without multiprocessing: it
imports only the sync and drain modules (a spawned child re-imports the
daemon's own main module, gpiozero and all), and no resource-tracker
process is started beside it (12.8 MB RSS for nothing: the child shares
no semaphores or shared memory). ``scripts/bench memory`` measures it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import turnstiled
from turnstiled.config import Config

logger = logging.getLogger(__name__)

REPORT_S = 0.5
RESTART_S = 1.0
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
_LEN = struct.Struct("!I")


class Channel:
    """Pickled messages over a stream socket, each after its length (4 bytes).

    Both ends are this package, on one machine, over a socket pair only
    they hold: pickle is what multiprocessing used here before.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)

    def poll(self, timeout: float) -> bool:
        """Whether a message (or the end) is there to read within *timeout* seconds."""
        return bool(select.select([self.sock], [], [], timeout)[0])

    def recv(self) -> Any:
        """The next message; EOFError once the other end has closed."""
        (n,) = _LEN.unpack(self._exactly(_LEN.size))
        return pickle.loads(self._exactly(n))  # noqa: S301 (our own process, see above)

    def _exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the other end closed the channel")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _die_with_parent() -> None:
    """Be killed when the daemon dies; show as ``turnstiled-sync`` in ps and top."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(PR_SET_NAME, b"turnstiled-sync")


def _child(cfg: Config, conn: Channel) -> None:
    # Imported here: the daemon, which imports this module for CloudProcess,
    # never needs the syncer or the drainer in its own process.
    from turnstiled import logs
    from turnstiled.backends import make_backends
    from turnstiled.drain import Drainer
    from turnstiled.sync import Syncer

    logs.setup(cfg.log)
    backends = make_backends(cfg.sources)
    for b in backends:
        # httpx and the CA store now, on this thread, before the sync and
        # drain threads start (made at a first request on a page thread
        # one cost the process 6 MB more at its peak, one run of
        # scripts/bench memory: 62.6 against 56.4 MB).
        b.connect()
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


def main(argv: list[str]) -> None:
    """The child: ``python -m turnstiled.cloud FD PARENT_PID``; its config comes over FD."""
    _die_with_parent()
    fd, parent = int(argv[0]), int(argv[1])
    if os.getppid() != parent:  # the daemon died before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    conn = Channel(socket.socket(fileno=fd))
    try:
        cfg = conn.recv()
    except (EOFError, OSError):
        return
    _child(cfg, conn)


class CloudProcess:
    """The daemon's handle on the child that syncs and drains."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.report: dict[str, Any] = {"sources": {}, "drains": {}, "progress": {}}
        self.reported_at = time.monotonic()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Channel | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn()
        self._reader = threading.Thread(target=self._read, name="cloud-reports", daemon=True)
        self._reader.start()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        # The child imports this very package, wherever the daemon found it.
        root = str(Path(turnstiled.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(  # noqa: S603 (our interpreter, our module)
                [sys.executable, "-m", "turnstiled.cloud", str(theirs.fileno()),
                 str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._conn = Channel(ours)
        self.reported_at = time.monotonic()
        with contextlib.suppress(OSError):  # a child that died at once is restarted by _read
            self._conn.send(self.cfg)

    def _read(self) -> None:
        # This thread also starts every later child: PR_SET_PDEATHSIG fires
        # when the *thread* that started the child ends, so the one that
        # restarts it must live on (the first child is started by the
        # daemon's main thread).
        while True:
            conn = self._conn
            assert conn is not None
            try:
                report = conn.recv()
            except (EOFError, OSError):
                if self._stopping:
                    return
                logger.error("cloud worker process ended; restarting it")
                self._reap()
                while True:
                    time.sleep(RESTART_S)
                    if self._stopping:
                        return
                    try:
                        self._spawn()
                        break
                    except OSError as exc:  # e.g. out of processes or memory: try again
                        logger.error("cannot restart the cloud worker process: %s", exc)
                continue
            with self._lock:
                self.report = report
                self.reported_at = time.monotonic()

    def _reap(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1.0)

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
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(1.0)
        if self._conn is not None:
            self._conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
