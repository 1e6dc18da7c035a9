"""Logging set-up: journald with structured fields under systemd, else stderr."""

from __future__ import annotations

import logging
import os
import sys

from turnstiled.settings import LogSettings

IDENTIFIER = "turnstiled"


def setup(settings: LogSettings) -> None:
    """Route the ``turnstiled`` loggers to journald or stderr at the configured level."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    target = settings.target
    if target == "auto":
        target = "journald" if os.environ.get("JOURNAL_STREAM") else "stderr"
    handler: logging.Handler
    if target == "journald":
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
