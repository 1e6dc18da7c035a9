"""SIGHUP: a new configuration, applied whole between two decisions, or refused whole.

The daemon's main thread reads and validates the file; the decision
worker applies it between two scans (so every scan is decided wholly
under the old or wholly under the new settings, and none is dropped:
frames read meanwhile wait in the queue). Scanners whose table did not
change keep reading; the gate's pins are re-claimed only if
``[hardware]`` changed; the cloud process restarts only if ``[sources]``
or ``[journal]`` changed. What cannot change while running (``[paths]``
and any other section) refuses the reload, as does a ``[hardware]``
change while the arm is held free (releasing the pins would lock it).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING

from turnstiled import config as config_mod
from turnstiled import logs, sdnotify
from turnstiled.backends import make_backends
from turnstiled.cloud import CloudProcess
from turnstiled.errors import ConfigError, TurnstileError
from turnstiled.online import OnlineChecker

if TYPE_CHECKING:
    from turnstiled.config import Config
    from turnstiled.daemon import Daemon

logger = logging.getLogger(__name__)

RELOADABLE = {"path", "gate", "hardware", "log", "journal", "scanner", "sources"}


class ReloadRefused(TurnstileError, ValueError):
    """A new configuration that cannot be applied to the running daemon."""


def from_file(daemon: Daemon) -> bool:
    """Read the daemon's configuration file again and put it in force (SIGHUP).

    A file that does not load, or cannot be applied, is refused with one
    log line and the running configuration stays. systemd sees RELOADING=1
    then READY=1 either way.
    """
    sdnotify.notify("RELOADING=1\nSTATUS=reloading the configuration")
    try:
        new = config_mod.load(daemon.cfg.path)
        diff = daemon.reload(new)
    except (ConfigError, ReloadRefused) as exc:
        logger.error("reload refused, keeping the running configuration: %s", exc)
        return False
    finally:
        sdnotify.notify("READY=1")
    logger.info("configuration reloaded: %s", ", ".join(sorted(diff)) or "no change")
    return True


class Job:
    """A reload handed to the decision worker; the main thread waits for its end."""

    def __init__(self, new: Config) -> None:
        self.new = new
        self._done = threading.Event()
        self._diff: set[str] = set()
        self._error: Exception | None = None
        self._cancelled = False

    def run(self, daemon: Daemon) -> None:
        if self._cancelled:  # refused already: too late to apply
            return
        try:
            self._diff = apply(daemon, self.new)
        except ReloadRefused as exc:
            self._error = exc
        except Exception as exc:  # the worker lives on; the reload is refused
            logger.debug("reload failed", exc_info=True)
            self._error = ReloadRefused(f"could not be applied: {exc}")
        finally:
            self._done.set()

    def wait(self, timeout: float) -> set[str]:
        if not self._done.wait(timeout):
            self._cancelled = True
            raise ReloadRefused(f"the decision worker did not take it within {timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self._diff


def changed(old: Config, new: Config) -> set[str]:
    """The sections of the configuration that differ."""
    return {f.name for f in dataclasses.fields(old)
            if f.name != "path" and getattr(old, f.name) != getattr(new, f.name)}


def refusal(old: Config, new: Config, holds: list[str]) -> str | None:
    """Why *new* cannot replace *old* while running, or None."""
    fixed = sorted(changed(old, new) - RELOADABLE)
    if fixed:
        return f"[{'], ['.join(fixed)}] cannot change while running: restart the service"
    if "hardware" in changed(old, new) and holds:
        return (f"[hardware] cannot change while the arm is held free ({', '.join(holds)}): "
                "reload again once it is released")
    return None


def apply(daemon: Daemon, new: Config) -> set[str]:
    """Put *new* in force (the decision worker calls this between two scans)."""
    old = daemon.cfg
    diff = changed(old, new)
    why = refusal(old, new, daemon.gate.holds())
    if why:
        raise ReloadRefused(why)
    if "hardware" in diff:
        _swap_gate(daemon, new)
    if diff & {"sources", "journal"}:
        _swap_clouds(daemon, new)
    daemon.pipeline.configure(new)
    daemon.queue.max_age_s = new.gate.max_frame_age_s
    daemon.cfg = new
    if "scanner" in diff:
        _swap_scanners(daemon, old, new)
    if "log" in diff:
        logs.setup(new.log)
    return diff


def _swap_gate(daemon: Daemon, new: Config) -> None:
    # No hold is on (see refusal): closing the old pins leaves the arm locked.
    old_hw = daemon.cfg.hardware
    daemon.gate.close()
    try:
        gate = daemon.new_gate(new.hardware)
    except Exception as exc:
        daemon.gate = daemon.new_gate(old_hw)
        daemon.pipeline.gate = daemon.gate
        raise ReloadRefused(f"[hardware] cannot be claimed ({exc}); the old pins stay") from None
    daemon.gate = gate
    daemon.pipeline.gate = gate


def _swap_clouds(daemon: Daemon, new: Config) -> None:
    backends = make_backends(new.sources)
    if daemon.cloud is not None:
        daemon.cloud.stop(1.0)
    old_online, old_backends = daemon.online, daemon.backends
    daemon.backends = backends
    daemon.online = OnlineChecker(backends)
    daemon.pipeline.online = daemon.online
    daemon.pipeline.uploaders = {b.name: b for b in backends}
    daemon.cloud = CloudProcess(new) if backends else None
    if daemon.cloud is not None:
        daemon.cloud.start()
    old_online.close()
    for b in old_backends:
        b.close()


def _swap_scanners(daemon: Daemon, old: Config, new: Config) -> None:
    keep = {sc.name for sc in new.scanner if sc in old.scanner}
    running = {s.name: s for s in daemon.scanners}
    for name, scanner in running.items():
        if name not in keep:
            scanner.stop(1.0)
    scanners = []
    for sc in new.scanner:
        if sc.name in keep:
            scanners.append(running[sc.name])
        else:
            scanner = daemon.new_scanner(sc)
            scanner.start()
            scanners.append(scanner)
    daemon.scanners = scanners
