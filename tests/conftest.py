"""Shared fixtures: a gate configuration in tmp_path and gpiozero mock pins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from turnstiled import config as config_mod
from turnstiled.config import Config


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
def pins() -> MockFactory:
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)
