"""Shared fixtures: a gate configuration in tmp_path, gpiozero mock pins, a running gate."""

from __future__ import annotations

import os
import queue
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from turnstiled import config as config_mod
from turnstiled.cache import Cache
from turnstiled.config import Config
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal
from turnstiled.pipeline import Outcome
from turnstiled.rules import Ticket


def wait_until(pred, timeout: float = 3.0) -> bool:
    """Poll *pred* until it is true or *timeout* passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return bool(pred())


def make_config(tmp_path: Path, **sections: Any) -> Config:
    raw: dict[str, Any] = {
        "paths": {"data_dir": str(tmp_path / "data"),
                  "control_socket": str(tmp_path / "control.sock")},
        "hardware": {"relay_pulse_s": 0.2},
        "gate": {"debounce_s": 2.5},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_mod.from_dict(raw, str(tmp_path / "turnstiled.toml"))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """An empty journal in tmp_path (``journal.db``), closed after the test."""
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def pins() -> MockFactory:
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def systemd_notify(tmp_path: Path):
    """systemd's notify socket for a daemon a test starts: ``(socket, environment)``.

    The environment points the daemon at the socket (``NOTIFY_SOCKET``), on
    mock pins; the socket waits up to 60 s for each message.
    """
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    yield sock, {**os.environ, "NOTIFY_SOCKET": path, "GPIOZERO_PIN_FACTORY": "mock"}
    sock.close()


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@dataclass
class RunningGate:
    """A running daemon with a pty scanner ("entry"), mock pins and its outcomes."""

    daemon: Daemon
    master: int
    outcomes: queue.Queue
    pins: Any

    def scan(self, *codes: bytes) -> None:
        os.write(self.master, b"".join(c + b"\r" for c in codes))

    def next(self) -> Outcome:
        return self.outcomes.get(timeout=5)

    @property
    def relay(self) -> Any:
        return self.pins.pin(self.daemon.cfg.hardware.relay_pin)

    def journal(self) -> Journal:
        return Journal(self.daemon.cfg.paths.journal_db, readonly=True)


@pytest.fixture
def start_gate(tmp_path, pins):
    """``start_gate(tickets, **config sections)`` -> a running :class:`RunningGate`."""
    running: list[tuple[Daemon, int, int]] = []

    def start(tickets: list[Ticket], **sections: Any) -> RunningGate:
        master, slave = os.openpty()
        cfg = make_config(tmp_path, scanner=[{"name": "entry", "type": "serial",
                                              "url": os.ttyname(slave)}], **sections)
        cache = Cache(cfg.paths.cache_db)
        cache.upsert(tickets)
        cache.close()
        outcomes: queue.Queue = queue.Queue()
        daemon = Daemon(cfg, pins, on_outcome=outcomes.put)
        daemon.start()
        running.append((daemon, master, slave))
        assert daemon.wait_scanners()
        return RunningGate(daemon, master, outcomes, pins)

    yield start
    for daemon, master, slave in running:
        daemon.stop()
        os.close(master)
        os.close(slave)
