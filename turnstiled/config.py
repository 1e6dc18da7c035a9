"""Typed settings read from TOML, with defaults and one-line errors.

Every key lives in a frozen dataclass of :mod:`turnstiled.settings`, one
per section; ``config/turnstiled.toml`` documents each one. This module
reads the file, turns each table into its section (rules across sections
too) and builds :class:`Config`. A wrong or unknown key raises
:class:`ConfigError` naming the key and the file, which the daemon prints
as its only line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from turnstiled.errors import ConfigError, SettingError
from turnstiled.secret import Secret
from turnstiled.settings import (
    MESH_ID,
    GateSettings,
    HardwareSettings,
    JournalSettings,
    LogSettings,
    MeshSettings,
    MetricsSettings,
    PathSettings,
    ScannerSettings,
)

DEFAULT_PATH = "/etc/turnstiled/turnstiled.toml"
ENV_VAR = "TURNSTILED_CONFIG"


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
        if not MESH_ID.match(gate.id):
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
