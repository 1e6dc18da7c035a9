"""The serial reader through real pseudo-terminals and pyserial."""

from __future__ import annotations

import logging
import os
import queue
import time

import pytest

from tests.conftest import wait_until
from turnstiled.scanners.serial import SerialScanner


def open_pty():
    master, slave = os.openpty()
    return master, slave, os.ttyname(slave)


@pytest.fixture
def frames():
    q: queue.Queue = queue.Queue()
    return q


def reader(name, url, frames, **kw):
    s = SerialScanner(name, url, lambda raw, t: frames.put(raw), **kw)
    s.start()
    # pyserial discards pending input when it opens the port, as a real
    # scanner's power-up noise should be: write only once it is open.
    assert wait_until(lambda: s.connected)
    return s


@pytest.mark.parametrize(("term", "data"), [
    ("CR", b"ABC123\r"), ("LF", b"ABC123\n"), ("CRLF", b"ABC123\r\n"), ("TAB", b"ABC123\t"),
])
def test_terminators(frames, term, data):
    master, slave, path = open_pty()
    s = reader("t", path, frames, terminator=term, baudrate=115200)
    os.write(master, data[:3])
    os.write(master, data[3:])
    assert frames.get(timeout=3) == b"ABC123"
    s.stop()
    assert not s.connected
    os.close(master)
    os.close(slave)


def test_idle_gap_framing(frames):
    master, slave, path = open_pty()
    s = reader("t", path, frames, terminator="NONE", idle_gap=0.05)
    os.write(master, b"]Q1NOTERM")
    assert frames.get(timeout=3) == b"]Q1NOTERM"  # raw frame: normalising is separate
    s.stop()
    os.close(master)
    os.close(slave)


def test_pyserial_url(frames):
    s = reader("loop", "loop://", frames)
    # loop:// echoes what is written: reach the port through the reader's own handle
    s._port.write(b"LOOP1\r")
    assert frames.get(timeout=3) == b"LOOP1"
    s.stop()


def test_device_vanishes_and_returns(tmp_path, frames, caplog):
    caplog.set_level(logging.INFO, logger="turnstiled.scanners.serial")
    link = tmp_path / "scanner"
    m1, s1, p1 = open_pty()
    link.symlink_to(p1)
    s = reader("gone", str(link), frames, reopen_backoff=(0.02, 0.05))
    os.write(m1, b"FIRST\r")
    assert frames.get(timeout=3) == b"FIRST"
    link.unlink()
    os.close(m1)  # the device disappears: reads fail, reopening fails
    os.close(s1)
    assert wait_until(lambda: not s.connected)
    time.sleep(0.3)  # several failed reopen attempts
    m2, s2, p2 = open_pty()
    link.symlink_to(p2)
    assert wait_until(lambda: s.connected)
    os.write(m2, b"SECOND\r")
    assert frames.get(timeout=3) == b"SECOND"
    s.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 2, [r.getMessage() for r in warnings]  # lost + cannot open: once
    assert any("back" in r.getMessage() for r in caplog.records)
    os.close(m2)
    os.close(s2)
