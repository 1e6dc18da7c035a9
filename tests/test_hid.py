"""HID scanners: real evdev.InputEvent sequences per layout, and the grab/unplug loop."""

from __future__ import annotations

import contextlib
import errno
import queue

import pytest
from evdev import InputEvent
from evdev import ecodes as E

from tests.conftest import wait_until
from turnstiled.scanners.hid import HidScanner
from turnstiled.scanners.keymaps import KeyDecoder


def press(code: int) -> list[InputEvent]:
    return [InputEvent(1, 0, E.EV_KEY, code, 1), InputEvent(1, 0, E.EV_SYN, 0, 0),
            InputEvent(1, 10, E.EV_KEY, code, 0), InputEvent(1, 10, E.EV_SYN, 0, 0)]


def hold(mod: int, *codes: int) -> list[InputEvent]:
    evs = [InputEvent(1, 0, E.EV_KEY, mod, 1)]
    for c in codes:
        evs += press(c)
    return [*evs, InputEvent(1, 0, E.EV_KEY, mod, 0)]


def typed(layout: str, events: list[InputEvent]) -> list[str]:
    d = KeyDecoder(layout)
    return [t for ev in events if (t := d.feed(ev)) is not None]


K = lambda *names: [ev for n in names for ev in press(getattr(E, f"KEY_{n}"))]  # noqa: E731


@pytest.mark.parametrize(("layout", "events", "text"), [
    ("us", K("A", "B", "1", "2") + hold(E.KEY_LEFTSHIFT, E.KEY_2) + K("MINUS", "ENTER"),
     "ab12@-"),
    ("us", hold(E.KEY_RIGHTSHIFT, E.KEY_T, E.KEY_K) + K("KP4", "KP2", "KPENTER"), "TK42"),
    ("uk", hold(E.KEY_LEFTSHIFT, E.KEY_2, E.KEY_3, E.KEY_APOSTROPHE) + K("BACKSLASH", "ENTER"),
     '"£@#'),
    ("de", K("Y", "Z") + hold(E.KEY_RIGHTALT, E.KEY_Q) + K("SLASH", "MINUS", "ENTER"),
     "zy@-ß"),
    ("de", hold(E.KEY_LEFTSHIFT, E.KEY_7, E.KEY_0) + K("TAB"), "/="),
    ("fr", K("Q", "A", "W", "Z", "1", "2") + K("ENTER"), "aqzw&é"),
    ("fr", hold(E.KEY_LEFTSHIFT, *[getattr(E, f"KEY_{d}") for d in "1234567890"]) + K("ENTER"),
     "1234567890"),
    ("fr", hold(E.KEY_RIGHTALT, E.KEY_0) + K("SEMICOLON", "M", "ENTER"), "@m,"),
])
def test_layouts(layout, events, text):
    assert typed(layout, events) == [text]


def test_caps_lock_and_shift():
    evs = K("CAPSLOCK", "A") + hold(E.KEY_LEFTSHIFT, E.KEY_B) + K("1", "CAPSLOCK", "C", "ENTER")
    assert typed("us", evs) == ["Ab1c"]
    assert typed("fr", K("CAPSLOCK", "2", "ENTER")) == ["É"]


def test_gs_separator_two_ways():
    # keypad digits: the same in every layout
    evs = (K("KP0", "KP1") + hold(E.KEY_LEFTCTRL, E.KEY_RIGHTBRACE) + K("KP1", "KP0")
           + hold(E.KEY_LEFTALT, E.KEY_KP0, E.KEY_KP2, E.KEY_KP9) + K("KP9", "ENTER"))
    for layout in ("us", "uk", "de", "fr"):
        assert typed(layout, evs) == ["01\x1d10\x1d9"]


def test_autorepeat_sync_and_empty_codes():
    evs = [InputEvent(1, 0, E.EV_MSC, E.MSC_SCAN, 30), InputEvent(1, 0, E.EV_KEY, E.KEY_A, 1),
           InputEvent(1, 0, E.EV_KEY, E.KEY_A, 2), InputEvent(1, 0, E.EV_KEY, E.KEY_A, 0)]
    assert typed("us", evs + K("ENTER", "ENTER")) == ["aa"]


def test_unknown_layout():
    with pytest.raises(ValueError, match="known: de, fr, uk, us"):
        KeyDecoder("dvorak")


class FakeDevice:
    """Stands in for evdev.InputDevice: a real pipe fd for select, scripted real events."""

    def __init__(self, batches: list[list[InputEvent] | OSError]) -> None:
        import os
        self.r, self.w = os.pipe()
        self.fd = self.r
        self.batches = batches
        self.calls: list[str] = []
        for _ in batches:
            os.write(self.w, b"x")

    def grab(self) -> None:
        self.calls.append("grab")

    def ungrab(self) -> None:
        self.calls.append("ungrab")

    def read(self):
        import os
        os.read(self.r, 1)
        item = self.batches.pop(0)
        if isinstance(item, OSError):
            raise item
        return iter(item)

    def close(self) -> None:
        import os
        self.calls.append("close")
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_grab_read_unplug_replug():
    frames: queue.Queue = queue.Queue()
    first = FakeDevice([K("A", "1", "ENTER"), K("B"), OSError(errno.ENODEV, "No such device")])
    second = FakeDevice([K("C", "2", "TAB")])
    opened: list[str] = []

    def open_device(spec: str) -> FakeDevice:
        opened.append(spec)
        if len(opened) == 1:
            return first
        if len(opened) == 2:
            raise FileNotFoundError("unplugged")
        return second

    s = HidScanner("wedge", "name:Scanner", lambda raw, t: frames.put(raw), layout="us",
                   open_device=open_device, reopen_backoff=(0.01, 0.02))
    s.start()
    assert frames.get(timeout=3) == b"a1"
    assert frames.get(timeout=3) == b"c2"  # the half-typed "b" was dropped with the device
    assert wait_until(lambda: s.connected)
    s.stop()
    assert first.calls == ["grab", "ungrab", "close"]
    assert second.calls == ["grab", "ungrab", "close"]
    assert opened == ["name:Scanner"] * 3


def test_uinput_device_when_available():
    evdev = pytest.importorskip("evdev")
    try:
        ui = evdev.UInput(name="turnstiled-test-scanner")
    except (OSError, evdev.UInputError) as exc:
        pytest.skip(f"no /dev/uinput here ({exc}); the loop is covered by the fake device")
    frames: queue.Queue = queue.Queue()
    s = HidScanner("ui", "name:turnstiled-test-scanner", lambda raw, t: frames.put(raw))
    s.start()
    assert wait_until(lambda: s.connected)
    for code in (E.KEY_X, E.KEY_9, E.KEY_ENTER):
        ui.write(E.EV_KEY, code, 1)
        ui.write(E.EV_KEY, code, 0)
        ui.syn()
    assert frames.get(timeout=3) == b"x9"
    s.stop()
    ui.close()
