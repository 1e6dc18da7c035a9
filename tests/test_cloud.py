"""The cloud process: a fresh interpreter of its own, restarted when it dies, alone."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import make_config, wait_until
from turnstiled.cloud import Channel, CloudProcess
from turnstiled.sim import start_emulator


def children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out += [int(c) for c in fh.read().split()]
    return out


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_channel_carries_messages_and_ends_with_eoferror():
    a, b = socket.socketpair()
    left, right = Channel(a), Channel(b)
    left.send(("sync", True))
    # Longer than the socket's buffer: sent by another thread while this one reads.
    sender = threading.Thread(target=left.send, args=({"big": "x" * 1_000_000},))
    sender.start()
    assert right.poll(5)
    assert right.recv() == ("sync", True)
    assert right.recv() == {"big": "x" * 1_000_000}
    sender.join(10)
    assert not right.poll(0.01)
    left.close()
    assert right.poll(5)
    with pytest.raises(EOFError):
        right.recv()
    right.close()


@pytest.fixture
def emu():
    with start_emulator("vivenu", tickets=50, seed=3) as e:
        yield e


def synced(cloud: CloudProcess) -> bool:
    return cloud.status()["sources"].get("vivenu", {}).get("last_full") is not None


def test_cloud_child_is_one_fresh_interpreter_syncs_and_is_restarted(tmp_path, emu):
    cfg = make_config(tmp_path, sources={"vivenu": {
        "token": emu.credentials["token"], "base_url": emu.base_url, "sync_interval_s": 0.2}})
    before = set(children(os.getpid()))
    cloud = CloudProcess(cfg)
    cloud.start()
    try:
        assert wait_until(lambda: synced(cloud), 30)
        first = cloud.pid
        assert first is not None
        # Only the child: no multiprocessing resource tracker or other helper beside it.
        assert set(children(os.getpid())) - before == {first}
        assert cmdline(first)[1:3] == ["-m", "turnstiled.cloud"]
        assert Path(f"/proc/{first}/comm").read_text().strip() == "turnstiled-sync"
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: cloud.pid not in (None, first), 30)
        second = cloud.pid
        # The restarted child reports again and stays (PR_SET_PDEATHSIG does not
        # fire: the thread that started it lives on).
        reported = cloud.reported_at
        assert wait_until(lambda: cloud.reported_at > reported, 30)
        reported = cloud.reported_at
        assert wait_until(lambda: cloud.reported_at > reported, 30)
        assert cloud.pid == second and cloud._proc.poll() is None
    finally:
        cloud.stop()
    assert cloud._proc.poll() is not None
