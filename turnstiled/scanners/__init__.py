"""Barcode scanners: serial (pyserial) and USB HID (evdev), and their pure decoding.

Readers hand raw frames to a sink ``(raw: bytes, t_monotonic: float)``;
:func:`normalise` turns a frame into barcode text and :class:`Debouncer`
drops a scanner's repeats. The readers are imported on first use, so the
pure decoding does not pull in pyserial or evdev.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from turnstiled.scanners.decode import Debouncer, Framer, Normalised, normalise, printable

if TYPE_CHECKING:
    from turnstiled.scanners.hid import HidScanner
    from turnstiled.scanners.keymaps import KeyDecoder
    from turnstiled.scanners.serial import SerialScanner

__all__ = ["Debouncer", "Framer", "HidScanner", "KeyDecoder", "Normalised", "SerialScanner",
           "normalise", "printable"]

_LAZY = {"HidScanner": "hid", "KeyDecoder": "keymaps", "SerialScanner": "serial"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
