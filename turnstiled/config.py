"""Typed settings read from TOML, with defaults and one-line errors.

Every key lives in a frozen dataclass below; ``config/turnstiled.toml``
documents each one. A wrong or unknown key raises :class:`ConfigError`
naming the key and the file, which the daemon prints as its only line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from turnstiled.errors import ConfigError, SettingError
from turnstiled.secret import Secret

DEFAULT_PATH = "/etc/turnstiled/turnstiled.toml"
ENV_VAR = "TURNSTILED_CONFIG"

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
_VENUE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
        if not _VENUE.match(self.venue):
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


@dataclass(frozen=True)
class Config:
    """The whole configuration of one gate."""

    path: str = "<defaults>"
    gate: GateSettings = field(default_factory=GateSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    log: LogSettings = field(default_factory=LogSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    scanner: tuple[ScannerSettings, ...] = ()
    sources: dict[str, Any] = field(default_factory=dict)
    mesh: MeshSettings | None = None
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


def source_schemas() -> dict[str, type]:
    """Schemas of ``[sources.NAME]`` tables, one per backend."""
    from turnstiled.backends import REGISTRY
    return {name: schema for name, (schema, _) in REGISTRY.items()}


def config_path(explicit: str | None = None) -> str:
    """The file to read: ``--config``, then ``$TURNSTILED_CONFIG``, then the default."""
    return explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH


def load(path: str | None = None) -> Config:
    """Read and validate the TOML file at *path* (see :func:`config_path`)."""
    path = config_path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None
    return from_dict(_parse(data, path), path)


def _parse(data: bytes, path: str) -> dict[str, Any]:
    if data.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(path, None, "starts with a byte-order mark (BOM): "
                          "save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, None, f"not UTF-8 (byte {data[exc.start]:#04x} on line {line}): "
                          "save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None


def from_dict(raw: dict[str, Any], path: str = "<dict>") -> Config:
    """Validate an already-parsed TOML document."""
    known = {f.name for f in dataclasses.fields(Config)} - {"path"}
    for key in raw:
        if key not in known:
            raise ConfigError(path, key, f"unknown section (known: {', '.join(sorted(known))})")
    scanners_raw = raw.get("scanner", [])
    if not isinstance(scanners_raw, list):
        raise ConfigError(path, "scanner", "must be an array of tables ([[scanner]])")
    scanners = tuple(
        _build(ScannerSettings, item, f"scanner[{i}]", path) for i, item in enumerate(scanners_raw)
    )
    names = [s.name for s in scanners]
    for i, sc in enumerate(scanners):
        if names.count(sc.name) > 1:
            raise ConfigError(path, f"scanner[{i}].name", f"duplicate scanner name {sc.name!r}")
        if sc.type == "serial" and not sc.url:
            raise ConfigError(path, f"scanner[{i}].url", "required for a serial scanner")
        if sc.type == "hid" and not sc.device:
            raise ConfigError(path, f"scanner[{i}].device", "required for a hid scanner")
    sources_raw = raw.get("sources", {})
    if not isinstance(sources_raw, dict):
        raise ConfigError(path, "sources", "must be a table")
    sources: dict[str, Any] = {}
    schemas = source_schemas() if sources_raw else {}
    for name, table in sources_raw.items():
        schema = schemas.get(name)
        if schema is None:
            known_src = ", ".join(sorted(schemas)) or "none"
            raise ConfigError(path, f"sources.{name}", f"unknown source (known: {known_src})")
        sources[name] = _build(schema, table, f"sources.{name}", path)
    # Rules across sections read the built sections: a section that is not a
    # table has been refused with one line by then, never a traceback.
    gate = _build(GateSettings, raw.get("gate", {}), "gate", path)
    if gate.max_occupancy and "mesh" not in raw:
        raise ConfigError(path, "gate.max_occupancy", "needs [mesh]: occupancy is counted "
                          "from the venue's shared events")
    mesh = None
    if "mesh" in raw:
        mesh = _build(MeshSettings, raw["mesh"], "mesh", path)
        if not _VENUE.match(gate.id):
            raise ConfigError(path, "gate.id", "with [mesh]: 1-64 letters, digits, '.', '_' "
                              "or '-' (it is part of the gate's MQTT topics)")
    return Config(
        path=path,
        gate=gate,
        hardware=_build(HardwareSettings, raw.get("hardware", {}), "hardware", path),
        paths=_build(PathSettings, raw.get("paths", {}), "paths", path),
        log=_build(LogSettings, raw.get("log", {}), "log", path),
        journal=_build(JournalSettings, raw.get("journal", {}), "journal", path),
        scanner=scanners,
        sources=sources,
        mesh=mesh,
        metrics=_build(MetricsSettings, raw.get("metrics", {}), "metrics", path),
    )


def _build(cls: type, table: Any, prefix: str, path: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(path, prefix, "must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(path, f"{prefix}.{key}", "unknown key")
        values[key] = _coerce(hints[key], value, f"{prefix}.{key}", path)
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in values:
            raise ConfigError(path, f"{prefix}.{name}", "required key is missing")
    for key, value in values.items():
        if isinstance(value, float | int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(path, f"{prefix}.{key}", "must not be negative")
        if key.endswith("base_url") and isinstance(value, str):
            url = urlsplit(value)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ConfigError(path, f"{prefix}.{key}",
                                  f"expected an http:// or https:// URL, got {value!r}")
    try:
        return cls(**values)
    except SettingError as exc:
        raise ConfigError(path, f"{prefix}.{exc.key}", exc.message) from None


def _describe(value: Any) -> str:
    if isinstance(value, Secret):
        return "a secret"
    return f"{type(value).__name__} {value!r}"


def _coerce(hint: Any, value: Any, key: str, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Secret:
        if not isinstance(value, str) or not value:
            raise ConfigError(path, key, "expected a non-empty string")
        return Secret(value)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, path)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(path, key, f"expected one of {choices}, got {_describe(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(path, key, f"expected a list, got {_describe(value)}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]", path) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, key, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, key, f"expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, key, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, key, f"expected a string, got {_describe(value)}")
        return value
    raise ConfigError(path, key, f"unsupported setting type {hint!r}")  # pragma: no cover
