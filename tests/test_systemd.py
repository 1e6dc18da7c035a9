"""The daemon as systemd runs it: Type=notify readiness, watchdog pings, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def test_ready_watchdog_and_sigterm(tmp_path: Path):
    master, slave = os.openpty()
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(f"""
[paths]
data_dir = "{tmp_path}/data"
control_socket = "{tmp_path}/ctl.sock"
[[scanner]]
name = "s"
type = "serial"
url = "{os.ttyname(slave)}"
""")
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000",
           "GPIOZERO_PIN_FACTORY": "mock"}
    proc = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon", "--config", str(cfg)],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        pings = 0
        while pings < 3:
            if "WATCHDOG=1" in sock.recv(4096).decode():
                pings += 1
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in sock.recv(4096).decode():
            pass
        assert proc.wait(5) == 0
        assert time.monotonic() - t0 < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        os.close(master)
        os.close(slave)


def test_notify_reaches_a_path_or_an_abstract_socket_and_says_when_it_cannot(
        tmp_path: Path, monkeypatch):
    from turnstiled import sdnotify
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False  # not run by systemd
    name = f"turnstiled-test-{os.getpid()}-{time.monotonic_ns()}"
    for where, address in ((str(tmp_path / "n.sock"), str(tmp_path / "n.sock")),
                           ("@" + name, "\0" + name)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.settimeout(20)
            monkeypatch.setenv("NOTIFY_SOCKET", where)
            assert sdnotify.notify("STATUS=online · 3 tickets") is True
            assert sock.recv(4096).decode() == "STATUS=online · 3 tickets"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.notify("WATCHDOG=1") is False  # logged at debug, never raised
