"""Plain-text tables for ``turnstilectl`` that fit the terminal (80 columns and up).

Columns take their natural width; when the table is wider than the
terminal, the columns marked ``shrink`` give way, widest first, down to
their minimum, and a cell that no longer fits is cut with ``…`` (a barcode
keeps its start and its end, the part a technician compares). A row may
carry a note (a refusal, a conflict), printed wrapped on the next line
under the row. Output that is not a terminal is never cut, unless
``$COLUMNS`` says how wide it is: ``grep`` sees whole barcodes.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

GAP = "  "
NOTE_INDENT = "    "


@dataclass(frozen=True)
class Column:
    """One column: its header, alignment and how far it may shrink (0: never)."""

    header: str
    align: str = "<"
    shrink: int = 0  # the narrowest it may get; 0 keeps it at its natural width
    middle: bool = False  # cut in the middle (barcodes), not at the end
    hide_empty: bool = False  # left out when no row has a value other than "-"


def width() -> int | None:
    """Columns to fit: the terminal's, or ``$COLUMNS``; None for a pipe or file."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return None


def cut(text: str, size: int, middle: bool = False) -> str:
    """*text* in at most *size* characters, ``…`` marking what was left out."""
    if len(text) <= size:
        return text
    if size <= 1:
        return "…"[:size]
    if middle:
        head = size // 2
        tail = size - 1 - head
        return text[:head] + "…" + (text[-tail:] if tail else "")
    return text[:size - 1] + "…"


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]],
           notes: Sequence[str | None] | None = None, max_width: int | None = None) -> str:
    """The table as text; *notes*, one per row (or None), go under their rows."""
    keep = [i for i, c in enumerate(columns)
            if not c.hide_empty or any(r[i] not in ("", "-") for r in rows)]
    cols = [columns[i] for i in keep]
    cells = [[str(r[i]) for i in keep] for r in rows]
    widths = [max([len(c.header)] + [len(r[k]) for r in cells]) for k, c in enumerate(cols)]
    if max_width is not None:
        _fit(cols, widths, max_width - 1 - len(GAP) * (len(cols) - 1))
    lines = [_line([c.header for c in cols], cols, widths)]
    for k, row in enumerate(cells):
        lines.append(_line(row, cols, widths))
        note = notes[k] if notes else None
        if note:
            if max_width is None:
                lines.append(NOTE_INDENT + note)
            else:
                lines += textwrap.wrap(note, max(20, max_width - 1),
                                       initial_indent=NOTE_INDENT,
                                       subsequent_indent=NOTE_INDENT)
    return "\n".join(lines)


def _fit(cols: Sequence[Column], widths: list[int], room: int) -> None:
    """Narrow the shrinkable columns, widest first, until the row fits *room*."""
    while sum(widths) > room:
        can = [k for k, c in enumerate(cols) if c.shrink and widths[k] > c.shrink]
        if not can:
            return
        k = max(can, key=lambda j: widths[j])
        widths[k] -= 1


def _line(values: Sequence[str], cols: Sequence[Column], widths: Sequence[int]) -> str:
    parts = []
    for value, col, w in zip(values, cols, widths, strict=True):
        text = cut(value, w, col.middle)
        parts.append(f"{text:{col.align}{w}}")
    return GAP.join(parts).rstrip()


def fold(lines: Sequence[str], indent: int, max_width: int | None) -> str:
    """*lines* with each one longer than *max_width* wrapped, hanging at *indent*."""
    if max_width is None:
        return "\n".join(lines)
    out: list[str] = []
    for line in lines:
        if len(line) <= max_width - 1:
            out.append(line)
            continue
        out += textwrap.wrap(line, max(20, max_width - 1), subsequent_indent=" " * indent,
                             break_on_hyphens=False)
    return "\n".join(out)
