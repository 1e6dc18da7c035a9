"""Bad data files at start: the cache is rebuilt, the journal is never touched, a bad disk stops."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from turnstiled import cli, datafiles
from turnstiled.cache import SCHEMA_VERSION, Cache
from turnstiled.rules import Ticket


def run_daemon(cfg: Path, *args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([*(wrap or []), sys.executable, "-m", "turnstiled.daemon", *args,
                           "--config", str(cfg)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def write_config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(f"[paths]\ndata_dir = '{data}'\ncontrol_socket = '{tmp_path}/ctl.sock'\n"
                   "[[scanner]]\nname = 's'\ntype = 'serial'\nurl = 'loop://'\n")
    return cfg


def rebuilds(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "turnstiled.datafiles" and r.levelno == logging.WARNING]


# -- cache.db ---------------------------------------------------------------
def test_corrupt_cache_is_moved_aside_rebuilt_and_the_guest_list_alarmed(tmp_path, caplog):
    path = tmp_path / "cache.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    caplog.set_level(logging.WARNING)
    cache = Cache(path)
    cache.upsert([Ticket("vivenu", "V1")])
    assert cache.lookup("V1") is not None
    cache.close()
    [line] = rebuilds(caplog)
    assert str(path) in line and "re-import" in line
    [aside] = tmp_path.glob("cache.db.broken-*")
    assert aside.read_bytes()[:16] == b"SQLite format 3\x00"  # kept, not deleted
    alarm = datafiles.cache_alarm(path)
    assert alarm and "re-import" in alarm
    # The alarm lasts until the guest list is imported again.
    Cache(path).close()
    assert datafiles.cache_alarm(path) == alarm
    guests = tmp_path / "guests.csv"
    guests.write_text("barcode,name\nG1,Ann\n")
    cfg = tmp_path / "t.toml"
    cfg.write_text(f"[paths]\ndata_dir = '{tmp_path}'\n")
    assert cli.main(["import", "--config", str(cfg), str(guests)]) == 0
    assert datafiles.cache_alarm(path) is None
    assert len(rebuilds(caplog)) == 1


def test_foreign_cache_is_rebuilt_without_an_alarm(tmp_path, caplog):
    path = tmp_path / "cache.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    caplog.set_level(logging.WARNING)
    Cache(path).close()
    [line] = rebuilds(caplog)
    assert "not a ticket cache" in line and "0 imported guest-list row(s) kept" in line
    assert datafiles.cache_alarm(path) is None
    assert list(tmp_path.glob("cache.db.broken-*"))


def test_old_layout_cache_keeps_the_imported_rows(tmp_path, caplog):
    path = tmp_path / "cache.db"
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE tickets (barcode TEXT, source TEXT, event TEXT, status TEXT, name TEXT,
                              PRIMARY KEY (barcode, source));
        INSERT INTO tickets VALUES ('G1', 'local', 'e1', 'valid', 'Ann');
        INSERT INTO tickets VALUES ('G2', 'local', '', 'invalid', 'Bob');
        INSERT INTO tickets VALUES ('V1', 'vivenu', '', 'valid', '');
        PRAGMA user_version = {SCHEMA_VERSION - 1};
    """)
    conn.close()
    caplog.set_level(logging.WARNING)
    cache = Cache(path)
    try:
        assert cache.lookup("G1").name == "Ann" and cache.lookup("G1").event == "e1"
        assert cache.lookup("G2").status == "invalid"
        assert cache.lookup("V1") is None  # the cloud's tickets come back with the next sync
    finally:
        cache.close()
    [line] = rebuilds(caplog)
    assert "older layout" in line and "2 imported guest-list row(s) kept" in line
    assert datafiles.cache_alarm(path) is None


def test_a_good_cache_is_left_alone(tmp_path, caplog):
    path = tmp_path / "cache.db"
    Cache(path).close()
    caplog.set_level(logging.WARNING)
    Cache(path).close()
    assert rebuilds(caplog) == [] and not list(tmp_path.glob("cache.db.broken-*"))


# -- journal.db -------------------------------------------------------------
def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("spoil", [
    lambda p: p.write_bytes(b"this is not a database\n" * 100),
    lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192),
    _foreign,
], ids=["garbage", "corrupt", "foreign"])
@pytest.mark.parametrize("args", [[], ["--check"]], ids=["daemon", "check"])
def test_bad_journal_stops_start_up_and_is_never_touched(tmp_path, spoil, args):
    data = tmp_path / "data"
    data.mkdir()
    journal = data / "journal.db"
    spoil(journal)
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    proc = run_daemon(write_config(tmp_path, data), *args)
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(journal) in lines[0] and "move the file aside" in lines[0]
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in data.iterdir()) == ["journal.db"]


# -- the data directory -----------------------------------------------------
def _mount_namespace() -> list[str] | None:
    """A private mount namespace (unprivileged) in which the test may mount a tmpfs."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    ok = subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False)
    return [unshare, "-rm"] if ok.returncode == 0 else None


@pytest.mark.parametrize(("options", "says"), [
    ("ro", "is not writable (Read-only file system)"),
    ("size=256k", "the disk is full"),
])
def test_read_only_or_full_data_dir_stops_start_up(tmp_path, options, says):
    ns = _mount_namespace()
    if ns is None:
        pytest.skip("no unprivileged mount namespace here")
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(tmp_path, data)
    script = (f"mount -t tmpfs -o {options} tmpfs '{data}' && exec \"$@\"")
    proc = run_daemon(cfg, wrap=[*ns, "sh", "-c", script, "sh"])
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(data) in lines[0] and says in lines[0]
