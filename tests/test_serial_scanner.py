"""The serial reader through real pseudo-terminals and pyserial."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from turnstiled.scanners.decode import normalise
from turnstiled.scanners.serial import SerialScanner

LOGGER = "turnstiled.scanners.serial"


class Pty:
    """A pseudo-terminal: the test writes to the master, the reader opens the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Callable[[], Pty]]:
    made: list[Pty] = []

    def make() -> Pty:
        made.append(Pty())
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture
def frames() -> queue.Queue[tuple[bytes, float]]:
    return queue.Queue()


@pytest.fixture
def reader(frames: queue.Queue[tuple[bytes, float]]) -> Iterator[Callable[..., SerialScanner]]:
    """Start a reader on a URL; wait until its port is open; stop it at teardown."""
    started: list[SerialScanner] = []

    def start(url: str, *, wait: bool = True, **kw: object) -> SerialScanner:
        kw.setdefault("on_frame", lambda raw, t: frames.put((raw, t)))
        s = SerialScanner("entry", url, **kw)  # type: ignore[arg-type]
        s.start()
        started.append(s)
        # pyserial discards pending input when it opens the port (as a real
        # scanner's power-up noise should be): write only once it is open.
        if wait:
            assert wait_until(lambda: s.connected)
        return s

    yield start
    for s in started:
        s.stop()


def nothing_more(frames: queue.Queue[tuple[bytes, float]]) -> bool:
    try:
        frames.get(timeout=0.1)
    except queue.Empty:
        return True
    return False


@pytest.mark.parametrize(("term", "data"), [
    ("CR", b"ABC123\r"), ("LF", b"ABC123\n"), ("CRLF", b"ABC123\r\n"), ("TAB", b"ABC123\t"),
])
def test_frame_split_across_writes(pty, reader, frames, term: str, data: bytes) -> None:
    p = pty()
    reader(p.path, terminator=term, baudrate=115200)
    before = time.monotonic()
    p.write(data[:4])
    assert nothing_more(frames)  # half a code is not a frame
    p.write(data[4:])
    raw, t = frames.get(timeout=3)
    assert raw == b"ABC123"
    assert before < t <= time.monotonic()  # when the terminator was read, monotonic clock
    assert nothing_more(frames)


@pytest.mark.parametrize("term", ["CR", "LF"])
def test_crlf_scanner_on_a_single_byte_terminator(pty, reader, frames, term: str) -> None:
    p = pty()
    reader(p.path, terminator=term)
    p.write(b"ONE\r\nTWO\r")
    p.write(b"\nTHREE\r\n")
    assert [frames.get(timeout=3)[0] for _ in range(3)] == [b"ONE", b"TWO", b"THREE"]
    assert nothing_more(frames)  # no empty or garbage frames from the other half


def test_aim_prefix_passes_through_raw(pty, reader, frames) -> None:
    p = pty()
    reader(p.path)
    p.write(b"]Q1\\000026T-4711\r")
    raw, _ = frames.get(timeout=3)
    assert raw == b"]Q1\\000026T-4711"  # the reader frames; normalising is separate
    assert normalise(raw).text == "T-4711"


def test_idle_gap_ends_frames_without_terminator(pty, reader, frames) -> None:
    p = pty()
    reader(p.path, terminator="NONE", idle_gap=0.05)
    p.write(b"]Q1NOTERM")
    raw, t = frames.get(timeout=3)
    assert raw == b"]Q1NOTERM"
    assert t <= time.monotonic()
    p.write(b"SECOND")
    assert frames.get(timeout=3)[0] == b"SECOND"
    assert nothing_more(frames)


def test_pyserial_url(reader, frames) -> None:
    s = reader("loop://")
    # loop:// echoes what is written: reach the port through the reader's own handle
    s._port.write(b"LOOP1\r")
    assert frames.get(timeout=3)[0] == b"LOOP1"


def test_device_vanishes_and_returns(tmp_path: Path, pty, reader, frames, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    link = tmp_path / "scanner"  # as /dev/serial/by-id/... is a symlink to /dev/ttyUSBn
    first = pty()
    link.symlink_to(first.path)
    s = reader(str(link), reopen_backoff=(0.01, 0.02))
    first.write(b"FIRST\r")
    assert frames.get(timeout=3)[0] == b"FIRST"

    link.unlink()
    first.close()  # unplugged: reads fail, and reopening fails while it is gone
    assert wait_until(lambda: not s.connected)
    assert wait_until(lambda: sum("still failing" in r.getMessage()
                                  for r in caplog.records) >= 3)
    assert s.last_error

    second = pty()
    link.symlink_to(second.path)
    assert wait_until(lambda: s.connected)
    second.write(b"SECOND\r")
    assert frames.get(timeout=3)[0] == b"SECOND"
    assert wait_until(lambda: s.last_error is None)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and warnings[0].startswith("scanner entry lost: ")
    assert infos == ["scanner entry back"]
    assert not any("FIRST" in r.getMessage() or "SECOND" in r.getMessage()
                   for r in caplog.records)


def test_absent_at_start_is_warned_once_then_read(tmp_path: Path, pty, reader, frames,
                                                  caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    link = tmp_path / "scanner"
    s = reader(str(link), wait=False, reopen_backoff=(0.01, 0.02))
    assert wait_until(lambda: sum("still failing" in r.getMessage()
                                  for r in caplog.records) >= 3)
    assert not s.connected and "No such file" in (s.last_error or "")
    p = pty()
    link.symlink_to(p.path)
    assert wait_until(lambda: s.connected)
    p.write(b"LATE\r")
    assert frames.get(timeout=3)[0] == b"LATE"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot open" in warnings[0]


def test_a_failing_handler_does_not_stop_the_reader(pty, reader, frames, caplog) -> None:
    def on_frame(raw: bytes, t: float) -> None:
        if raw == b"BOOM-CODE":
            raise RuntimeError("handler bug")
        frames.put((raw, t))

    p = pty()
    reader(p.path, on_frame=on_frame)
    p.write(b"BOOM-CODE\rNEXT\r")
    assert frames.get(timeout=3)[0] == b"NEXT"
    assert "frame handler failed on a 9-byte frame" in caplog.text
    assert "BOOM-CODE" not in caplog.text  # never a barcode in the log


def test_stop_is_prompt_and_closes_the_port(pty, reader) -> None:
    p = pty()
    s = reader(p.path)
    began = time.monotonic()
    s.stop(timeout=1.0)
    assert time.monotonic() - began < 0.5
    assert not s.connected and not s._thread.is_alive()
    assert s._port is None


def test_stop_raises_when_the_thread_will_not_die(pty, reader) -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(raw: bytes, t: float) -> None:
        entered.set()
        release.wait(3)

    p = pty()
    s = reader(p.path, on_frame=stuck)
    p.write(b"X\r")
    assert entered.wait(3)
    port = s._port
    with pytest.raises(RuntimeError, match="did not stop"):
        s.stop(timeout=0.05)
    assert not port.is_open  # the device is released all the same
    release.set()
    s.stop()  # now it ends, quietly


@pytest.mark.parametrize(("kw", "match"), [
    ({"terminator": "ETX"}, "terminator"), ({"parity": "X"}, "parity"),
    ({"bytesize": 9}, "bytesize"), ({"stopbits": 3}, "stopbits"),
    ({"idle_gap": 0}, "idle_gap"), ({"reopen_backoff": (1.0, 0.5)}, "reopen_backoff"),
])
def test_bad_settings_fail_at_construction(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SerialScanner("bad", "loop://", lambda raw, t: None, **kw)
