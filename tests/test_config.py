"""Configuration: the shipped file is complete, and bad keys stop start-up with one line."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from turnstiled import config as config_mod
from turnstiled import settings
from turnstiled.backends import REGISTRY
from turnstiled.errors import ConfigError
from turnstiled.secret import Secret

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "turnstiled.toml"
# Every section's schema, found rather than listed: a new section cannot be missed.
SECTIONS = [c for c in vars(settings).values()
            if isinstance(c, type) and dataclasses.is_dataclass(c)
            and c.__module__ == settings.__name__]


def test_shipped_config_loads():
    cfg = config_mod.load(str(SHIPPED))
    assert cfg.gate.id == "gate-1"
    assert cfg.scanner[0].type == "serial"


@pytest.mark.parametrize("schema", [*SECTIONS, *(schema for schema, _ in REGISTRY.values())])
def test_every_key_is_documented_in_the_shipped_file(schema):
    text = SHIPPED.read_text()
    for f in dataclasses.fields(schema):
        assert re.search(rf"^#?\s*{f.name} = ", text, re.M), f"{f.name} not documented"


@pytest.mark.parametrize(("toml", "key"), [
    ("[gate]\nidd = 1\n", "gate.idd"),
    ("[hardware]\nrelay_pin = 'seventeen'\n", "hardware.relay_pin"),
    ("[hardware]\nrelay_idle = 'maybe'\n", "hardware.relay_idle"),
    ("[hardware]\nrelay_pulse_s = -1\n", "hardware.relay_pulse_s"),
    ("[gate]\nzones = 'A'\n", "gate.zones"),
    ("[[scanner]]\nname = 'a'\ntype = 'serial'\n", "scanner[0].url"),
    ("[[scanner]]\ntype = 'hid'\ndevice = '/dev/input/event0'\n", "scanner[0].name"),
    ("[bogus]\n", "bogus"),
    ("gate = 5\n", "gate"),
    ("gate = 5\n[mesh]\nbroker = 'mqtt://x:1883'\nvenue = 'v'\n", "gate"),
    ("[sources.nowhere]\n", "sources.nowhere"),
    ("[mesh]\nvenue = 'v'\n", "mesh.broker"),
    ("[mesh]\nbroker = 'http://x'\nvenue = 'v'\n", "mesh.broker"),
    ("[mesh]\nbroker = 'mqtt://x:1883'\nvenue = 'a/b'\n", "mesh.venue"),
    ("[mesh]\nbroker = 'mqtt://x:1883'\nvenue = 'v'\non_partition = 'x'\n",
     "mesh.on_partition"),
    ("[gate]\nid = 'a+b'\n[mesh]\nbroker = 'mqtt://x:1883'\nvenue = 'v'\n", "gate.id"),
    ("[gate]\nmax_occupancy = 10\n", "gate.max_occupancy"),
])
def test_bad_key_is_named(tmp_path, toml, key):
    path = tmp_path / "t.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        config_mod.load(str(path))
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_broken_toml_and_missing_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[gate\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(str(path))
    with pytest.raises(ConfigError, match="file not found"):
        config_mod.load(str(tmp_path / "missing.toml"))


def test_daemon_stops_with_one_line_naming_key_and_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[hardware]\nrelay_pin = true\n")
    proc = subprocess.run([sys.executable, "-m", "turnstiled.daemon", "--config", str(path)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "hardware.relay_pin" in lines[0] and str(path) in lines[0]


def test_config_path_precedence(monkeypatch):
    monkeypatch.setenv("TURNSTILED_CONFIG", "/env.toml")
    assert config_mod.config_path("/x.toml") == "/x.toml"
    assert config_mod.config_path(None) == "/env.toml"
    monkeypatch.delenv("TURNSTILED_CONFIG")
    assert config_mod.config_path(None) == config_mod.DEFAULT_PATH


def test_secret_never_prints():
    s = Secret("tok-123")
    assert s == "tok-123" and s.reveal() == "tok-123"
    assert "tok" not in f"{s} {s!r} {s!s}" and "tok" not in str([s])
