"""turnstilectl's tables at 80 columns: long scanner names, details and barcodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnstiled import cli, tables
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision

LONG_CODE = "HEAD7-" + "X" * 100 + "-TAIL9"


def test_cut_keeps_both_ends_of_a_barcode():
    assert tables.cut(LONG_CODE, 13, middle=True) == "HEAD7-…-TAIL9"
    assert tables.cut("short", 13, middle=True) == "short"
    assert tables.cut("a long detail text", 8) == "a long …"


def test_render_shrinks_only_shrinkable_columns_and_wraps_notes():
    cols = [tables.Column("ID", ">"), tables.Column("NAME", shrink=6),
            tables.Column("CODE", shrink=9, middle=True),
            tables.Column("EMPTY", hide_empty=True)]
    rows = [["1", "a-very-long-scanner-name", LONG_CODE, "-"], ["22", "b", "C2", "-"]]
    text = tables.render(cols, rows, [("why " * 30).strip(), None], max_width=40)
    lines = text.splitlines()
    assert all(len(ln) < 40 for ln in lines)
    assert lines[0].split() == ["ID", "NAME", "CODE"]  # the all-empty column is left out
    assert "HEAD7" in lines[1] and "TAIL9" in lines[1] and "…" in lines[1]
    assert lines[2].startswith("    why why")
    assert lines[-1].split() == ["22", "b", "C2"]
    # a pipe (no width) gets every character
    assert LONG_CODE in tables.render(cols, rows, max_width=None)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "turnstiled.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}/data"\n'
                    f'control_socket = "{tmp_path}/ctl.sock"\n')
    (tmp_path / "data").mkdir()
    j = Journal(tmp_path / "data" / "journal.db")
    j.record(Scan(1.7e9, "g", "north-entrance-left-lane-scanner", "in", LONG_CODE,
                  Decision(False, "unknown", "ticket not in cache")))
    j.record(Scan(1.7e9 + 5, "g", "exit", "out", "SHORT-1",
                  Decision(True, "granted", "first entry"), source="vivenu"))
    rows = j.claim("vivenu", 10)
    j.settle([], {rows[0]["id"]: "Ticket SHORT-1 was refunded by the organiser on "
                                 "2026-11-20 and can no longer be scanned at any gate"})
    j.close()
    return path


def test_scans_fit_80_columns(conf, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(["--config", str(conf), "scans"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(ln) < 80 for ln in lines), "\n".join(lines)
    assert any("HEAD7" in ln and "TAIL9" in ln for ln in lines)
    assert any("north" in ln for ln in lines)
    note = " ".join(ln.strip() for ln in lines if ln.startswith("    "))
    assert "refunded by the organiser" in note and "any gate" in note
    # --json is never cut
    assert cli.main(["--config", str(conf), "scans", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[-1]["barcode"] == LONG_CODE


def test_status_and_doctor_fit_80_columns(conf, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    cli.main(["--config", str(conf), "status"])
    cli.main(["--config", str(conf), "doctor"])
    out = capsys.readouterr().out
    assert all(len(ln) < 80 for ln in out.splitlines()), out
