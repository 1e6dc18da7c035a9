"""turnstilectl's technician commands against a running daemon, and its error paths."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from turnstiled import cli, cli_status

FIRE = 25


def conf_for(g) -> Path:
    """A config file naming the running gate's paths (cli.main reads a file)."""
    cfg = g.daemon.cfg
    path = Path(cfg.path)
    path.write_text(f'[paths]\ndata_dir = "{cfg.paths.data_dir}"\n'
                    f'control_socket = "{cfg.paths.control_socket}"\n'
                    f"[hardware]\nfire_alarm_pin = {FIRE}\n")
    return path


def ctl(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_emergency_hold_test_and_events(start_gate, capsys):
    g = start_gate([], hardware={"fire_alarm_pin": FIRE, "relay_pulse_s": 0.05})
    c = str(conf_for(g))
    me = pwd.getpwuid(os.getuid()).pw_name
    code, out, _ = ctl(capsys, "--config", c, "test", "--json")
    data = json.loads(out)
    assert code == 0 and data["steps"] == ["green", "red", "buzzer", "relay"]
    assert data["scanners"][0]["name"] == "entry"
    assert g.relay.state is False
    code, out, _ = ctl(capsys, "--config", c, "hold")
    assert code == 0 and "held free (technician)" in out
    code, out, _ = ctl(capsys, "--config", c, "status")
    assert code == 0 and "relay=held free (technician)" in out
    ctl(capsys, "--config", c, "release")
    code, out, _ = ctl(capsys, "--config", c, "emergency", "on")
    assert code == 0 and "held free (emergency)" in out and g.relay.state is True
    code, out, _ = ctl(capsys, "--config", c, "status", "--json")
    assert "emergency" in json.loads(out)["alarms"]
    ctl(capsys, "--config", c, "emergency", "off")
    assert g.relay.state is False
    g.pins.pin(FIRE).drive_low()
    code, out, err = ctl(capsys, "--config", c, "test")
    assert code == 2 and "refused" in err and "fire alarm" in err
    g.pins.pin(FIRE).drive_high()
    # Both the alarm and its clearing journaled (the decision worker writes them: wait
    # for the second, not only the first).
    assert wait_until(lambda: [e["kind"] for e in _events(capsys, c)][:2] ==
                      ["fire_alarm", "fire_alarm"])
    events = _events(capsys, c)
    assert [e["kind"] for e in events][:6] == ["fire_alarm", "fire_alarm", "emergency",
                                               "emergency", "release", "hold_open"]
    assert events[2]["detail"] == f"off by {me}" and events[-1]["kind"] == "test"
    assert events[0]["at"].endswith("Z")
    code, out, _ = ctl(capsys, "--config", c, "events")
    assert code == 0 and "hold_open" in out and "start" not in out
    code, out, _ = ctl(capsys, "--config", c, "events", "--all")
    assert "start" in out


def _events(capsys, c: str) -> list[dict]:
    code, out, _ = ctl(capsys, "--config", c, "events", "--json")
    assert code == 0
    return json.loads(out)


def test_status_json_times_are_iso_and_exit_nonzero_without_daemon(start_gate, capsys):
    g = start_gate([])
    c = str(conf_for(g))
    code, out, _ = ctl(capsys, "--config", c, "status", "--json")
    assert code == 0
    g.daemon.stop()
    code, out, _ = ctl(capsys, "--config", c, "status", "--json")
    data = json.loads(out)
    assert code == cli_status.EXIT_NOT_RUNNING and data["daemon"]["running"] is False
    code, out, _ = ctl(capsys, "--config", c, "status")
    assert code == cli_status.EXIT_NOT_RUNNING and "not running" in out


def test_iso_times_converts_unix_times_only():
    data = {"last_sync": 0.0, "sync_age_s": 4.0, "x": [{"last_answer_at": 86400}],
            "last_error": "boom", "entries": 3, "offline_since": None, "ok_at": True}
    assert cli_status.iso_times(data) == {
        "last_sync": "1970-01-01T00:00:00.000Z", "sync_age_s": 4.0,
        "x": [{"last_answer_at": "1970-01-02T00:00:00.000Z"}], "last_error": "boom",
        "entries": 3, "offline_since": None, "ok_at": True}


@pytest.mark.parametrize("limit", ["0", "-3", "x"])
def test_scans_limit_must_be_positive(tmp_path, capsys, limit):
    code, _, err = ctl(capsys, "scans", "--limit", limit)
    assert code == 2 and "--limit" in err and "Traceback" not in err
    code, out, err = ctl(capsys, "scans", "--json", "--limit", limit)
    assert code == 2 and json.loads(out)["ok"] is False and "--limit" in json.loads(out)["error"]


def test_json_errors_are_json(tmp_path, capsys):
    code, out, err = ctl(capsys, "--config", str(tmp_path / "missing.toml"), "status", "--json")
    assert code == 2 and json.loads(out) == {"ok": False, "error": json.loads(out)["error"]}
    assert "missing.toml" in json.loads(out)["error"] and err == ""
    conf = tmp_path / "t.toml"
    conf.write_text(f'[paths]\ndata_dir = "{tmp_path}/d"\ncontrol_socket = "{tmp_path}/c"\n')
    code, out, _ = ctl(capsys, "--config", str(conf), "open", "--json")
    assert code == 2 and "not reachable" in json.loads(out)["error"]


def test_lookup_with_bytes_that_are_not_utf8(tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text(f'[paths]\ndata_dir = "{tmp_path}/d"\ncontrol_socket = "{tmp_path}/c"\n')
    exe = Path(sys.executable).parent / "turnstilectl"
    proc = subprocess.run([exe, "--config", conf, "lookup", b"AB\xff\xfeCD"],
                          capture_output=True, check=False, timeout=60)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert proc.stdout.startswith(b"DENY  unknown")


@pytest.mark.parametrize("command", ["import", "lookup", "scans", "status", "occupancy",
                                     "fleet", "sync", "doctor", "open", "hold", "release",
                                     "emergency", "test", "events"])
def test_every_command_has_version(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("turnstilectl ")
