"""What every ``turnstilectl`` command module shares: how it answers, and its argument types."""

from __future__ import annotations

import argparse
import json
from typing import Any


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
