"""The venue mesh: gates share usage through one MQTT broker (mosquitto), after the relay.

One :class:`MeshClient` per gate, in two threads of its own: paho's
network loop (``loop_start``) and the ``mesh`` worker, which alone
touches the databases: the daemon's journal (whose lock orders its one
transaction per step with the scan path's) and a read-only cache.
Nothing here is in the scan path: the pipeline only reads the usage this
worker merged and asks :meth:`MeshClient.partitioned`; a dead broker adds
no latency to a scan.

- **Outbox**: the journal (``scans.mesh_pub``). The worker publishes each
  granted scan whose state the broker has not acknowledged, QoS 1, keeping
  one ``MessageInfo`` per row; once that message's PUBACK arrives
  (``on_publish`` with its mid; ``is_published()`` raises for a message
  first queued while disconnected) it records the acknowledgement. paho
  resends in-flight messages on reconnect; after a restart the journal
  still holds what was not acknowledged.
- **Session**: a stable client id (``turnstiled-VENUE-GATE``), MQTT 5 with
  ``clean_start=False`` and a session expiry, so the broker keeps what
  this gate missed while away and hands it over when it returns.
- **Merge**: peer events and this gate's own go into the journal by nonce,
  with the PUBACKs received, in one transaction per step
  (:meth:`Journal.mesh_step`); only then are the peers' messages
  acknowledged to the broker (manual ack), so an event is never lost
  between broker and journal. Conflicts found there are logged and shown
  in ``status`` and ``scans``.
- **Fleet**: a retained heartbeat (:func:`turnstiled.figures.gate_figures`)
  with a last will that marks the gate offline.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from turnstiled import meshwire
from turnstiled.cache import Cache
from turnstiled.config import Config
from turnstiled.figures import open_readonly
from turnstiled.journal import Journal
from turnstiled.journal_peers import VenueEvent
from turnstiled.timeutil import iso

logger = logging.getLogger(__name__)

MAX_INFLIGHT_ROWS = 1000   # MessageInfos held at once; the rest wait in the journal
MERGE_BATCH = 500          # peer messages merged per transaction
Figures = Callable[[Cache | None, Journal], dict[str, Any]]


class MeshClient:
    """This gate's link to the venue's broker."""

    def __init__(self, cfg: Config, figures: Figures | None = None,
                 on_merged: Callable[[list[VenueEvent]], None] | None = None,
                 journal: Journal | None = None) -> None:
        assert cfg.mesh is not None
        self.cfg = cfg
        self._journal = journal
        self.on_merged = on_merged  # after each committed merge of peer events (bench, metrics)
        self.mesh = cfg.mesh
        self.gate_id = cfg.gate.id
        self.figures = figures
        self.client_id = f"turnstiled-{self.mesh.venue}-{self.gate_id}"
        self._inbox: queue.SimpleQueue[tuple[str, bytes, int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connected = False
        self._down_since = time.monotonic()  # never connected counts as down
        self._outage_logged = False
        self._ever_connected = False
        self._last_peer_event: float | None = None
        self._fleet: dict[str, dict[str, Any]] = {}
        # scan id -> (state published, its MessageInfo); PUBACKed message ids
        self._pending: dict[int, tuple[int, mqtt.MQTTMessageInfo]] = {}
        self._acked_mids: set[int] = set()
        self._conflicts: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name="mesh", daemon=True)
        self.client = self._make_client()

    # -- lifecycle -------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        m = self.mesh
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5)
        c.username_pw_set(m.username or self.gate_id,
                          m.password.reveal() if m.password is not None else None)
        if m.tls:
            c.tls_set(ca_certs=m.ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(meshwire.fleet_topic(m.venue, self.gate_id),
                   json.dumps({"gate": self.gate_id, "online": False}), qos=1, retain=True)
        c.reconnect_delay_set(int(m.reconnect_min_s), int(m.reconnect_max_s))
        c.max_queued_messages_set(0)  # bounded by MAX_INFLIGHT_ROWS, not by dropping
        c.manual_ack_set(True)  # a peer's event is acknowledged once it is in the journal
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        return c

    def start(self) -> None:
        host, port = self.mesh.host_port
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.mesh.session_expiry_s
        self.client.connect_async(host, port, keepalive=self.mesh.keepalive_s,
                                  clean_start=False, properties=props)
        self.client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop both threads; a clean disconnect keeps the last will unsent,
        so say offline first."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._connected:
            self.client.publish(meshwire.fleet_topic(self.mesh.venue, self.gate_id),
                                json.dumps({"gate": self.gate_id, "online": False,
                                            "at": time.time()}), qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def notify(self) -> None:
        """A scan was journaled (called after the relay moved): look at the outbox."""
        self._wake.set()

    # -- state for the pipeline, status and fleet ------------------------
    def partitioned(self) -> bool:
        """Unreachable for longer than ``partition_grace_s`` (read from the scan path)."""
        return (not self._connected and
                time.monotonic() - self._down_since > self.mesh.partition_grace_s)

    def alarm(self) -> str | None:
        """A line for ``status``' alarms while the broker has been away past the grace."""
        if not self.partitioned():
            return None
        down = time.monotonic() - self._down_since
        return (f"broker {self.mesh.broker} unreachable for {down:.0f} s: "
                + ("deciding on local usage only" if self.mesh.on_partition == "local"
                   else "refusing single-entry tickets"))

    def state(self) -> dict[str, Any]:
        """``status --json``'s ``mesh`` block."""
        now = time.time()
        with self._lock:
            peers = sorted(g for g, f in self._fleet.items()
                           if g != self.gate_id and f.get("online"))
            last = self._last_peer_event
            conflicts = list(self._conflicts[-10:])
        return {"connected": self._connected, "venue": self.mesh.venue, "peers": len(peers),
                "peer_gates": peers,
                "last_event_age_s": None if last is None else round(now - last, 1),
                "partitioned": self.partitioned(), "unacknowledged": len(self._pending),
                "conflicts": conflicts}

    def fleet(self) -> list[dict[str, Any]]:
        """Every gate heard of in this venue, with its last heartbeat."""
        now = time.time()
        stale_after = 3 * self.mesh.heartbeat_interval_s
        out = []
        with self._lock:
            items = sorted(self._fleet.items())
        for gate, f in items:
            at = f.get("at") or f["heard_at"]
            state = ("offline" if not f.get("online")
                     else "stale" if now - at > stale_after else "online")
            out.append({**f, "gate": gate, "state": state, "seen_age_s": round(now - at, 1)})
        return out

    # -- paho callbacks (paho's thread: never raise, never touch SQLite) --
    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any,
                    _props: Any) -> None:
        try:
            if reason.is_failure:
                self._note_down(f"refused: {reason}")
                return
            v = self.mesh.venue
            client.subscribe([
                (meshwire.usage_topic(v), SubscribeOptions(qos=1, noLocal=True)),
                (meshwire.fleet_topic(v), SubscribeOptions(qos=1)),
            ])
            down_for = time.monotonic() - self._down_since
            if self._ever_connected and not flags.session_present:
                logger.warning("mesh: the broker had lost this gate's session (restarted "
                               "without persistence?): peer events sent meanwhile are missed")
            self._ever_connected = True
            self._connected = True
            self._outage_logged = False
            logger.info("mesh: connected to %s as %s (session %s, after %.0f s)",
                        self.mesh.broker, self.client_id,
                        "resumed" if flags.session_present else "new", down_for)
            self._wake.set()
        except Exception:
            logger.exception("mesh: on_connect failed")

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        try:
            self._note_down("connection failed")
        except Exception:
            logger.exception("mesh: on_connect_fail failed")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        try:
            self._note_down(str(reason))
        except Exception:
            logger.exception("mesh: on_disconnect failed")

    def _note_down(self, why: str) -> None:
        if self._connected:
            self._down_since = time.monotonic()
        self._connected = False
        if not self._outage_logged and not self._stop.is_set():
            self._outage_logged = True
            logger.warning("mesh: broker %s unreachable (%s); retrying with backoff, "
                           "deciding on %s", self.mesh.broker, why,
                           "what this gate knows" if self.mesh.on_partition == "local"
                           else "local usage, refusing single-entry tickets after "
                           f"{self.mesh.partition_grace_s:.0f} s")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._inbox.put((msg.topic, bytes(msg.payload), msg.mid, msg.qos))
            self._wake.set()
        except Exception:
            logger.exception("mesh: on_message failed")

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any,
                    _props: Any) -> None:
        # The PUBACK. (A MessageInfo published while disconnected keeps its
        # NO_CONN code, so its is_published() raises even once paho resent it.)
        try:
            with self._lock:
                self._acked_mids.add(mid)
            self._wake.set()
        except Exception:  # pragma: no cover - setting an Event does not fail
            logger.exception("mesh: on_publish failed")

    # -- the worker ------------------------------------------------------
    def _run(self) -> None:
        # The daemon's journal (its lock orders our writes with the scan
        # path's); a connection of our own when run alone (bench).
        journal = self._journal or Journal(self.cfg.paths.journal_db)
        # Read-only: the cache (ticket policies) and, for the heartbeat's
        # figures, the journal through a connection of their own.
        cache, reader = open_readonly(self.cfg)
        next_beat = next_prune = 0.0
        try:
            while not self._stop.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                try:
                    self._step(journal, cache)
                    if time.monotonic() >= next_beat and self._connected:
                        self._heartbeat(cache, reader)
                        next_beat = time.monotonic() + self.mesh.heartbeat_interval_s
                    if time.monotonic() >= next_prune:
                        days = self.cfg.journal.retention_days
                        journal.prune_mesh(time.time() - days * 86400)
                        next_prune = time.monotonic() + 3600
                except Exception:
                    logger.exception("mesh: worker step failed; retrying")
                    self._stop.wait(1.0)
        finally:
            if self._journal is None:
                journal.close()
            for db in (cache, reader):
                if db is not None:
                    db.close()

    def _step(self, journal: Journal, cache: Cache | None) -> None:
        """Peers' events, this gate's new decisions and the broker's PUBACKs: one
        journal transaction; then publish, then acknowledge the peers' messages."""
        peers: list[VenueEvent] = []
        mids: list[tuple[int, int]] = []
        while len(peers) < MERGE_BATCH:
            try:
                topic, payload, mid, qos = self._inbox.get_nowait()
            except queue.Empty:
                break
            mids.append((mid, qos))
            ev = self._decode(topic, payload)
            if ev is not None:
                peers.append(ev)
        with self._lock:
            puback, self._acked_mids = self._acked_mids, set()
        acked = [(sid, state) for sid, (state, info) in self._pending.items()
                 if info.mid in puback]
        rows = self._outbox(journal)
        own = [self._own_event(r, cache) for r in rows]
        result = journal.mesh_step(peers + own, acked)
        for sid, state in acked:
            if self._pending.get(sid, (None,))[0] == state:
                del self._pending[sid]
        topic = meshwire.usage_topic(self.mesh.venue, self.gate_id)
        for row, ev in zip(rows, own, strict=True):
            info = self.client.publish(topic, meshwire.encode_event(self.mesh.venue, ev), qos=1)
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                self._pending[row["id"]] = (row["state"], info)  # paho sends it when it can
        # Only now, with the events durable in the journal, may the broker
        # forget them (manual acknowledgement): a crash before this point
        # gets them delivered again.
        for mid, qos in mids:
            if qos:
                self.client.ack(mid, qos)
        if peers and self.on_merged is not None:
            self.on_merged(peers)
        if result.gates - {self.gate_id}:
            with self._lock:
                self._last_peer_event = time.time()
        self._note_conflicts(result.conflicts)
        if not self._inbox.empty():
            self._wake.set()

    def _decode(self, topic: str, payload: bytes) -> VenueEvent | None:
        v, limit = self.mesh.venue, self.mesh.max_message_bytes
        try:
            if "/fleet/" in topic:
                gate, hb = meshwire.decode_heartbeat(v, topic, payload, limit)
                with self._lock:
                    if hb is None:
                        self._fleet.pop(gate, None)
                    else:
                        self._fleet[gate] = {**hb, "heard_at": time.time()}
                return None
            return meshwire.decode_event(v, topic, payload, limit)
        except meshwire.BadMessage as exc:
            logger.warning("mesh: dropped a message on %s: %s", topic[:120], exc)
            return None

    def _note_conflicts(self, conflicts: tuple[dict[str, Any], ...]) -> None:
        for c in conflicts:
            logger.warning("mesh: CONFLICT: one ticket admitted at %s (%s) and at %s (%s)",
                           c["with_gate"], iso(c["with_at"]), c["gate_id"], iso(c["at"]))
        if conflicts:
            with self._lock:
                self._conflicts = (self._conflicts + list(conflicts))[-50:]

    def _outbox(self, journal: Journal) -> list[dict[str, Any]]:
        """Journaled decisions to publish: not acknowledged, not in flight in this state."""
        room = MAX_INFLIGHT_ROWS - len(self._pending)
        if room <= 0:
            return []
        return [r for r in journal.mesh_outbox(limit=room + len(self._pending))
                if self._pending.get(r["id"], (None,))[0] != r["state"]][:room]

    def _own_event(self, row: dict[str, Any], cache: Cache | None) -> VenueEvent:
        ticket = cache.lookup(row["barcode"]) if cache is not None else None
        passed = None if row["passed"] is None else bool(row["passed"])
        return VenueEvent(row["nonce"], self.gate_id, row["at"],
                          meshwire.barcode_key(self.mesh, row["barcode"]), row["direction"],
                          passed, row["source"], ticket.entries if ticket else "",
                          self.cfg.gate.zone)

    def _heartbeat(self, cache: Cache | None, reader: Journal | None) -> None:
        body: dict[str, Any] = {"gate": self.gate_id, "online": True, "at": time.time()}
        if self.figures is not None:
            body.update(self.figures(cache, reader))
        body["gate"] = self.gate_id
        self.client.publish(meshwire.fleet_topic(self.mesh.venue, self.gate_id),
                            json.dumps(body, default=str), qos=1, retain=True)
