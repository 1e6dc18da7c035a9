"""The one exception hierarchy of turnstiled.

Each error mixes in the built-in it behaves like, so callers that know
nothing of turnstiled still catch it sensibly (the gpiozero ``exc.py`` way).
"""

from __future__ import annotations


class TurnstileError(Exception):
    """Base of every error turnstiled raises on purpose."""


class ConfigError(TurnstileError, ValueError):
    """The configuration file is missing, unreadable or has a bad key."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        where = f"{key}: " if key else ""
        super().__init__(f"config error in {path}: {where}{message}")


class SettingError(TurnstileError, ValueError):
    """A settings table's values contradict each other or have the wrong shape."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class DataFileError(TurnstileError, OSError):
    """The data directory or the journal cannot be used: start-up stops (exit 78)."""


class ImportFileError(TurnstileError, ValueError):
    """A guest-list file could not be imported; nothing of it was imported."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        where = f" line {line}" if line is not None else ""
        super().__init__(f"{path}{where}: {message}")


class ControlError(TurnstileError, OSError):
    """The daemon's control socket could not be reached or refused a command."""
