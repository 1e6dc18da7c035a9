"""What every ``turnstilectl`` command module shares: how it answers, its argument
types, and a read-only look at the journal."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from turnstiled.config import Config
from turnstiled.journal import Journal


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """*data* as JSON with ``--json``, else *text* for a person."""
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


@contextlib.contextmanager
def journal_readonly(cfg: Config) -> Iterator[Journal | None]:
    """The journal opened read-only for one command (None while there is none yet)."""
    try:
        journal = Journal(cfg.paths.journal_db, readonly=True)
    except OSError:  # FileNotFoundError included: the daemon has not started yet
        yield None
        return
    try:
        yield journal
    finally:
        journal.close()
