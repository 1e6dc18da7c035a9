"""HID scanners: real evdev.InputEvent sequences per layout, and the grab/unplug loop."""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator

import evdev
import pytest
from evdev import InputEvent
from evdev import ecodes as E

from tests.conftest import wait_until
from turnstiled.scanners import hid
from turnstiled.scanners.hid import HidScanner, find_device
from turnstiled.scanners.keymaps import MAX_CODE, KeyDecoder

LOGGER = "turnstiled.scanners.hid"


def press(code: int) -> list[InputEvent]:
    """One key stroke as the kernel reports it: scan code, down, sync, up, sync."""
    return [InputEvent(1, 0, E.EV_MSC, E.MSC_SCAN, 0x70000 + code),
            InputEvent(1, 0, E.EV_KEY, code, 1), InputEvent(1, 0, E.EV_SYN, E.SYN_REPORT, 0),
            InputEvent(1, 10, E.EV_KEY, code, 0), InputEvent(1, 10, E.EV_SYN, E.SYN_REPORT, 0)]


def hold(mod: int, *codes: int) -> list[InputEvent]:
    """Keys typed while the modifier *mod* is held down."""
    evs = [InputEvent(1, 0, E.EV_KEY, mod, 1)]
    for c in codes:
        evs += press(c)
    return [*evs, InputEvent(1, 20, E.EV_KEY, mod, 0)]


def keys(*names: str) -> list[InputEvent]:
    return [ev for n in names for ev in press(getattr(E, f"KEY_{n}"))]


def typed(layout: str, events: list[InputEvent]) -> list[str]:
    d = KeyDecoder(layout)
    return [t for ev in events if (t := d.feed(ev)) is not None]


DIGIT_KEYS = [getattr(E, f"KEY_{d}") for d in "1234567890"]


@pytest.mark.parametrize(("layout", "events", "text"), [
    ("us", keys("A", "B", "1", "2") + hold(E.KEY_LEFTSHIFT, E.KEY_2) + keys("MINUS", "ENTER"),
     "ab12@-"),
    ("us", hold(E.KEY_RIGHTSHIFT, E.KEY_T, E.KEY_K, E.KEY_SLASH) + keys("KP4", "KP2", "KPENTER"),
     "TK?42"),
    ("uk", hold(E.KEY_LEFTSHIFT, E.KEY_2, E.KEY_3, E.KEY_APOSTROPHE) + keys("BACKSLASH", "ENTER"),
     '"£@#'),
    ("uk", keys("1", "2") + hold(E.KEY_RIGHTALT, E.KEY_4) + keys("TAB"), "12€"),
    ("de", keys("Y", "Z") + hold(E.KEY_RIGHTALT, E.KEY_Q) + keys("SLASH", "MINUS", "ENTER"),
     "zy@-ß"),
    ("de", hold(E.KEY_LEFTSHIFT, E.KEY_7, E.KEY_0, E.KEY_Y) + keys("1", "TAB"), "/=Z1"),
    ("de", keys("SEMICOLON", "APOSTROPHE", "LEFTBRACE", "RIGHTBRACE", "ENTER"), "öäü+"),
    ("fr", keys("Q", "A", "W", "Z", "SEMICOLON", "M", "ENTER"), "aqzwm,"),
    ("fr", keys(*"1234567890") + keys("ENTER"), "&é\"'(-è_çà"),
    ("fr", hold(E.KEY_LEFTSHIFT, *DIGIT_KEYS) + keys("ENTER"), "1234567890"),
    ("fr", hold(E.KEY_RIGHTALT, E.KEY_0) + keys("KP7", "TAB"), "@7"),
])
def test_layouts(layout: str, events: list[InputEvent], text: str) -> None:
    assert typed(layout, events) == [text]


def test_caps_lock_toggles_and_shift_inverts_it() -> None:
    evs = (keys("CAPSLOCK", "A") + hold(E.KEY_LEFTSHIFT, E.KEY_B)
           + keys("1", "CAPSLOCK", "C", "ENTER"))
    assert typed("us", evs) == ["Ab1c"]
    assert typed("fr", keys("CAPSLOCK", "2", "Q", "ENTER")) == ["ÉA"]
    held = [InputEvent(1, 0, E.EV_KEY, E.KEY_CAPSLOCK, v) for v in (1, 2, 2, 0)]
    assert typed("us", held + keys("X", "ENTER")) == ["X"]  # autorepeat does not toggle again


@pytest.mark.parametrize(("layout", "events", "text"), [
    ("de", keys("GRAVE", "SPACE", "A", "ENTER"), "^a"),       # dead ^ + space: ^ itself
    ("de", keys("GRAVE", "E", "ENTER"), "ê"),                 # dead ^ + vowel: composed
    ("de", keys("EQUAL", "E") + hold(E.KEY_LEFTSHIFT, E.KEY_EQUAL, E.KEY_A) + keys("TAB"),
     "éÀ"),
    ("de", keys("GRAVE", "B", "ENTER"), "^b"),                # nothing to compose: both
    ("de", keys("GRAVE", "GRAVE", "ENTER"), "^^"),
    ("fr", keys("LEFTBRACE", "E") + hold(E.KEY_LEFTSHIFT, E.KEY_LEFTBRACE, E.KEY_U)
     + keys("ENTER"), "êÜ"),
    ("fr", keys("A", "LEFTBRACE", "ENTER"), "q^"),            # pending at the end: itself
    ("fr", hold(E.KEY_RIGHTALT, E.KEY_9) + keys("E", "ENTER"), "^e"),  # AltGr+9 ^ is not dead
])
def test_dead_keys(layout: str, events: list[InputEvent], text: str) -> None:
    assert typed(layout, events) == [text]


@pytest.mark.parametrize("layout", ["us", "uk", "de", "fr"])
def test_gs_separator_two_ways(layout: str) -> None:
    evs = (keys("KP0", "KP1") + hold(E.KEY_LEFTCTRL, E.KEY_RIGHTBRACE) + keys("KP1", "KP0")
           + hold(E.KEY_LEFTALT, E.KEY_KP0, E.KEY_KP2, E.KEY_KP9) + keys("KP9")
           + hold(E.KEY_RIGHTCTRL, E.KEY_RIGHTBRACE) + keys("ENTER"))
    assert typed(layout, evs) == ["01\x1d10\x1d9\x1d"]


def test_autorepeat_sync_and_empty_codes() -> None:
    evs = [InputEvent(1, 0, E.EV_MSC, E.MSC_SCAN, 30), InputEvent(1, 0, E.EV_KEY, E.KEY_A, 1),
           InputEvent(1, 0, E.EV_KEY, E.KEY_A, 2), InputEvent(1, 0, E.EV_KEY, E.KEY_A, 0),
           InputEvent(1, 0, E.EV_LED, E.LED_CAPSL, 1)]
    assert typed("us", evs + keys("ENTER", "ENTER", "TAB")) == ["aa"]


def test_dropped_events_discard_the_code_being_typed() -> None:
    lost = [InputEvent(1, 0, E.EV_KEY, E.KEY_LEFTSHIFT, 1),
            InputEvent(1, 0, E.EV_SYN, E.SYN_DROPPED, 0)]
    assert typed("us", keys("A", "B") + lost + keys("C", "ENTER", "D", "ENTER")) == ["d"]


def test_an_endless_code_stays_bounded() -> None:
    d = KeyDecoder("us")
    for ev in keys(*["A"] * (MAX_CODE + 50)):
        d.feed(ev)
    assert len(d.buffer) == MAX_CODE  # still longer than any barcode: the normaliser rejects it


def test_unknown_layout() -> None:
    with pytest.raises(ValueError, match="known: de, fr, uk, us"):
        KeyDecoder("dvorak")
    with pytest.raises(ValueError, match="dvorak"):
        HidScanner("x", "/dev/input/event0", lambda raw, t: None, layout="dvorak")


def test_scanner_feed_hands_on_utf8_frames_and_survives_a_bad_handler(caplog) -> None:
    got: list[tuple[bytes, float]] = []

    def on_frame(raw: bytes, t: float) -> None:
        if raw == b"BAD":
            raise RuntimeError("handler bug")
        got.append((raw, t))

    s = HidScanner("wedge", "/dev/null", on_frame, layout="fr")
    s.feed(hold(E.KEY_LEFTSHIFT, E.KEY_B, E.KEY_Q, E.KEY_D) + keys("ENTER") + keys("2", "TAB"),
           12.5)
    assert got == [("é".encode(), 12.5)]
    assert "3-byte frame" in caplog.text and "BAD" not in caplog.text


class FakeDevice:
    """Stands in for evdev.InputDevice: a real pipe fd for select, scripted real events."""

    def __init__(self, batches: list[list[InputEvent] | Exception], *,
                 grab_error: OSError | None = None) -> None:
        self.r, self.w = os.pipe()
        self.fd = self.r
        self.batches = batches
        self.grab_error = grab_error
        self.calls: list[str] = []
        self.unplugged = False
        for _ in batches:
            os.write(self.w, b"x")

    def grab(self) -> None:
        self.calls.append("grab")
        if self.grab_error:
            raise self.grab_error

    def ungrab(self) -> None:
        self.calls.append("ungrab")
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")  # as a real unplugged device does

    def read(self) -> Iterator[InputEvent]:
        os.read(self.r, 1)
        item = self.batches.pop(0)
        if isinstance(item, Exception):
            self.unplugged = isinstance(item, OSError)
            raise item
        return iter(item)

    def close(self) -> None:
        self.calls.append("close")
        if self.fd != -1:  # like evdev: closing twice is harmless
            os.close(self.r)
            os.close(self.w)
            self.fd = -1


class Opener:
    """The ``open_device`` seam: hands out scripted devices, or raises when 'unplugged'."""

    def __init__(self, *devices: FakeDevice | OSError) -> None:
        self.script = list(devices)
        self.opened: list[str] = []

    def __call__(self, spec: str) -> FakeDevice:
        self.opened.append(spec)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, OSError):
            raise item
        return item


@pytest.fixture
def frames() -> queue.Queue[bytes]:
    return queue.Queue()


def start(frames: queue.Queue[bytes], opener: Opener, **kw: object) -> HidScanner:
    s = HidScanner("wedge", "name:Scanner", lambda raw, t: frames.put(raw),
                   open_device=opener, reopen_backoff=(0.01, 0.02), **kw)  # type: ignore[arg-type]
    s.start()
    return s


def test_grab_read_unplug_replug(frames, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    first = FakeDevice([keys("A", "1", "ENTER"), keys("B"),
                        OSError(errno.ENODEV, "No such device")])
    second = FakeDevice([keys("C", "2", "TAB")])
    gone = FileNotFoundError(errno.ENOENT, "no input device named like 'Scanner'")
    opener = Opener(first, gone, gone, gone, second)
    s = start(frames, opener)
    try:
        assert frames.get(timeout=3) == b"a1"
        assert frames.get(timeout=3) == b"c2"  # the half-typed "b" went with the device
        assert wait_until(lambda: s.connected and s.last_error is None)
    finally:
        s.stop()
    assert first.calls == ["grab", "ungrab", "close"]  # released in finally, though unplugged
    assert second.calls == ["grab", "ungrab", "close"]
    assert opener.opened == ["name:Scanner"] * 5   # found again by name, with backoff
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert warnings == ["scanner wedge lost: [Errno 19] No such device; reopening"]
    assert infos == ["scanner wedge back"]


def test_a_flapping_device_is_still_logged_once(frames, caplog) -> None:
    # Reopening succeeds but the first read fails: still one warning, and
    # "back" only once the device really works again.
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    enodev = OSError(errno.ENODEV, "No such device")
    flappy = [FakeDevice([enodev]) for _ in range(4)]
    good = FakeDevice([keys("F", "ENTER")])
    s = start(frames, Opener(*flappy, good))
    try:
        assert frames.get(timeout=3) == b"f"
    finally:
        s.stop()
    assert all(d.calls == ["grab", "ungrab", "close"] for d in flappy)
    levels = [r.levelno for r in caplog.records if r.levelno >= logging.INFO]
    assert levels == [logging.WARNING, logging.INFO]


def test_unexpected_error_still_ungrabs_and_reopens(frames, caplog) -> None:
    first = FakeDevice([ValueError("driver oddity")])
    second = FakeDevice([keys("Z", "ENTER")])
    s = start(frames, Opener(first, second))
    try:
        assert frames.get(timeout=3) == b"z"
    finally:
        s.stop()
    assert first.calls == ["grab", "ungrab", "close"]
    assert "driver oddity" in caplog.text


def test_busy_device_is_not_ungrabbed_and_is_retried(frames, caplog) -> None:
    busy = FakeDevice([], grab_error=OSError(errno.EBUSY, "Device or resource busy"))
    free = FakeDevice([keys("K", "ENTER")])
    s = start(frames, Opener(busy, free))
    try:
        assert frames.get(timeout=3) == b"k"
        assert "Device or resource busy" in caplog.text  # grabbed by another program
    finally:
        s.stop()
    assert busy.calls == ["grab", "close"]  # never grabbed, so nothing to release


def test_without_grab(frames) -> None:
    dev = FakeDevice([keys("N", "ENTER")])
    s = start(frames, Opener(dev), grab=False)
    try:
        assert frames.get(timeout=3) == b"n"
    finally:
        s.stop()
    assert dev.calls == ["close"]


def test_stop_is_prompt_and_releases_the_device(frames) -> None:
    dev = FakeDevice([])
    s = start(frames, Opener(dev))
    assert wait_until(lambda: s.connected)
    began = time.monotonic()
    s.stop(timeout=1.0)
    assert time.monotonic() - began < 0.5
    assert not s.connected and dev.calls == ["grab", "ungrab", "close"]


def test_stop_releases_the_device_even_when_the_thread_is_stuck() -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(raw: bytes, t: float) -> None:
        entered.set()
        release.wait(3)

    dev = FakeDevice([keys("S", "ENTER")])
    s = HidScanner("wedge", "/dev/input/event3", stuck, open_device=Opener(dev))
    s.start()
    assert entered.wait(3)
    with pytest.raises(RuntimeError, match="did not stop"):
        s.stop(timeout=0.05)
    assert dev.calls == ["grab", "close"]  # closing the fd ends the grab too
    release.set()
    s.stop()
    assert dev.calls[-2:] == ["ungrab", "close"]


def test_find_device_by_name(monkeypatch) -> None:
    names = {"/dev/input/event2": "Keyboard", "/dev/input/event7": "Honeywell SCANNER 1900"}

    class Dev:
        def __init__(self, path: str) -> None:
            if path not in names:
                raise PermissionError(errno.EACCES, "Permission denied")
            self.name = names[path]

        def close(self) -> None:
            pass

    monkeypatch.setattr(hid.evdev, "list_devices", lambda: ["/dev/input/event9", *names])
    monkeypatch.setattr(hid.evdev, "InputDevice", Dev)
    assert find_device("name:scanner") == "/dev/input/event7"
    assert find_device("/dev/input/by-id/usb-x-event-kbd") == "/dev/input/by-id/usb-x-event-kbd"
    with pytest.raises(FileNotFoundError, match="Zebra"):
        find_device("name:Zebra")


def test_uinput_device_when_available(frames) -> None:
    try:
        ui = evdev.UInput(name="turnstiled-test-scanner")
    except (OSError, evdev.UInputError) as exc:
        pytest.skip(f"no usable /dev/uinput here ({exc}); the loop is covered by FakeDevice")
    s = HidScanner("ui", "name:turnstiled-test-scanner", lambda raw, t: frames.put(raw))
    try:
        s.start()
        assert wait_until(lambda: s.connected)
        for code in (E.KEY_X, E.KEY_9, E.KEY_ENTER):
            ui.write(E.EV_KEY, code, 1)
            ui.write(E.EV_KEY, code, 0)
            ui.syn()
        assert frames.get(timeout=3) == b"x9"
    finally:
        s.stop()
        ui.close()
