"""What the gate's two processes import: each imported module stays in memory for good."""

from __future__ import annotations

import json
import subprocess
import sys

# What the daemon and the cloud process import at start (see cloud._child).
DAEMON = "import turnstiled.service"
CLOUD = ("import turnstiled.cloud; from turnstiled import logs; "
         "from turnstiled.backends import make_backends; "
         "from turnstiled.drain import Drainer; from turnstiled.sync import Syncer")
NEVER = {"click", "pygments", "sqlite_utils", "multiprocessing", "rich"}


def imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}; import sys, json; print(json.dumps("
                          "sorted(k for k, v in sys.modules.items() if v is not None)))"],
                         capture_output=True, text=True, check=True)
    # (not the entries that block an import: httpx._main, see turnstiled/__init__.py)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_daemon_imports_no_cli_no_optional_parts():
    mods = imported(DAEMON)
    assert not mods & NEVER
    # The mesh and metrics are imported only where configured; httpx (ssl,
    # the CA store) only where a source does online checks; hashlib only
    # with the mesh (it hashes barcodes).
    assert not mods & {"paho", "prometheus_client", "httpx", "ssl", "hashlib", "hmac"}


# A daemon made (not started) on mock pins with one vivenu source.
GATE = """
import json, sys, tempfile
from gpiozero.pins.mock import MockFactory
from turnstiled import config
from turnstiled.daemon import Daemon
d = tempfile.mkdtemp()
cfg = config.from_dict({{"paths": {{"data_dir": d, "control_socket": d + "/c.sock"}},
                         "sources": {{"vivenu": {{"token": "t", "base_url": "http://127.0.0.1:9/",
                                                 "online_check": {online}}}}}}}, d + "/t.toml")
daemon = Daemon(cfg, MockFactory())
opened = [b.http._client is not None for b in daemon.backends]
print(json.dumps([sorted(k for k, v in sys.modules.items() if v is not None), opened]))
"""


def made_gate(online: bool) -> tuple[set[str], list[bool]]:
    out = subprocess.run([sys.executable, "-c", GATE.format(online=online)],
                         capture_output=True, text=True, check=True)
    mods, opened = json.loads(out.stdout)
    return {m.split(".")[0] for m in mods}, opened


def test_a_gate_without_online_checks_never_imports_httpx():
    mods, opened = made_gate(online=False)
    assert not mods & {"httpx", "ssl", "hashlib"}
    assert opened == [False]


def test_a_gate_with_online_checks_opens_its_client_at_start_not_at_a_scan():
    mods, opened = made_gate(online=True)
    assert {"httpx", "ssl"} <= mods
    assert opened == [True]


def test_cloud_process_imports_none_of_the_daemons_parts():
    mods = imported(CLOUD)
    assert not mods & NEVER
    assert not mods & {"gpiozero", "paho", "prometheus_client", "serial", "evdev"}
    assert {"msgspec", "sqlite3"} <= mods  # httpx: at its first request


def test_httpx_without_its_command_line_client_still_works():
    out = subprocess.run([sys.executable, "-c", "import turnstiled, httpx; "
                          "print(httpx.Request('GET', 'http://x/').url)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "http://x/"
