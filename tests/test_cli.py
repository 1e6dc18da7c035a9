"""turnstilectl: import, lookup, scans, status, each with --json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from turnstiled import cli
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision

CSV = "barcode,zone,entries\nGUEST-1,GA,single\nGUEST-2,VIP,reentry\n"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "turnstiled.toml"
    path.write_text(f'[gate]\nzones = ["GA"]\n[paths]\ndata_dir = "{tmp_path}/data"\n'
                    f'control_socket = "{tmp_path}/ctl.sock"\n')
    (tmp_path / "list.csv").write_text(CSV)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_then_lookup(conf, capsys, tmp_path):
    code, out, _ = run(capsys, "--config", str(conf), "import", str(tmp_path / "list.csv"))
    assert code == 0 and "imported 2" in out
    code, out, _ = run(capsys, "lookup", "GUEST-1", "--config", str(conf), "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["barcode"], data["granted"], data["reason"]) == ("GUEST-1", True, "granted")
    assert data["ticket"]["zones"] == ["GA"]
    code, out, _ = run(capsys, "lookup", "]C1GUEST-2", "--config", str(conf), "--json")
    data = json.loads(out)
    assert code == 1 and data["barcode"] == "GUEST-2" and data["reason"] == "wrong_zone"
    code, out, _ = run(capsys, "--json", "--config", str(conf), "lookup", "NOPE")
    assert json.loads(out)["reason"] == "unknown"


def test_lookup_reads_usage_but_journals_nothing(conf, capsys, tmp_path):
    run(capsys, "--config", str(conf), "import", str(tmp_path / "list.csv"))
    j = Journal(tmp_path / "data" / "journal.db")
    from turnstiled.rules import Usage
    j.record(Scan(1.0, "g", "s", "in", "GUEST-1", Decision(True, "granted"), "local"),
             Usage(1, 0, True, 1.0))
    _, out, _ = run(capsys, "--config", str(conf), "lookup", "GUEST-1", "--json")
    assert json.loads(out)["reason"] == "already_used"
    assert len(j.recent(10)) == 1
    _, out, _ = run(capsys, "--config", str(conf), "scans", "--json")
    rows = json.loads(out)
    assert rows[0]["barcode"] == "GUEST-1" and rows[0]["granted"] is True
    assert rows[0]["reason"] == "granted" and rows[0]["upload"] == "pending"
    j.close()


def test_bad_import_names_line_and_imports_nothing(conf, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("barcode,status\nA,valid\nB,lost\n")
    code, _, err = run(capsys, "--config", str(conf), "import", str(bad))
    assert code == 2 and "line 3" in err and "status" in err
    _, out, _ = run(capsys, "--config", str(conf), "lookup", "A", "--json")
    assert json.loads(out)["reason"] == "unknown"


def test_status_without_daemon(conf, capsys, tmp_path):
    run(capsys, "--config", str(conf), "import", str(tmp_path / "list.csv"))
    code, out, _ = run(capsys, "--config", str(conf), "status", "--json")
    data = json.loads(out)
    assert code == 3 and data["daemon"]["running"] is False  # exit 3: not running
    assert data["sources"][0]["source"] == "local" and data["sources"][0]["tickets"] == 2
    code, out, _ = run(capsys, "--config", str(conf), "status")
    assert "not running" in out and "local" in out


def test_status_shows_when_the_gate_last_decided_a_scan(conf, capsys):
    _, out, _ = run(capsys, "--config", str(conf), "status")
    assert "last scan" not in out  # nothing decided yet
    j = Journal(conf.parent / "data" / "journal.db")
    from turnstiled.rules import Usage
    j.record(Scan(time.time() - 125, "g", "s", "in", "GUEST-1", Decision(True, "granted"),
                  "local"), Usage(1, 0, True, 1.0))
    j.close()
    _, out, _ = run(capsys, "--config", str(conf), "status")
    journal = next(ln for ln in out.splitlines() if ln.startswith("journal"))
    assert "(last scan 2 min ago)" in journal


def test_every_option_and_argument_says_what_it_is():
    """`turnstilectl CMD --help` is the technician's manual on the gate."""
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {action.dest}" for name, parser in sub.choices.items()
              for action in parser._actions
              if not action.help and not isinstance(action, argparse._VersionAction)]
    assert silent == []


def test_a_bad_option_shows_that_commands_usage(conf, capsys):
    code, _, err = run(capsys, "--config", str(conf), "scans", "--limit", "0")
    assert code == 2
    assert err.startswith("usage: turnstilectl scans ") and "[--limit LIMIT]" in err
    assert "{import,lookup" not in err  # not the list of every command
    assert err.splitlines()[-1] == "turnstilectl scans: argument --limit: must be at least 1, not 0"


def test_console_script_and_config_error(conf, tmp_path):
    exe = Path(sys.executable).parent / "turnstilectl"
    proc = subprocess.run([str(exe), "--config", str(conf), "scans", "--json"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    conf.write_text("[gate]\nid = 5\n")
    proc = subprocess.run([str(exe), "--config", str(conf), "scans"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 2 and "gate.id" in proc.stderr


def test_doctor_without_daemon_fails_with_reasons(conf, capsys, tmp_path):
    run(capsys, "--config", str(conf), "import", str(tmp_path / "list.csv"))
    code, out, _ = run(capsys, "--config", str(conf), "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(out)}
    assert code == 1
    assert checks["config"]["level"] == "OK"
    assert checks["cache"]["level"] == "OK" and "intact" in checks["cache"]["detail"]
    assert checks["daemon"]["level"] == "FAIL"
