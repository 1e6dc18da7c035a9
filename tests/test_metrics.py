"""Prometheus metrics of a running gate: scraped over a real socket, and the textfile.

The end-to-end test runs ``turnstiled`` as a real process (mock pins, a
serial scanner on a pty, the vivenu emulator) and reads its endpoint the
way Prometheus does, after scans and a failed sync.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_config, wait_until
from turnstiled import cli
from turnstiled.cache import Cache
from turnstiled.control import request
from turnstiled.errors import ConfigError, ControlError
from turnstiled.figures import version
from turnstiled.journal import Scan
from turnstiled.metrics import Metrics
from turnstiled.rules import Decision, Ticket
from turnstiled.settings import parse_listen
from turnstiled.sim import start_emulator


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, labels): value}`` of one exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(sampled: dict, name: str, **labels: str) -> float | None:
    return sampled.get((name, frozenset(labels.items())))


def scrape(url: str) -> dict:
    return samples(httpx.get(url, timeout=5).text)


# -- a running daemon, scraped -------------------------------------------------
@pytest.fixture
def daemon_proc(tmp_path):
    procs: list[subprocess.Popen] = []
    fds: list[int] = []

    def start(toml: str) -> tuple[subprocess.Popen, int, Path]:
        master, slave = os.openpty()
        fds.extend((master, slave))
        cfg = tmp_path / "turnstiled.toml"
        cfg.write_text(toml + f"""
[paths]
data_dir = "{tmp_path}/data"
control_socket = "{tmp_path}/ctl.sock"
[log]
level = "info"
target = "stderr"
[[scanner]]
name = "entry"
type = "serial"
url = "{os.ttyname(slave)}"
""")
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
        env.pop("NOTIFY_SOCKET", None)
        log = tmp_path / "daemon.log"
        proc = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon", "--config", str(cfg)],
                                env=env, stdout=subprocess.DEVNULL, stderr=log.open("a"))
        procs.append(proc)
        return proc, master, log

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    for fd in fds:
        os.close(fd)


def status(sock: Path) -> dict[str, Any] | None:
    try:
        return request(sock, "status", timeout=2)
    except ControlError:
        return None


def test_a_running_daemon_is_scraped_after_scans_and_a_failed_sync(tmp_path, daemon_proc):
    cache = Cache(tmp_path / "data" / "cache.db")
    cache.upsert([Ticket("local", "LOCAL-OK-1"), Ticket("local", "LOCAL-GONE", status="invalid")])
    cache.close()
    sock = tmp_path / "ctl.sock"
    with start_emulator("vivenu", tickets=40, seed=5) as emu:
        proc, master, log = daemon_proc(f"""
[gate]
id = "lane-7"
debounce_s = 0.0
[journal]
upload_batch_delay_s = 0.0
upload_retry_min_s = 0.05
upload_retry_max_s = 0.2
[metrics]
listen = "127.0.0.1:0"
textfile_dir = "{tmp_path}/textfile"
textfile_interval_s = 0.05
[sources.vivenu]
token = "{emu.credentials['token']}"
base_url = "{emu.base_url}"
sync_interval_s = 60.0
online_check = false
timeout_s = 2.0
""")
        (tmp_path / "textfile").mkdir()
        # The endpoint is bound by the metrics thread, maybe after the scanners
        # connected: wait for the address it reports.
        assert wait_until(lambda: (s := status(sock)) is not None
                          and all(x["connected"] for x in s["scanners"])
                          and s["metrics"]["listen"], 30), log.read_text()
        listen = status(sock)["metrics"]["listen"]
        host, port = parse_listen(listen)
        assert host == "127.0.0.1" and port > 0
        url = f"http://{listen}/metrics"

        assert wait_until(lambda: value(scrape(url), "turnstiled_sync_last_ok",
                                        source="vivenu") == 1.0, 30), log.read_text()
        m = scrape(url)
        assert value(m, "turnstiled_tickets", source="vivenu") == len(emu.tickets)
        assert value(m, "turnstiled_tickets", source="local") == 2
        # series of every reason start at 0 for the configured scanner
        assert value(m, "turnstiled_scans_total", result="denied", reason="expired",
                     scanner="entry", direction="in") == 0.0

        # The cloud now fails: uploads get 503, syncs 500.
        emu.faults.add("POST /api/accessusers/scans/*=503")
        emu.faults.add("GET /api/accessusers/*=500")
        valid = next(d["barcode"] for d in emu.tickets.values() if d["status"] == "VALID")
        for code in (b"LOCAL-OK-1", b"LOCAL-GONE", b"NOT-A-TICKET", valid.encode()):
            os.write(master, code + b"\r")
        request(sock, "sync")

        def failed_state() -> bool:
            m = scrape(url)
            return (value(m, "turnstiled_sync_last_ok", source="vivenu") == 0.0
                    and value(m, "turnstiled_scan_to_relay_seconds_count") == 4.0
                    and (value(m, "turnstiled_upload_failures_total", source="vivenu",
                               kind="server_error") or 0) >= 1)
        assert wait_until(failed_state, 30), log.read_text()
        text = httpx.get(url, timeout=5).text
        m = samples(text)
        scans = {"scanner": "entry", "direction": "in"}
        assert value(m, "turnstiled_scans_total", result="granted", reason="granted",
                     **scans) == 2.0
        assert value(m, "turnstiled_scans_total", result="denied", reason="invalid",
                     **scans) == 1.0
        assert value(m, "turnstiled_scans_total", result="denied", reason="unknown",
                     **scans) == 1.0
        assert value(m, "turnstiled_scans_total", result="denied", reason="expired",
                     **scans) == 0.0
        assert value(m, "turnstiled_scan_to_relay_seconds_bucket", le="+Inf") == 4.0
        assert value(m, "turnstiled_journal_write_failures_total") == 0.0
        # the failed sync: outcome 0, the age still that of the last good one
        age = value(m, "turnstiled_sync_age_seconds", source="vivenu")
        assert age is not None and 0 <= age < 600
        assert value(m, "turnstiled_upload_backlog", source="vivenu") == 1.0
        assert value(m, "turnstiled_upload_oldest_pending_age_seconds", source="vivenu") > 0
        assert value(m, "turnstiled_upload_failures_total", source="vivenu",
                     kind="auth_refused") == 0.0
        assert value(m, "turnstiled_scanner_connected", scanner="entry") == 1.0
        assert value(m, "turnstiled_fire_alarm_active") == 0.0
        assert value(m, "turnstiled_build_info", version=version(), gate="lane-7") == 1.0
        assert value(m, "turnstiled_last_scan_timestamp_seconds") > 0
        assert value(m, "process_resident_memory_bytes") > 0  # the HTTP endpoint's extra
        assert value(m, "turnstiled_mesh_connected") is None  # no [mesh], no mesh series
        for code in ("LOCAL-OK-1", "LOCAL-GONE", "NOT-A-TICKET", valid):
            assert code not in text  # never a barcode in a label

        # The cloud recovers: the backlog drains, the sync is good again.
        emu.faults.clear()
        request(sock, "sync")
        assert wait_until(lambda: value(scrape(url), "turnstiled_upload_backlog",
                                        source="vivenu") == 0.0, 30), log.read_text()
        assert wait_until(lambda: value(scrape(url), "turnstiled_sync_last_ok",
                                        source="vivenu") == 1.0, 30)
        m = scrape(url)
        assert value(m, "turnstiled_uploaded_scans_total", source="vivenu") == 1.0

        # the textfile holds the same families (and no process_* of its own)
        prom = (tmp_path / "textfile" / "turnstiled.prom").read_text()
        t = samples(prom)
        assert value(t, "turnstiled_scans_total", result="granted", reason="granted",
                     **scans) == 2.0
        assert not any(name.startswith("process_") for name, _ in t)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


def test_the_textfile_is_never_seen_half_written(tmp_path, daemon_proc, capsys):
    outdir = tmp_path / "textfile"
    outdir.mkdir()
    sock = tmp_path / "ctl.sock"
    proc, master, log = daemon_proc(f"""
[gate]
debounce_s = 0.0
[metrics]
textfile_dir = "{outdir}"
textfile_interval_s = 0.01
""")
    assert wait_until(lambda: (s := status(sock)) is not None
                      and all(x["connected"] for x in s["scanners"]), 30), log.read_text()
    assert status(sock)["metrics"] == {"listen": None, "textfile": str(outdir / "turnstiled.prom"),
                                       "error": None}
    path = outdir / "turnstiled.prom"
    assert wait_until(path.exists, 10)
    assert cli.main(["--config", str(tmp_path / "turnstiled.toml"), "status"]) == 0
    assert f"metrics  {path}" in capsys.readouterr().out
    stop = threading.Event()

    def scan() -> None:  # the file changes while we read it
        while not stop.is_set():
            os.write(master, b"UNKNOWN-CODE\r")
            stop.wait(0.005)
    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    seen: set[float] = set()
    try:
        reads = 0
        while reads < 400 or len(seen) < 5:
            text = path.read_text()
            reads += 1
            assert text.endswith("\n")
            m = samples(text)  # parses: every line whole
            assert value(m, "turnstiled_build_info", version=version(), gate="gate-1") == 1.0
            count = value(m, "turnstiled_scan_to_relay_seconds_count")
            assert count is not None  # the histogram's last line is there
            seen.add(count)
            assert reads < 20000, "the scan count in the textfile never moved"
    finally:
        stop.set()
        scanner.join(5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0, log.read_text()[-3000:]
    assert [p.name for p in outdir.iterdir()] == ["turnstiled.prom"]  # no temp file left


def test_the_endpoint_survives_a_reload(tmp_path, daemon_proc):
    sock = tmp_path / "ctl.sock"
    proc, master, log = daemon_proc("""
[gate]
id = "lane-1"
debounce_s = 0.0
[metrics]
listen = "127.0.0.1:0"
""")
    assert wait_until(lambda: (s := status(sock)) is not None
                      and all(x["connected"] for x in s["scanners"])
                      and s["metrics"]["listen"], 30), log.read_text()
    url = f"http://{status(sock)['metrics']['listen']}/metrics"
    unknown = {"result": "denied", "reason": "unknown", "scanner": "entry", "direction": "in"}
    os.write(master, b"NOPE-1\r")
    assert wait_until(lambda: value(scrape(url), "turnstiled_scans_total", **unknown) == 1.0, 30)

    cfg = tmp_path / "turnstiled.toml"
    cfg.write_text(cfg.read_text().replace('id = "lane-1"', 'id = "lane-2"'))
    proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: value(scrape(url), "turnstiled_build_info", version=version(),
                                    gate="lane-2") == 1.0, 30), log.read_text()
    assert value(scrape(url), "turnstiled_scans_total", **unknown) == 1.0  # counts kept

    # [metrics] itself needs a restart: the reload is refused, the endpoint stays.
    cfg.write_text(cfg.read_text().replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:1"'))
    proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload refused" in log.read_text(), 30), log.read_text()
    assert "[metrics]" in log.read_text()
    os.write(master, b"NOPE-2\r")
    assert wait_until(lambda: value(scrape(url), "turnstiled_scans_total", **unknown) == 2.0, 30)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


# -- in-process: failure of one part never fails the scrape ----------------------
def test_a_part_that_cannot_be_read_leaves_the_rest_of_the_scrape(tmp_path):
    cfg = make_config(tmp_path, scanner=[{"name": "entry", "type": "serial", "url": "loop://"}])
    data = Path(cfg.paths.data_dir)
    data.mkdir(parents=True)
    (data / "cache.db").write_bytes(b"this is not an SQLite database" * 100)

    def live() -> dict[str, Any]:
        raise RuntimeError("daemon state unavailable")

    m = samples(generate_latest(Metrics(cfg, live).registry).decode())
    names = {name for name, _ in m}
    assert "turnstiled_scans_total" in names  # counters still answer
    assert not any(n.startswith(("turnstiled_build_info", "turnstiled_relay")) for n in names)
    assert not any(n.startswith("turnstiled_tickets") for n in names)  # the broken cache


def test_a_busy_port_does_not_stop_the_gate(start_gate):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        g = start_gate([Ticket("local", "OK-1")], metrics={"listen": f"127.0.0.1:{port}"})
        g.scan(b"OK-1")
        assert g.next().evaluation.decision.granted
        st = g.daemon.status()["metrics"]
        assert st["listen"] is None
        assert "cannot listen on 127.0.0.1:" in st["error"]
    finally:
        taken.close()


def test_a_scan_the_journal_could_not_record_is_counted(start_gate, tmp_path):
    g = start_gate([Ticket("local", "FIRST-1"), Ticket("local", "SECOND-2")],
                   metrics={"textfile_dir": str(tmp_path)})
    g.scan(b"FIRST-1")
    assert g.next().scan_id == 1
    # The card fills up (as in test_end_to_end): SQLITE_FULL for the next scan.
    j = g.daemon.journal
    pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
    j.conn.execute(f"PRAGMA max_page_count = {pages + 20}")
    for size in (2000, 500, 120, 40, 10, 1):
        with contextlib.suppress(sqlite3.OperationalError):
            while True:
                j.record(Scan(1.0, "g", "fill", "in", "F" * size, Decision(False, "unknown")))
    g.scan(b"SECOND-2")
    assert g.next().scan_id == 0
    m = samples(generate_latest(g.daemon.metrics.registry).decode())
    assert value(m, "turnstiled_journal_write_failures_total") == 1.0
    # policy deny: the rules granted it, the gate did not
    assert value(m, "turnstiled_scans_total", result="denied", reason="granted",
                 scanner="entry", direction="in") == 1.0
    assert value(m, "turnstiled_alarm", alarm="journal") == 1.0
    assert value(m, "turnstiled_scan_to_relay_seconds_count") == 2.0


@pytest.mark.parametrize("listen", ["9847", ":9847", "localhost", "127.0.0.1:99999",
                                    "127.0.0.1:http", "[::1]"])
def test_listen_must_name_address_and_port(tmp_path, listen):
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, metrics={"listen": listen})
    assert "metrics.listen" in str(err.value)


def test_listen_forms():
    assert parse_listen("127.0.0.1:9847") == ("127.0.0.1", 9847)
    assert parse_listen("0.0.0.0:9847") == ("0.0.0.0", 9847)
    assert parse_listen("[::1]:9847") == ("::1", 9847)
    assert parse_listen("gate-7.lan:0") == ("gate-7.lan", 0)
