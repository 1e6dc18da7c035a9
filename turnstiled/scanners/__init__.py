"""Barcode scanners: serial (pyserial) and USB HID (evdev), and their pure decoding.

Readers hand raw frames to a sink ``(raw: bytes, t_monotonic: float)``;
:func:`normalise` turns a frame into barcode text.
"""

from turnstiled.scanners.decode import Debouncer, Framer, Normalised, normalise, printable

__all__ = ["Debouncer", "Framer", "Normalised", "normalise", "printable"]
