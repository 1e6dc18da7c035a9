"""What the venue mesh puts on the wire: topics, messages, the barcode's keyed hash.

No I/O here. The pipeline uses :func:`barcode_key` to find a ticket's
peer usage; :mod:`turnstiled.mesh` encodes and checks messages.

Topics (``VENUE`` and ``GATE`` are config values):

- ``turnstiled/VENUE/usage/GATE``: one message per usage-changing decision
  (QoS 1, not retained); published again if its state changes (not passed).
- ``turnstiled/VENUE/fleet/GATE``: the gate's heartbeat (QoS 1, retained);
  its last will is ``{"gate": GATE, "online": false}``.

Personal data stays off the wire: a barcode travels as an HMAC-SHA256 of
it under ``mesh.barcode_key`` (a venue-wide secret; without one, the
venue name is the key, which hides barcodes only from casual reading).
"""

from __future__ import annotations

import json
import math
from typing import Any

from turnstiled.journal_peers import VenueEvent
from turnstiled.settings import MeshSettings

VERSION = 1
PREFIX = "turnstiled"


class BadMessage(ValueError):
    """A peer message that is not ours to merge (the reason is the text)."""


def _key(mesh: MeshSettings) -> bytes:
    if mesh.barcode_key is not None:
        return mesh.barcode_key.reveal().encode()
    return f"turnstiled-mesh:{mesh.venue}".encode()


def barcode_key(mesh: MeshSettings, barcode: str) -> str:
    """The keyed hash a barcode travels (and is matched) as."""
    # Imported here: only a gate with [mesh] hashes (hashlib loads libcrypto,
    # 3.5 MB of RSS; issue 14), and its mesh client (paho, ssl) has imported
    # both by the time a scan gets here.
    import hashlib
    import hmac
    return hmac.new(_key(mesh), barcode.encode(), hashlib.sha256).hexdigest()[:32]


def usage_topic(venue: str, gate: str = "+") -> str:
    return f"{PREFIX}/{venue}/usage/{gate}"


def fleet_topic(venue: str, gate: str = "+") -> str:
    return f"{PREFIX}/{venue}/fleet/{gate}"


def encode_event(venue: str, ev: VenueEvent) -> bytes:
    return json.dumps({
        "v": VERSION, "venue": venue, "gate": ev.gate_id, "nonce": ev.nonce, "at": ev.at,
        "source": ev.source, "key": ev.bkey, "dir": ev.direction, "passed": ev.passed,
        "policy": ev.policy, "zone": ev.zone,
    }, separators=(",", ":")).encode()


def _str(msg: dict[str, Any], name: str, limit: int = 64, empty: bool = False) -> str:
    value = msg.get(name)
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        raise BadMessage(f"field {name!r} missing or not a short string")
    return value


def decode_event(venue: str, topic: str, payload: bytes, max_bytes: int) -> VenueEvent:
    """Check one message from *topic*; :class:`BadMessage` says why it is dropped."""
    if len(payload) > max_bytes:
        raise BadMessage(f"oversized ({len(payload)} bytes > {max_bytes})")
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != PREFIX or parts[2] != "usage":
        raise BadMessage(f"unexpected topic {topic[:80]!r}")
    if parts[1] != venue:
        raise BadMessage(f"for another venue ({parts[1][:64]!r})")
    try:
        msg = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise BadMessage("not a version-1 usage object")
    if msg.get("venue") != venue:
        raise BadMessage("venue field differs from ours")
    gate = _str(msg, "gate")
    if gate != parts[3]:
        raise BadMessage("gate field differs from the topic's")
    at = msg.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise BadMessage("field 'at' missing or not a time")
    direction = msg.get("dir")
    if direction not in ("in", "out"):
        raise BadMessage("field 'dir' not in/out")
    passed = msg.get("passed")
    if passed is not None and not isinstance(passed, bool):
        raise BadMessage("field 'passed' not true/false/null")
    source = msg.get("source")
    if source is not None:
        source = _str(msg, "source")
    return VenueEvent(
        nonce=_str(msg, "nonce"), gate_id=gate, at=float(at), bkey=_str(msg, "key", 128),
        direction=direction, passed=passed, source=source,
        policy=_str(msg, "policy", 32, empty=True), zone=_str(msg, "zone", 64, empty=True))


def decode_heartbeat(venue: str, topic: str, payload: bytes,
                     max_bytes: int) -> tuple[str, dict[str, Any] | None]:
    """(gate id, heartbeat or None when the retained message was cleared)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] != venue or parts[2] != "fleet":
        raise BadMessage(f"unexpected topic {topic[:80]!r}")
    if not payload:
        return parts[3], None
    if len(payload) > max_bytes * 4:
        raise BadMessage(f"oversized heartbeat ({len(payload)} bytes)")
    try:
        msg = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadMessage("heartbeat not JSON") from None
    if not isinstance(msg, dict) or msg.get("gate") != parts[3]:
        raise BadMessage("heartbeat gate differs from the topic's")
    return parts[3], msg
