"""Guest lists from CSV or JSON files, imported into the cache as source ``local``.

For staff passes, guest lists and venues with no ticketing API. The whole
file is checked first; a bad row is reported with its line number and
nothing of that file is imported.

CSV: a header row, fields separated by ``,`` or (as European spreadsheets
save it) ``;`` or a tab, told apart by the header; columns ``barcode``
(required), ``name``, ``event``,
``zone`` (several zones separated by ``;`` or ``|``), ``valid_from``,
``valid_until`` (ISO 8601 with an offset), ``status`` (``valid`` |
``invalid``; default valid), ``entries`` (``single`` | ``reentry`` |
``unlimited`` | a number; default single). JSON: a list of objects with
the same keys; a barcode must be a JSON string (a number would lose its
leading zeros or digits).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from turnstiled.errors import ImportFileError
from turnstiled.rules import Ticket, parse_policy

SOURCE = "local"
COLUMNS = ("barcode", "name", "event", "zone", "valid_from", "valid_until", "status", "entries")
_ZONE_SPLIT = re.compile(r"[;|]")


def parse_time(text: str) -> float:
    """ISO 8601 with an offset (``Z`` allowed) to Unix seconds."""
    text = text.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"time needs an offset such as +01:00 or Z: {text!r}")
    return dt.timestamp()


def row_to_ticket(row: dict[str, Any], max_length: int = 128) -> Ticket:
    """Validate one record; raises ValueError with a message naming the column."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(sorted(map(str, unknown)))}")

    def text(key: str) -> str:
        value = row.get(key)
        if value is None:
            return ""
        if not isinstance(value, str | int):
            raise ValueError(f"{key}: expected text, got {type(value).__name__}")
        return str(value).strip()

    if "barcode" in row and not isinstance(row["barcode"], str):
        raise ValueError(f"barcode: must be text in quotes, got {type(row['barcode']).__name__} "
                         f"{row['barcode']!r} (a number loses leading zeros and long digits)")
    barcode = text("barcode")
    if not barcode:
        raise ValueError("barcode: required")
    if len(barcode) > max_length:
        raise ValueError(f"barcode: longer than {max_length} characters")
    if any(ord(c) < 0x20 and c != "\x1d" for c in barcode):
        raise ValueError("barcode: contains control characters")
    status = text("status").lower() or "valid"
    if status not in ("valid", "invalid"):
        raise ValueError(f"status: must be valid or invalid, got {status!r}")
    entries = text("entries").lower() or "single"
    try:
        parse_policy(entries)
    except ValueError as exc:
        raise ValueError(f"entries: {exc}") from None
    times: dict[str, float | None] = {}
    for key in ("valid_from", "valid_until"):
        value = text(key)
        try:
            times[key] = parse_time(value) if value else None
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    vf, vu = times["valid_from"], times["valid_until"]
    if vf is not None and vu is not None and vu < vf:
        raise ValueError("valid_until: before valid_from")
    zones = tuple(z.strip() for z in _ZONE_SPLIT.split(text("zone")) if z.strip())
    return Ticket(SOURCE, barcode, text("event"), status, zones, vf, vu, entries, text("name"))


def read_file(path: str | Path, max_length: int = 128) -> list[Ticket]:
    """Parse and check a whole CSV or JSON file; ImportFileError on the first bad row."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(str(path), None, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    is_json = path.suffix.lower() == ".json" or text.lstrip().startswith("[")
    records = _json_records(path, text) if is_json else _csv_records(path, text)
    tickets: list[Ticket] = []
    seen: dict[str, int] = {}
    for line, record in records:
        try:
            t = row_to_ticket(record, max_length)
        except ValueError as exc:
            raise ImportFileError(str(path), line, str(exc)) from None
        if t.barcode in seen:
            raise ImportFileError(
                str(path), line, f"barcode repeats the one on line {seen[t.barcode]}")
        seen[t.barcode] = line
        tickets.append(t)
    return tickets


def delimiter(text: str) -> str:
    """The field separator the header row uses: ``,``, ``;`` or a tab."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def _csv_records(path: Path, text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFileError(str(path), 1, "empty file: a header row is required") from None
    except csv.Error as exc:
        raise ImportFileError(str(path), 1, f"bad CSV: {exc}") from None
    if "barcode" not in header:
        raise ImportFileError(str(path), 1, "header has no 'barcode' column")
    bad = [h for h in header if h not in COLUMNS]
    if bad:
        raise ImportFileError(str(path), 1, f"unknown column(s): {', '.join(bad)} "
                              f"(known: {', '.join(COLUMNS)})")
    out = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise ImportFileError(str(path), line,
                                      f"{len(cells)} fields, header has {len(header)}")
            out.append((line, dict(zip(header, cells, strict=True))))
    except csv.Error as exc:
        raise ImportFileError(str(path), reader.line_num, f"bad CSV: {exc}") from None
    return out


def _json_records(path: Path, text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """Each object of the top-level list, with the line it starts on."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(str(path), exc.lineno, f"bad JSON: {exc.msg}") from None
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        raise ImportFileError(str(path), 1, "JSON must be a list of objects")
    pos = _skip_ws(text, pos + 1)
    out = []
    while not text.startswith("]", pos):
        line = text.count("\n", 0, pos) + 1
        item, pos = decoder.raw_decode(text, pos)
        if not isinstance(item, dict):
            raise ImportFileError(str(path), line, "not an object")
        out.append((line, item))
        pos = _skip_ws(text, pos)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
    return out


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
