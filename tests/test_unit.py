"""systemd/turnstiled.service: verifies, is hardened, reaches the hardware, cannot loop.

``systemd-analyze`` runs when it is installed (scripts/_env.sh installs the
``systemd`` package on a machine without it). What PID 1 would do with the
unit cannot run here; the rest of the loop-free design is checked piece by
piece: no pre-start command can fail outside ``RestartPreventExitStatus``,
and the main process refuses a bad configuration with exactly that status.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "turnstiled.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
MAX_EXPOSURE = 2.0


def directives(name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}=(.*)$", UNIT.read_text(), re.M)]


@needs_analyze
def test_unit_verifies(tmp_path):
    # verify insists that ExecStart= exists: point it at this checkout's entry point.
    exe = Path(sys.executable).with_name("turnstiled")
    assert exe.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/turnstiled/bin/turnstiled", str(exe)))
    proc = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""


@needs_analyze
def test_exposure_score():
    proc = subprocess.run([ANALYZE, "security", "--offline=yes", str(UNIT)],
                          capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    score = float(match.group(1))
    assert score <= MAX_EXPOSURE
    claimed = re.search(r"rates this unit (\d+\.\d+)", UNIT.read_text())
    assert claimed and float(claimed.group(1)) == score, "the unit's comment quotes the score"


def test_unit_still_reaches_the_hardware():
    allowed = {d.split()[0]: d.split()[1] for d in directives("DeviceAllow")}
    assert allowed["char-gpiochip"] == "rw"  # /dev/gpiochip0, /dev/gpiochip4 (Pi 5)
    for serial in ("char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS"):
        assert allowed[serial] == "rw"  # serial0 is a link to ttyAMA0 or ttyS0
    assert "r" in allowed["char-input"]
    assert directives("DevicePolicy") == ["closed"]
    assert directives("PrivateDevices") == []  # it would hide /dev/gpiochip*
    assert set(directives("SupplementaryGroups")[0].split()) == {"gpio", "dialout", "input"}
    # lgpio writes its pipes into the working directory: the runtime directory.
    assert directives("WorkingDirectory") == ["/run/turnstiled"]
    assert directives("RuntimeDirectory") == ["turnstiled"]
    # The databases' and socket's directories are the unit's own (writable
    # under ProtectSystem=strict); the shipped config points at them.
    assert directives("StateDirectory") == ["turnstiled"]
    shipped = (UNIT.parent.parent / "config" / "turnstiled.toml").read_text()
    assert re.search(r'^data_dir = "/var/lib/turnstiled"', shipped, re.M)
    assert re.search(r'^control_socket = "/run/turnstiled/', shipped, re.M)


def test_a_config_error_cannot_restart_the_unit_in_a_loop():
    # Only the main process's exit status is matched against
    # RestartPreventExitStatus: nothing may run before it that can fail.
    for pre in ("ExecStartPre", "ExecCondition", "ExecStartPost"):
        assert directives(pre) == []
    assert directives("Restart") == ["always"]
    assert "78" in directives("RestartPreventExitStatus")[0].split()
    assert directives("ExecReload") == ["/bin/kill -HUP $MAINPID"]


def test_refusal_is_one_line_status_and_exit_78(tmp_path):
    """What `systemctl status` shows after a refused start: STATUS= and the journal line."""
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text("[hardware]\nrelay_pin = 17\nred_led_pin = 17\n")
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "GPIOZERO_PIN_FACTORY": "mock"}
    try:
        proc = subprocess.run([sys.executable, "-m", "turnstiled.daemon", "--config", str(cfg)],
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        status = sock.recv(4096).decode()
    finally:
        sock.close()
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "hardware.red_led_pin" in lines[0]
    assert status.startswith("STATUS=refused to start: ")
    assert "hardware.red_led_pin" in status and "\n" not in status.strip()
