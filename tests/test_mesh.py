"""The venue mesh against a real mosquitto on a free loopback port (no mock broker)."""

from __future__ import annotations

import getpass
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from tests.conftest import make_config, wait_until
from tests.mosquitto import Broker, shipped_broker
from turnstiled import meshwire
from turnstiled.cache import Cache
from turnstiled.control import request
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal
from turnstiled.pipeline import Outcome
from turnstiled.rules import Ticket
from turnstiled.settings import MeshSettings
from turnstiled.sim.broker import free_port

SLOW = 60.0  # generous: CI is a busy 2-core machine
TICKETS = [
    Ticket("local", "SINGLE-1"), Ticket("local", "SINGLE-2"), Ticket("local", "SINGLE-3"),
    Ticket("local", "RE-1", entries="reentry"), Ticket("local", "RE-2", entries="reentry"),
]


class Lane:
    """One gate of the venue: a daemon with mock pins, fed through submit()."""

    def __init__(self, daemon: Daemon, pins: MockFactory) -> None:
        self.daemon = daemon
        self.pins = pins
        self.outcomes: queue.Queue[Outcome] = queue.Queue()

    def scan(self, code: str, direction: str = "in") -> Outcome:
        self.daemon.submit(code.encode(), "lane", direction)
        return self.outcomes.get(timeout=SLOW)

    def journal(self) -> Journal:
        return Journal(self.daemon.cfg.paths.journal_db, readonly=True)

    def knows(self, gate: str, n: int = 1) -> bool:
        """Has this lane merged at least *n* events of *gate*?"""
        j = self.journal()
        try:
            return j.conn.execute("SELECT COUNT(*) FROM mesh_events WHERE gate_id = ?",
                                  (gate,)).fetchone()[0] >= n
        finally:
            j.close()

    def conflicts(self) -> list[dict[str, Any]]:
        j = self.journal()
        try:
            return j.mesh_conflicts()
        finally:
            j.close()


def mesh_config(tmp_path: Path, name: str, broker: Broker, **over: Any) -> Any:
    mesh = {"broker": broker.url, "venue": "arena", "heartbeat_interval_s": 0.5,
            "reconnect_min_s": 1, "reconnect_max_s": 2, "keepalive_s": 5,
            "partition_grace_s": 0.0, **over.pop("mesh", {})}
    gate = {"id": name, "debounce_s": 0.0, **over.pop("gate", {})}
    return make_config(tmp_path / name, gate=gate, mesh=mesh, **over)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def venue(tmp_path, broker):
    """``venue(name, **config)`` -> a running :class:`Lane` sharing ``broker``."""
    lanes: list[Lane] = []

    def start(name: str, tickets: list[Ticket] = TICKETS, **over: Any) -> Lane:
        cfg = mesh_config(tmp_path, name, broker, **over)
        cache = Cache(cfg.paths.cache_db)
        cache.upsert(tickets)
        cache.close()
        pins = MockFactory()
        lane = Lane(None, pins)  # type: ignore[arg-type]
        lane.daemon = Daemon(cfg, pins, on_outcome=lane.outcomes.put)
        lane.daemon.start()
        lanes.append(lane)
        return lane

    def stop(lane: Lane) -> None:
        lane.daemon.stop()
        lane.pins.close()
        lanes.remove(lane)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for lane in list(lanes):
        stop(lane)


def connected(*lanes: Lane) -> Callable[[], bool]:
    return lambda: all(x.daemon.mesh.state()["connected"] for x in lanes)


def test_admitted_at_a_refused_at_b(venue):
    a, b = venue("a"), venue("b")
    assert wait_until(connected(a, b), SLOW)
    first = a.scan("SINGLE-1")
    assert first.evaluation.decision.granted
    assert wait_until(lambda: b.knows("a"), SLOW)
    # turnstilectl lookup at B already knows (read-only, as a scan would decide)
    from argparse import Namespace

    from turnstiled import cli
    args = Namespace(json=True, barcode="SINGLE-1", direction="in")
    assert cli.cmd_lookup(b.daemon.cfg, args) == 1
    again = b.scan("SINGLE-1")
    assert not again.evaluation.decision.granted
    assert again.evaluation.decision.reason == "already_used"
    assert b.pins.pin(b.daemon.cfg.hardware.relay_pin).state is False
    # the decision used peer usage; the journal's own usage table stays B's own
    j = b.journal()
    assert j.usage("local", "SINGLE-1").entries == 0
    j.close()


def test_exit_at_b_lets_a_reentry_ticket_in_at_c(venue):
    a, b, c = venue("a"), venue("b"), venue("c")
    assert wait_until(connected(a, b, c), SLOW)
    assert a.scan("RE-1").evaluation.decision.granted
    assert wait_until(lambda: c.knows("a"), SLOW)
    assert c.scan("RE-1").evaluation.decision.reason == "already_inside"
    assert b.scan("RE-1", "out").evaluation.decision.reason == "exit"
    assert wait_until(lambda: c.knows("b"), SLOW)
    assert c.scan("RE-1").evaluation.decision.granted
    occ = c.journal()
    assert wait_until(lambda: occ.occupancy() == {"venue": 1}, SLOW)  # in, out, in
    occ.close()


def test_broker_down_both_decide_locally_then_conflict_on_both(venue, broker):
    a, b = venue("a"), venue("b")
    assert wait_until(connected(a, b), SLOW)
    broker.stop()
    assert wait_until(lambda: not a.daemon.mesh.state()["connected"], SLOW)
    assert a.scan("SINGLE-2").evaluation.decision.granted   # on_partition = local
    assert b.scan("SINGLE-2").evaluation.decision.granted
    broker.start()
    for lane, other in ((a, "b"), (b, "a")):
        assert wait_until(lambda lane=lane: len(lane.conflicts()) == 1, SLOW)
        c = lane.conflicts()[0]
        assert {c["gate_id"], c["with_gate"]} == {"a", "b"}
        # visible in scans (by nonce) and in status' mesh block
        j = lane.journal()
        nonce = j.recent(1)[0]["nonce"]
        assert j.conflicts_of_scans([nonce])[nonce]["gate_id"] == other
        j.close()
        assert wait_until(lambda lane=lane: lane.daemon.mesh.state()["conflicts"], SLOW)


def test_gate_restarted_during_the_outage_still_tells_its_peers(venue, broker):
    a, b = venue("a"), venue("b")
    assert wait_until(connected(a, b), SLOW)
    broker.stop()
    assert wait_until(lambda: not a.daemon.mesh.state()["connected"], SLOW)
    assert a.scan("SINGLE-3").evaluation.decision.granted
    venue.stop(a)                      # paho's in-memory queue dies here
    a2 = venue("a")
    broker.start()
    assert wait_until(lambda: b.knows("a"), SLOW)
    assert b.scan("SINGLE-3").evaluation.decision.reason == "already_used"
    j = a2.journal()
    assert wait_until(lambda: j.mesh_backlog() == 0, SLOW)  # PUBACK recorded
    j.close()


def test_deny_single_entry_while_partitioned(tmp_path, venue, broker):
    broker.stop()
    a = venue("a", mesh={"on_partition": "deny-single-entry", "partition_grace_s": 0.0})
    out = a.scan("SINGLE-1")
    assert not out.evaluation.decision.granted
    assert out.evaluation.decision.reason == "mesh_partitioned"
    assert a.scan("RE-2").evaluation.decision.granted  # only single-entry tickets
    assert "unreachable" in a.daemon.alarms()["mesh"]
    broker.start()
    assert wait_until(connected(a), SLOW)
    assert a.scan("SINGLE-1").evaluation.decision.granted


def test_max_occupancy_denies_venue_full(venue):
    a = venue("a", gate={"max_occupancy": 1})
    b = venue("b", gate={"max_occupancy": 1})
    assert wait_until(connected(a, b), SLOW)
    assert a.scan("SINGLE-1").evaluation.decision.granted
    assert wait_until(lambda: b.knows("a"), SLOW)
    assert b.scan("SINGLE-2").evaluation.decision.reason == "venue_full"
    assert a.scan("SINGLE-1", "out").evaluation.decision.granted
    assert wait_until(lambda: b.journal().occupancy() == {"venue": 0}, SLOW)
    assert b.scan("SINGLE-2").evaluation.decision.granted


def _peer(broker: Broker) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-peer",
                    protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def _event(nonce: str, passed: bool | None = None, venue: str = "arena", **kw: Any) -> bytes:
    cfg_key = meshwire.barcode_key(MeshSettings("mqtt://x:1", "arena"), "SINGLE-1")
    body = {"v": 1, "venue": venue, "gate": "z", "nonce": nonce, "at": 1000.0,
            "source": "local", "key": cfg_key, "dir": "in", "passed": passed,
            "policy": "single", "zone": "venue", **kw}
    return json.dumps(body).encode()


def test_duplicates_and_out_of_order_change_nothing(venue, broker):
    a = venue("a")
    assert wait_until(connected(a), SLOW)
    peer = _peer(broker)
    topic = meshwire.usage_topic("arena", "z")
    # the annulment ("not passed") arrives before the admission, then both again
    for payload in (_event("n1", passed=False), _event("n1"), _event("n1", passed=False),
                    _event("n1")):
        peer.publish(topic, payload, qos=1).wait_for_publish(SLOW)
    peer.publish(topic, _event("n2", at=1001.0), qos=1).wait_for_publish(SLOW)
    peer.publish(topic, _event("n2", at=1001.0), qos=1).wait_for_publish(SLOW)
    assert wait_until(lambda: a.knows("z", 2), SLOW)
    time.sleep(0.2)  # let any late duplicate in: what follows must hold regardless
    j = a.journal()
    rows = dict(j.conn.execute("SELECT nonce, passed FROM mesh_events WHERE gate_id = 'z'"))
    assert rows == {"n1": 0, "n2": None}
    assert j.occupancy() == {"venue": 1}
    j.close()
    assert a.scan("SINGLE-1").evaluation.decision.reason == "already_used"  # n2 counts
    peer.loop_stop()
    peer.disconnect()


def test_bad_peer_messages_are_dropped_with_one_line_each(venue, broker, caplog):
    a = venue("a")
    assert wait_until(connected(a), SLOW)
    peer = _peer(broker)
    topic = meshwire.usage_topic("arena", "z")
    with caplog.at_level(logging.WARNING, logger="turnstiled.mesh"):
        for payload in (b"{not json", b"x" * 5000, _event("n9", venue="other"),
                        _event("n8", gate="y")):
            peer.publish(topic, payload, qos=1).wait_for_publish(SLOW)
        peer.publish(topic, _event("ok1"), qos=1).wait_for_publish(SLOW)
        assert wait_until(lambda: a.knows("z"), SLOW)
    dropped = [r for r in caplog.records if "dropped a message" in r.getMessage()]
    assert len(dropped) == 4
    assert any("oversized" in r.getMessage() for r in dropped)
    assert any("another venue" in r.getMessage() or "venue field" in r.getMessage()
               for r in dropped)
    j = a.journal()
    assert [r[0] for r in j.conn.execute("SELECT nonce FROM mesh_events")] == ["ok1"]
    j.close()
    peer.loop_stop()
    peer.disconnect()


def test_sigkilled_gate_shows_offline_in_fleet(tmp_path, venue, broker):
    a = venue("a")
    cfg = mesh_config(tmp_path, "k", broker)
    path = tmp_path / "k.toml"
    path.write_text(
        f'[gate]\nid = "k"\n[paths]\ndata_dir = "{cfg.paths.data_dir}"\n'
        f'control_socket = "{tmp_path}/k.sock"\n'
        f'[mesh]\nbroker = "{broker.url}"\nvenue = "arena"\nheartbeat_interval_s = 0.5\n')
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    proc = subprocess.Popen([sys.executable, "-m", "turnstiled.daemon", "--config", str(path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def state(gate: str) -> str | None:
            sock = a.daemon.cfg.paths.control_socket
            rows = request(sock, "fleet")["fleet"] or []
            return next((r["state"] for r in rows if r["gate"] == gate), None)

        assert wait_until(lambda: state("k") == "online", SLOW)
        proc.send_signal(signal.SIGKILL)
        proc.wait(SLOW)
        assert wait_until(lambda: state("k") == "offline", SLOW)
        assert state("a") == "online"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_turnstilectl_status_scans_occupancy_fleet(venue, broker, capsys):
    from argparse import Namespace

    from turnstiled import cli, cli_mesh
    a, b = venue("a"), venue("b")
    assert wait_until(connected(a, b), SLOW)
    broker.stop()
    assert wait_until(lambda: not a.daemon.mesh.state()["connected"], SLOW)
    a.scan("SINGLE-1")
    b.scan("SINGLE-1")
    broker.start()
    assert wait_until(lambda: a.conflicts() and b.conflicts(), SLOW)
    assert wait_until(lambda: a.daemon.mesh.state()["peers"] == 1, SLOW)
    args = Namespace(json=True, limit=5, barcode=None)

    def run(fn: Callable[..., int]) -> Any:
        capsys.readouterr()
        assert fn(a.daemon.cfg, args) == 0
        return json.loads(capsys.readouterr().out)

    mesh = run(cli.cmd_status)["mesh"]
    assert mesh["connected"] is True and mesh["peers"] == 1
    assert mesh["last_event_age_s"] is not None
    assert mesh["conflicts"][0]["gates"] in (["a", "b"], ["b", "a"])
    scans = run(cli.cmd_scans)
    assert scans[0]["conflict"]["gate_id"] == "b"
    assert run(cli_mesh.cmd_occupancy)["zones"] == {"venue": 2}
    fleet = {r["gate"]: r for r in run(cli_mesh.cmd_fleet)}
    assert fleet["b"]["state"] == "online" and fleet["b"]["version"]
    assert set(fleet["a"]) >= {"tickets", "backlog", "scanner_connected", "last_scan_at"}


def test_shipped_broker_config_passwords_and_acl(tmp_path, venue):
    broker = shipped_broker(tmp_path / "shipped", {"a": "pw-a", "b": "pw-b"}, "arena")
    broker.start()
    try:
        a = venue("a", mesh={"broker": broker.url, "password": "pw-a"})
        b = venue("b", mesh={"broker": broker.url, "password": "pw-b"})
        wrong = venue("c", mesh={"broker": broker.url, "password": "nope"})
        assert wait_until(connected(a, b), SLOW)
        # a may not speak for b: the broker drops a's message on b's topic
        forger = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="forger",
                             protocol=mqtt.MQTTv5)
        forger.username_pw_set("a", "pw-a")
        forger.connect("127.0.0.1", broker.port)
        forger.loop_start()
        forger.publish(meshwire.usage_topic("arena", "b"),
                       _event("forged", gate="b"), qos=1).wait_for_publish(SLOW)
        assert a.scan("SINGLE-1").evaluation.decision.granted
        assert wait_until(lambda: b.knows("a"), SLOW)
        j = b.journal()
        assert [r[0] for r in j.conn.execute("SELECT gate_id FROM mesh_events")] == ["a"]
        j.close()
        assert not wrong.daemon.mesh.state()["connected"]
        forger.loop_stop()
        forger.disconnect()
    finally:
        broker.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed for a test CA")
def test_mqtts_with_the_venue_ca(tmp_path, venue):
    d = tmp_path / "tls"
    d.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=venue-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
        "broker.key", "-out", "broker.csr")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "broker.crt")
    port = free_port()
    broker = Broker(tmp_path / "tls-broker", port, (
        f"listener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/broker.crt\n"
        f"keyfile {d}/broker.key\nallow_anonymous true\nuser {getpass.getuser()}\n"))
    broker.start()
    try:
        url = f"mqtts://127.0.0.1:{port}"
        a = venue("a", mesh={"broker": url, "ca_file": str(d / "ca.crt")})
        b = venue("b", mesh={"broker": url, "ca_file": str(d / "ca.crt")})
        assert wait_until(connected(a, b), SLOW)
        assert a.scan("SINGLE-1").evaluation.decision.granted
        assert wait_until(lambda: b.knows("a"), SLOW)
        assert b.scan("SINGLE-1").evaluation.decision.reason == "already_used"
    finally:
        broker.stop()
