"""``turnstiled --check`` refuses, with one line and exit 78, whatever the daemon would refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from turnstiled import service

SCANNER = "[[scanner]]\nname = 'front'\ntype = 'serial'\nurl = 'loop://'\n"


def check(tmp_path: Path, capsys, body: bytes | str) -> tuple[int, list[str], str]:
    path = tmp_path / "turnstiled.toml"
    if isinstance(body, str):
        body = body.encode()
    path.write_bytes(body)
    rc = service.main(["--check", "--config", str(path)])
    out = capsys.readouterr()
    return rc, out.err.strip().splitlines(), out.out


@pytest.fixture(autouse=True)
def mock_pins(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


@pytest.mark.parametrize(("body", "named"), [
    ("[hardware]\nrelay_pin = 17\nbuzzer_pin = 17\n" + SCANNER,
     "hardware.buzzer_pin: GPIO 17 is already used by relay_pin"),
    ("[hardware]\nfire_alarm_pin = 22\n" + SCANNER,
     "hardware.fire_alarm_pin: GPIO 22 is already used by green_led_pin"),
    ("[hardware]\nrelay_pin = 40\n" + SCANNER, "hardware.relay_pin: GPIO 40 is not on the board"),
    (SCANNER + "baudrate = 0\n", "scanner[0].baudrate"),
    (SCANNER + "idle_gap_s = 0\n", "scanner[0].idle_gap_s"),
    (b"[gate]\nid = 'caf\xe9'\n" + SCANNER.encode(), "not UTF-8 (byte 0xe9 on line 2)"),
    (b"\xef\xbb\xbf[gate]\nid = 'g'\n" + SCANNER.encode(), "byte-order mark"),
    ("[sources.ticketing]\nadmission_code = 'abc123'\napi_key = 'k'\n" + SCANNER,
     "sources.ticketing.admission_code"),
    ("[sources.ticketing]\nadmission_code = 'a0f9gg8d'\napi_key = 'k'\n" + SCANNER,
     "sources.ticketing.admission_code"),
    ("[journal]\nupload_retry_min_s = 600\nupload_retry_max_s = 300\n" + SCANNER,
     "journal.upload_retry_min_s: 600 is above upload_retry_max_s (300)"),
    ("[sources.vivenu]\ntoken = 't'\nbase_url = 'vivenu.com/api/accessusers'\n" + SCANNER,
     "sources.vivenu.base_url"),
    ("[sources.octopus]\napi_key = 'k'\nlocation_id = 'l'\nbase_url = 'https://'\n" + SCANNER,
     "sources.octopus.base_url"),
    ("[sources.chapterevents]\npassword = 'p'\nbase_url = 'ftp://ce.example/'\n" + SCANNER,
     "sources.chapterevents.base_url"),
])
def test_bad_config_is_refused_in_one_line(tmp_path, capsys, body, named):
    rc, err, out = check(tmp_path, capsys, body)
    assert rc == 78
    assert len(err) == 1, err
    assert named in err[0]
    assert str(tmp_path / "turnstiled.toml") in err[0]
    assert out == ""


def test_the_secret_is_not_in_the_refusal(tmp_path, capsys):
    rc, err, _ = check(tmp_path, capsys, "[sources.ticketing]\nadmission_code = 'SECRET1'\n")
    assert rc == 78 and "SECRET1" not in err[0]


def test_good_config_passes_and_no_scanner_only_warns(tmp_path, capsys):
    rc, err, out = check(tmp_path, capsys, SCANNER + "[sources.ticketing]\n"
                         "admission_code = 'A0F9GG8D'\napi_key = 'k'\n"
                         "base_url = 'http://127.0.0.1:1/v3/'\n")
    assert (rc, err) == (0, [])
    assert "configuration OK" in out
    rc, err, out = check(tmp_path, capsys, "[gate]\nid = 'g'\n")
    assert rc == 0 and "configuration OK" in out
    assert len(err) == 1 and "warning: no [[scanner]] configured" in err[0]


def test_unknown_pin_factory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nosuch")
    rc, err, _ = check(tmp_path, capsys, SCANNER)
    assert rc == 78 and len(err) == 1
    assert "GPIOZERO_PIN_FACTORY=nosuch" in err[0] and "lgpio" in err[0]


def _without_gpio_libraries(tmp_path: Path) -> dict[str, str]:
    """An environment where lgpio, RPi.GPIO and pigpio cannot be imported (a bare Pi OS)."""
    blocked = tmp_path / "blocked"
    (blocked / "RPi").mkdir(parents=True)
    for mod in ("lgpio.py", "pigpio.py", "RPi/__init__.py"):
        (blocked / mod).write_text("raise ImportError('not installed')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GPIOZERO_PIN_FACTORY", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), *sys.path])
    return env


@pytest.mark.parametrize("args", [["--check"], []])
def test_missing_gpio_library_names_the_package(tmp_path, args):
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(f"[paths]\ndata_dir = '{tmp_path}/data'\n" + SCANNER)
    proc = subprocess.run([sys.executable, "-m", "turnstiled.daemon", *args, "--config", str(cfg)],
                          env=_without_gpio_libraries(tmp_path), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "python3-lgpio" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was opened
