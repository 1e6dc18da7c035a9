"""The sections of the configuration file, each a frozen dataclass with its own checks.

A section's keys, types and defaults are its fields; a value no field
type can catch (a pin off the board, a minimum above its maximum) is
refused in ``__post_init__`` with :class:`~turnstiled.errors.SettingError`,
which :mod:`turnstiled.config` reports with the key and the file.
``config/turnstiled.toml`` documents every key.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from turnstiled.errors import SettingError
from turnstiled.secret import Secret

Direction = Literal["in", "out"]

# BCM numbers of the GPIOs on a Raspberry Pi's 40-pin header (every model
# since the B+); gpiozero would accept others only to fail when claiming them.
BOARD_PINS = range(28)


@dataclass(frozen=True)
class GateSettings:
    """Who this gate is and which tickets it admits (used by the pure rules)."""

    id: str = "gate-1"
    events: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    early_entry_s: float = 0.0
    late_entry_s: float = 0.0
    debounce_s: float = 2.5
    max_barcode_length: int = 128
    max_frame_age_s: float = 2.0
    occupancy_zone: str = ""
    max_occupancy: int = 0
    unsynced_clock: Literal["trust", "deny", "admit"] = "trust"

    def __post_init__(self) -> None:
        if self.max_frame_age_s <= 0:
            raise SettingError("max_frame_age_s", "must be more than 0 seconds")
        if self.max_barcode_length < 1:
            raise SettingError("max_barcode_length", "must be at least 1")

    @property
    def zone(self) -> str:
        """The zone whose occupancy this gate counts (``occupancy_zone``, else its first zone)."""
        return self.occupancy_zone or (self.zones[0] if self.zones else "venue")


@dataclass(frozen=True)
class HardwareSettings:
    """GPIO pins (BCM numbers) and how the relay, lights and sensors are wired."""

    relay_pin: int = 17
    relay_active_high: bool = True
    relay_idle: Literal["fail-secure", "fail-safe"] = "fail-secure"
    relay_pulse_s: float = 1.0
    green_led_pin: int | None = 22
    red_led_pin: int | None = 27
    leds_active_high: bool = True
    buzzer_pin: int | None = 23
    buzzer_active_high: bool = True
    passage_pin: int | None = None
    passage_active_high: bool = False
    passage_pull: bool = True
    passage_timeout_s: float = 8.0
    fire_alarm_pin: int | None = None
    fire_alarm_active_high: bool = False
    fire_alarm_pull: bool = True

    def __post_init__(self) -> None:
        pins = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.endswith("_pin") and getattr(self, f.name) is not None}
        for key, pin in pins.items():
            if pin not in BOARD_PINS:
                raise SettingError(key, f"GPIO {pin} is not on the board "
                                   f"(BCM {BOARD_PINS[0]}-{BOARD_PINS[-1]})")
        for pin, n in Counter(pins.values()).items():
            if n > 1:
                keys = [k for k, p in pins.items() if p == pin]
                raise SettingError(keys[-1], f"GPIO {pin} is already used by "
                                   f"{', '.join(keys[:-1])}")


@dataclass(frozen=True)
class ScannerSettings:
    """One barcode scanner: serial (pyserial) or USB HID keyboard wedge (evdev)."""

    name: str
    type: Literal["serial", "hid"]
    direction: Direction = "in"
    # serial
    url: str = ""
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    terminator: Literal["ANY", "CR", "LF", "CRLF", "TAB", "NONE"] = "ANY"
    idle_gap_s: float = 0.05
    # hid
    device: str = ""
    layout: Literal["us", "uk", "de", "fr"] = "us"
    grab: bool = True

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise SettingError("baudrate", "must be a positive number of bits per second")
        if self.idle_gap_s <= 0:
            raise SettingError("idle_gap_s", "must be more than 0 seconds")


@dataclass(frozen=True)
class PathSettings:
    """Where the databases and the control socket live."""

    data_dir: str = "/var/lib/turnstiled"
    control_socket: str = "/run/turnstiled/control.sock"

    @property
    def cache_db(self) -> Path:
        return Path(self.data_dir) / "cache.db"

    @property
    def journal_db(self) -> Path:
        return Path(self.data_dir) / "journal.db"


@dataclass(frozen=True)
class JournalSettings:
    """How long settled scans are kept, and what the gate does if the disk is full."""

    retention_days: float = 30.0
    on_write_failure: Literal["deny", "decide"] = "deny"
    upload_batch_delay_s: float = 1.0
    upload_retry_min_s: float = 2.0
    upload_retry_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.upload_retry_min_s > self.upload_retry_max_s:
            raise SettingError("upload_retry_min_s", f"{self.upload_retry_min_s:g} is above "
                               f"upload_retry_max_s ({self.upload_retry_max_s:g})")


@dataclass(frozen=True)
class LogSettings:
    """Logging level and target."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    target: Literal["auto", "journald", "stderr"] = "auto"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); ValueError if it is neither.

    The host is required: a technician decides what the LAN sees
    (``0.0.0.0`` must be written out). Port 0 picks a free port.
    """
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: [::1]:9847")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT with an explicit address, e.g. 127.0.0.1:9847")
    return host, int(port)


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics: an HTTP endpoint and/or node_exporter's textfile collector."""

    listen: str = ""
    textfile_dir: str = ""
    textfile_interval_s: float = 15.0

    def __post_init__(self) -> None:
        if self.listen:
            try:
                parse_listen(self.listen)
            except ValueError as exc:
                raise SettingError("listen", f"{exc}, got {self.listen!r}") from None
        if self.textfile_interval_s <= 0:
            raise SettingError("textfile_interval_s", "must be more than 0 seconds")


# A venue or gate id: part of the mesh's MQTT topics.
MESH_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class MeshSettings:
    """The venue mesh: an MQTT broker shared by every gate of one venue."""

    broker: str
    venue: str
    username: str = ""
    password: Secret | None = None
    ca_file: str = ""
    on_partition: Literal["local", "deny-single-entry"] = "local"
    partition_grace_s: float = 30.0
    barcode_key: Secret | None = None
    heartbeat_interval_s: float = 10.0
    keepalive_s: int = 15
    session_expiry_s: int = 7 * 86400
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_message_bytes: int = 2048

    def __post_init__(self) -> None:
        if not re.match(r"^mqtts?://[^/?#\s]+/?$", self.broker):
            raise SettingError("broker", "expected mqtt://host:port or mqtts://host:port")
        try:
            self.host_port  # noqa: B018 (validates the port)
        except ValueError:
            raise SettingError("broker", "the port must be a number") from None
        if not MESH_ID.match(self.venue):
            raise SettingError("venue", "1-64 letters, digits, '.', '_' or '-'")
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise SettingError("ca_file", f"no such file: {self.ca_file}")
        if self.reconnect_max_s < self.reconnect_min_s or self.reconnect_min_s < 1:
            raise SettingError("reconnect_max_s", "must be >= reconnect_min_s >= 1")

    @property
    def tls(self) -> bool:
        return self.broker.startswith("mqtts://")

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.broker.split("://", 1)[1].rstrip("/")
        host, _, port = rest.rpartition(":")
        if not host:
            return rest, 8883 if self.tls else 1883
        return host.strip("[]"), int(port)
