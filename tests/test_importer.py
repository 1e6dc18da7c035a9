"""Guest-list import: the CSV/JSON interface, and all-or-nothing on a bad row."""

from __future__ import annotations

import json

import pytest

from turnstiled import importer
from turnstiled.cache import Cache
from turnstiled.errors import ImportFileError

CSV = """barcode,name,event,zone,valid_from,valid_until,status,entries
STAFF-0001,Ada,ev1,VIP;GA,2026-01-01T00:00:00+01:00,2027-01-01T00:00:00Z,valid,unlimited
GUEST-0002,Bob,ev1,GA,,,,
GUEST-0003,Cy,ev1,,,,invalid,3
"""


def test_csv_round_trip(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(CSV)
    tickets = importer.read_file(path)
    assert [t.barcode for t in tickets] == ["STAFF-0001", "GUEST-0002", "GUEST-0003"]
    ada = tickets[0]
    assert ada.zones == ("VIP", "GA") and ada.entries == "unlimited"
    assert ada.valid_from == 1767222000.0 and ada.valid_until == 1798761600.0
    assert tickets[1].status == "valid" and tickets[1].entries == "single"
    assert tickets[2].status == "invalid" and tickets[2].entries == "3"


def test_json_same_keys(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"barcode": "A1", "zone": "GA", "entries": "reentry"},
                                {"barcode": "A2"}]))
    assert [t.entries for t in importer.read_file(path)] == ["reentry", "single"]


@pytest.mark.parametrize(("body", "line", "msg"), [
    ("barcode,name\nA,x\n,y\n", 3, "barcode: required"),
    ("barcode,valid_from\nA,2026-01-01T10:00:00\n", 2, "offset"),
    ("barcode,valid_from\nA,tomorrow\n", 2, "ISO 8601"),
    ("barcode,status\nA,valid\nB,maybe\n", 3, "status"),
    ("barcode,entries\nA,0\n", 2, "entries"),
    ("barcode,colour\nA,red\n", 1, "unknown column"),
    ("name\nx\n", 1, "no 'barcode' column"),
    ("barcode\nA\nA\n", 3, "repeats the one on line 2"),
    ("barcode,name\nA\n", 2, "fields"),
    ("barcode,valid_from,valid_until\nA,2026-02-01T00:00:00Z,2026-01-01T00:00:00Z\n", 2,
     "before valid_from"),
])
def test_bad_row_names_line_and_imports_nothing(tmp_path, body, line, msg):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ImportFileError) as info:
        importer.read_file(path)
    assert info.value.line == line
    assert msg in str(info.value)


def test_bad_json_item_reports_its_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"barcode": "A"},\n  {"barcode": "B",\n   "status": "gone"}\n]\n')
    with pytest.raises(ImportFileError) as info:
        importer.read_file(path)
    assert info.value.line == 3


def test_non_utf8_file_is_refused_cleanly(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"barcode\n\xff\xfe\n")
    with pytest.raises(ImportFileError, match="UTF-8"):
        importer.read_file(path)


def test_replace_source_is_atomic(tmp_path):
    cache = Cache(tmp_path / "cache.db")
    path = tmp_path / "list.csv"
    path.write_text(CSV)
    cache.replace_source("local", importer.read_file(path))
    reader = Cache(tmp_path / "cache.db", readonly=True)

    def tickets():
        yield from importer.read_file(path)[:1]
        assert reader.lookup("GUEST-0002") is not None  # old list still visible mid-swap
        raise RuntimeError("sync died")

    with pytest.raises(RuntimeError):
        cache.replace_source("local", tickets())
    assert reader.lookup("GUEST-0003") is not None  # rolled back: old list intact
    cache.replace_source("local", importer.read_file(path)[:1])
    assert reader.lookup("GUEST-0003") is None


def test_semicolon_csv_from_a_european_spreadsheet(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffbarcode;name;zone;entries\r\nA-1;Zoë;GA;reentry\r\n"
                     "A-2;Jo;\"GA;VIP\";3\r\n".encode())
    tickets = importer.read_file(path)
    assert [(t.barcode, t.name, t.zones, t.entries) for t in tickets] == [
        ("A-1", "Zoë", ("GA",), "reentry"), ("A-2", "Jo", ("GA", "VIP"), "3")]


def test_tab_separated(tmp_path):
    path = tmp_path / "list.tsv"
    path.write_text("barcode\tname\nT-1\tAl\n")
    assert [(t.barcode, t.name) for t in importer.read_file(path)] == [("T-1", "Al")]


@pytest.mark.parametrize("value", [123, 1.5, None, True, ["A"]])
def test_json_barcode_must_be_a_string(tmp_path, value):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"barcode": "OK-1"}, {"barcode": value}]))
    with pytest.raises(ImportFileError) as info:
        importer.read_file(path)
    assert info.value.line == 1 and "barcode" in str(info.value)
